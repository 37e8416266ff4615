"""`evalarena annotators ...`, `evalarena campaign ...` and `review` through the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from helpers import seed_run

from harness.cli import app
from harness.store import Store

PROMPTS = ["Capital of France?", "2 + 2?", "Colour of the sky?"]


def evalarena(*args: str, stdin: str = "", cwd: Path | None = None
              ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "harness", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=300, check=False,
                          cwd=cwd)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "cli.db"
    with Store(path) as store:
        seed_run(store, "m1", PROMPTS, lambda i, _: ["Paris", "4", "blue"][i])
        seed_run(store, "m2", PROMPTS, lambda i, _: ["Lyon", "4.0", "Blue!"][i])
    return path


def test_review_subcommands_have_help() -> None:
    root = typer.main.get_command(app)
    for group in ("annotators", "campaign"):
        commands = root.commands[group].commands  # type: ignore[attr-defined]
        assert commands, group
        for name, command in commands.items():
            assert command.help and len(command.help.strip()) > 20, name
            for param in command.params:
                if param.name != "help":
                    assert getattr(param, "help", None), f"{group} {name} --{param.name}"


def test_annotators_add_list_disable(db: Path) -> None:
    added = evalarena("annotators", "add", "alice", "--db", str(db), stdin="s3cret-pass\n")
    assert added.returncode == 0, added.stderr
    assert evalarena("annotators", "add", "root", "--role", "admin", "--db", str(db),
                     stdin="another-pass\n").returncode == 0
    with Store(db) as store:
        stored = store.annotator("alice")
    assert stored is not None and stored.password_hash.startswith("$argon2id$")
    assert "s3cret-pass" not in stored.password_hash
    listing = evalarena("annotators", "list", "--db", str(db))
    assert "alice" in listing.stdout and "admin" in listing.stdout
    assert evalarena("annotators", "disable", "alice", "--db", str(db)).returncode == 0
    assert "disabled" in evalarena("annotators", "list", "--db", str(db)).stdout
    assert evalarena("annotators", "enable", "alice", "--db", str(db)).returncode == 0


@pytest.mark.parametrize(("args", "stdin", "needle"), [
    (("annotators", "add", "bad name!"), "long-enough\n", "NAME"),
    (("annotators", "add", "carol", "--role", "owner"), "long-enough\n", "--role"),
    (("annotators", "add", "carol"), "short\n", "at least 8"),
    (("annotators", "disable", "nobody"), "", "no annotator"),
    (("campaign", "create", "--name", "c", "--suite", "gsm8k"), "", "no completed run"),
    (("campaign", "create", "--name", "c", "--suite", "smoke", "--models", "m1,zz"), "", "zz"),
    (("campaign", "create", "--name", "c", "--suite", "smoke", "--kind", "rank"), "", "--kind"),
    (("campaign", "create", "--name", "c", "--suite", "smoke", "--scale", "5-1"), "",
     "--scale"),
    (("campaign", "create", "--name", "c", "--suite", "smoke", "--guidelines", "/nope.md"), "",
     "--guidelines"),
    (("campaign", "export", "nope"), "", "no campaign"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_the_database_alone(
        db: Path, args: tuple[str, ...], stdin: str, needle: str) -> None:
    before = _digest(db)
    result = evalarena(*args, "--db", str(db), stdin=stdin)
    assert result.returncode == 2, result.stdout + result.stderr
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert _digest(db) == before


def test_duplicate_annotator_is_refused(db: Path) -> None:
    assert evalarena("annotators", "add", "dup", "--db", str(db), stdin="password-1\n"
                     ).returncode == 0
    again = evalarena("annotators", "add", "dup", "--db", str(db), stdin="password-2\n")
    assert again.returncode == 2 and "already exists" in again.stderr
    before = _digest(db)
    kept = evalarena("annotators", "add", "dup", "--exist-ok", "--db", str(db))
    assert kept.returncode == 0 and "unchanged" in kept.stdout and _digest(db) == before


def test_campaign_create_list_export(db: Path, tmp_path: Path) -> None:
    guide = tmp_path / "guide.md"
    guide.write_text("# Be fair\nPrefer correct answers.")
    made = evalarena("campaign", "create", "--name", "first", "--suite", "smoke", "--models",
                     "ALL", "--votes-per-item", "2", "--guidelines", str(guide), "--db", str(db))
    assert made.returncode == 0, made.stderr
    assert "3 items" in made.stdout and "m1, m2" in made.stdout
    single = evalarena("campaign", "create", "--name", "rate", "--suite", "smoke", "--kind",
                       "single", "--models", "m1", "--scale", "1-7", "--db", str(db))
    assert single.returncode == 0, single.stderr
    taken = evalarena("campaign", "create", "--name", "first", "--suite", "smoke", "--db",
                      str(db))
    assert taken.returncode == 2 and "taken" in taken.stderr
    kept = evalarena("campaign", "create", "--name", "first", "--suite", "smoke", "--exist-ok",
                     "--db", str(db))
    assert kept.returncode == 0 and "unchanged" in kept.stdout
    listing = evalarena("campaign", "list", "--db", str(db)).stdout
    assert "first" in listing and "0 / 6" in listing and "rate" in listing
    with Store(db) as store:
        record = store.campaign("first")
        assert record is not None and record.config["guidelines"].startswith("# Be fair")
        item = store.campaign_items(record.id)[0]
        store.add_annotator("x", "annotator", "scrypt$1$1$1$AA==$AA==")
        store.add_vote(item, "x", "a", left_is_a=True, category="smoke")
    lines = evalarena("campaign", "export", "first", "--db", str(db)).stdout.splitlines()
    row = json.loads(lines[0])
    assert row["annotator"] == "x" and row["winner"] == "m1" and row["outcome"] == "a"
    csv_out = tmp_path / "votes.csv"
    assert evalarena("campaign", "export", "1", "--format", "csv", "--out", str(csv_out),
                     "--db", str(db)).returncode == 0
    assert csv_out.read_text().startswith("vote_id,campaign,")


def test_review_on_a_missing_database_fails_cleanly(tmp_path: Path) -> None:
    result = evalarena("review", "--db", str(tmp_path / "none.db"))
    assert result.returncode == 2 and "no database" in result.stderr
    assert not (tmp_path / "none.db").exists()


@pytest.mark.slow
def test_review_stops_cleanly_on_sigterm(db: Path, tmp_path: Path) -> None:
    """SIGTERM (how a service manager stops it): the server shuts down, exit 0, and the
    database is whole."""
    import signal
    import time

    import httpx
    from helpers import add_account

    from harness.backends.managed_server import free_port

    with Store(db) as store:
        add_account(store, "boss", "boss-password", role="admin")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness", "review", "--db", str(db),
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    deadline = time.monotonic() + 180
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout
            try:
                if client.post("/api/login", json={"name": "boss", "password":
                                                   "boss-password"}).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    with Store(db) as store:
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
