"""What the commands print: listings fit 80 columns and a log, data formats parse,
and `-v` / `--log-level` make the library's log records visible on stderr."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fault_server import Action, FakeServer, Responder, fail_first
from helpers import REPO, CliRun

LONG_NAME = "a-rather-long-model-name-from-a-checkpoint-directory-step-120000"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two imported runs of the smoke suite (no model): one long model name."""
    tmp_path = tmp_path_factory.mktemp("output")
    rows = [json.loads(line) for line in (REPO / "tasks" / "smoke.jsonl").read_text().splitlines()]
    for name, right in ((LONG_NAME, 24), ("short", 12)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"id": r["id"], "answer": r["answer"] if i < right
                                            else "no"}) + "\n" for i, r in enumerate(rows)))
        made = subprocess.run([sys.executable, "-m", "harness", "import", str(path), "--suite",
                               "smoke", "--name", name, "--db", str(tmp_path / "o.db")],
                              capture_output=True, text=True, check=False, timeout=300)
        assert made.returncode == 0, made.stderr
    return tmp_path / "o.db"


def test_runs_fits_80_columns_one_line_per_run(cli: CliRun, two_runs: Path) -> None:
    for columns in ("80", "60"):
        shown = cli("runs", "--db", str(two_runs), env={"COLUMNS": columns}).stdout
        lines = shown.splitlines()
        assert all(len(line) <= int(columns) for line in lines), shown
        rows = [line for line in lines if line.startswith("│")]
        assert len(rows) == 2, shown  # one line per run: no cell wrapped over two
        assert any("a-rather" in row and "…" in row for row in rows)  # long text is cut
        assert "completed" in shown


def test_listing_formats_carry_every_field(cli: CliRun, two_runs: Path) -> None:
    data = json.loads(cli("runs", "--db", str(two_runs), "--format", "json").stdout)
    by_model = {r["model"]: r for r in data}
    assert by_model.keys() == {f"import:{LONG_NAME}", "import:short"}
    assert by_model["import:short"]["value"] == 0.5 and by_model["import:short"]["items"] == 24
    assert by_model["import:short"]["metric"] == "exact_match"
    table = list(csv.DictReader(io.StringIO(
        cli("runs", "--db", str(two_runs), "--format", "csv").stdout)))
    assert {r["model"] for r in table} == set(by_model) and table[0]["run"] == data[0]["run"]
    markdown = cli("runs", "--db", str(two_runs), "--format", "markdown").stdout.splitlines()
    assert markdown[0].startswith("| run | model |") and len(markdown) == 4
    assert f"import:{LONG_NAME}" in "\n".join(markdown)  # never cut outside the table
    suites = json.loads(cli("suites", "--format", "json").stdout)
    assert {"name": "smoke", "kind": "generate", "items": 24}.items() <= next(
        s for s in suites if s["name"] == "smoke").items()
    bad = cli("runs", "--db", str(two_runs), "--format", "xml")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--format" in bad.stderr


def _faulty_suite(tmp_path: Path) -> Path:
    (tmp_path / "q.jsonl").write_text('{"id": "q1", "question": "q1", "answer": "echo: q1"}\n')
    suite = tmp_path / "q.yaml"
    suite.write_text("name: q\nlicense: test data\nkind: generate\ndata: {path: q.jsonl}\n"
                     'prompt: {user: "{{ question }}"}\ntarget: "{{ answer }}"\n'
                     "generation: {max_tokens: 8}\nmetrics: [exact_match]\n")
    return suite


@pytest.mark.parametrize(("flags", "shown"), [((), False), (("-vv",), True),
                                              (("--log-level", "debug"), True)])
def test_verbosity_shows_the_openai_backends_retries(
        cli: CliRun, tmp_path: Path, serve: Callable[[Responder], FakeServer],
        flags: tuple[str, ...], shown: bool) -> None:
    server = serve(fail_first(1, Action(500, {"error": {"message": "boom"}})))
    result = cli(*flags, "run", "--model", f"openai:{server.url}@m?backoff=0.01&max_retries=2",
                 "--suite", str(_faulty_suite(tmp_path)), "--db", "v.db", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "generated 1, reused 0, errors 0" in result.stdout  # the retry succeeded
    assert ("attempt 1 failed" in result.stderr) is shown, result.stderr
