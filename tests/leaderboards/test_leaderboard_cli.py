"""`evalarena leaderboard` and `evalarena publish` as users run them, and the
published site in a real headless Chromium (rendered, plots present, offline,
nothing executed), with a screenshot of index.html kept in results/."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import EVIL, REPO, STRENGTHS, CliRun, seed_battles, seed_scored_run
from typer.testing import CliRunner

from harness.cli import app
from harness.store import Store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = REPO / "results" / "site-screenshot.png"
FAST = ("--rounds", "100", "--seed", "3")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "arena.db"
    with Store(path) as store:
        seed_battles(store, "judge:j1", "smoke", 300, seed=1)
        seed_battles(store, "human", "smoke", 120, seed=2)
        seed_battles(store, "judge:j1", "mt-bench", 150, seed=3)
        seed_scored_run(store, "run-alpha", "alpha", "smoke", 24, {"accuracy": 0.75})
        seed_scored_run(store, "run-evil", EVIL, "smoke", 24, {"accuracy": 0.25})
    return path


def invoke(*args: str) -> Any:
    """In process (typer's runner): these imports are slow, so not one subprocess each."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "160"})


def test_leaderboard_prints_the_table(cli: CliRun, db: Path) -> None:
    result = cli("leaderboard", "--db", str(db), *FAST, env={"COLUMNS": "160"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    ranked = [next(i for i, line in enumerate(lines) if f" {name} " in line)
              for name in STRENGTHS]
    assert ranked == sorted(ranked)  # best first
    assert "570 battles" in result.stdout and "data hash sha256:" in result.stdout

    human = invoke("leaderboard", "--db", str(db), "--source", "human", "--category", "smoke",
                   "--format", "json", *FAST)
    doc = json.loads(human.stdout)
    assert doc["params"]["source"] == "human" and doc["board"]["n_battles"] == 120
    assert doc["breakdowns"] == []

    table = invoke("leaderboard", "--db", str(db), "--breakdowns", "--format", "csv", *FAST)
    boards = {r["board"] for r in csv.DictReader(io.StringIO(table.stdout))}
    assert boards == {"main", "source:human", "source:judge:j1", "category:mt-bench",
                      "category:smoke"}

    tasks = invoke("leaderboard", "--db", str(db), "--tasks")
    assert tasks.exit_code == 0 and "0.750" in tasks.stdout and "alpha" in tasks.stdout


@pytest.mark.parametrize(("args", "needle"), [
    (("--method", "glicko"), "--method"),
    (("--ci", "jackknife"), "--ci"),
    (("--method", "elo", "--ci", "sandwich"), "--ci"),
    (("--rounds", "0"), "--rounds"),
    (("--source", "judge:nobody"), "no battles match"),
    (("--category", "nothing"), "no battles match"),
    (("--anchor", "nobody"), "--anchor"),
])
def test_bad_input_is_one_line_and_exit_2(db: Path, tmp_path: Path,
                                          args: tuple[str, ...], needle: str) -> None:
    for command in (("leaderboard",), ("publish", "--out", str(tmp_path / "site"))):
        result = invoke(*command, "--db", str(db), *FAST, *args)
        assert result.exit_code == 2, (command, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1 and needle in result.stderr
        assert result.stderr.startswith("evalarena: error: ")
    assert not (tmp_path / "site" / "index.html").exists()


def test_missing_database_and_unwritable_out(cli: CliRun, db: Path, tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = cli("publish", "--out", str(tmp_path / "site"), "--db", str(missing))
    assert result.returncode == 2 and "no database" in result.stderr
    result = invoke("leaderboard", "--db", str(missing))
    assert result.exit_code == 2 and "no database" in result.stderr
    assert not missing.exists() and not (tmp_path / "site").exists()

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = invoke("publish", "--db", str(db), "--out", str(blocker / "site"), *FAST)
    assert result.exit_code == 2 and "--out" in result.stderr
    assert result.stderr.count("\n") == 1
    bad_format = invoke("leaderboard", "--db", str(db), "--format", "xml")
    assert bad_format.exit_code == 2 and "--format" in bad_format.stderr


@pytest.fixture(scope="module")
def published(db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as `evalarena publish` writes it (what `make demo` runs)."""
    from subprocess import run
    from sys import executable

    out = tmp_path_factory.mktemp("published") / "site"
    result = run([executable, "-m", "harness", "publish", "--db", str(db), "--out",
                  str(out), "--source", "judge", *FAST], capture_output=True, text=True,
                 check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == str((out / "index.html").resolve())
    return out


def test_publish_twice_gives_identical_files(cli: CliRun, db: Path, published: Path,
                                            tmp_path: Path) -> None:
    again = tmp_path / "again"
    result = cli("publish", "--db", str(db), "--out", str(again), "--source", "judge", *FAST)
    assert result.returncode == 0, result.stderr
    first = {p.relative_to(published): p.read_bytes() for p in published.rglob("*.*")}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*.*")}
    assert first == second and len(first) == 4 + 4
    doc = json.loads((again / "leaderboard.json").read_text())
    assert doc["params"]["source"] == "judge" and doc["board"]["n_battles"] == 450
    assert doc["command"].startswith("evalarena publish --out DIR --source judge")
    with Store(db) as store:  # publish records its fit once
        assert len(store.rating_snapshots(doc["board"]["data_hash"])) == 1


playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason="Debian chromium not installed (apt-get install chromium)")
def test_published_site_in_headless_chromium(published: Path, tmp_path: Path) -> None:
    requests: list[str] = []
    dialogs: list[str] = []
    errors: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((published / "index.html").as_uri())
            _check_index(page)
            shot = tmp_path / "index.png"
            page.screenshot(path=str(shot), full_page=True)
            page.locator("#leaderboard a", has_text="alpha").click()
            page.wait_for_url("**/models/alpha-*.html")
            assert page.locator("h1.model-name").inner_text() == "alpha"
            assert page.locator("#opponents tbody tr").count() == 3
            page.go_back()
            page.locator("#leaderboard a", has_text="alert(1)").click()
            assert page.locator("h1.model-name").inner_text() == EVIL  # shown as text
        finally:
            browser.close()
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)
    assert requests and all(url.startswith("file://") for url in requests), requests
    assert dialogs == [] and errors == []


def _check_index(page: Any) -> None:
    assert page.title() == "Leaderboard"
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == len(STRENGTHS)
    names = [rows.nth(i).locator("td.model").inner_text().rstrip(" †") for i in range(4)]
    assert names == list(STRENGTHS)
    assert page.evaluate("document.scripts.length") == 0
    for plot in ("#ratings-plot", "#win-rate-heatmap", "#battle-count-matrix"):
        box = page.locator(plot).bounding_box()
        assert box and box["width"] > 150 and box["height"] > 80, plot
    assert page.locator("#ratings-plot .ci-bar").count() == 4
    assert page.locator("#ratings-plot circle.point").count() == 4
    assert page.locator("#win-rate-heatmap rect").count() == 16
    assert page.locator("#battle-count-matrix rect").count() == 16
    assert page.locator("#task-metrics tbody tr").count() == 2
    assert page.locator("section.breakdown").count() == 2  # categories smoke, mt-bench
