"""Every command has documented help, and the read commands work on a real run."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import typer.main
from helpers import CliRun

from harness.cli import app


def _commands() -> list[str]:
    group = typer.main.get_command(app)
    return sorted(group.commands)  # type: ignore[attr-defined]


def test_the_expected_commands_exist() -> None:
    assert {"run", "runs", "show", "export", "suites"} <= set(_commands())


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_documented_help(command: str) -> None:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    assert click_command.help and len(click_command.help.strip()) > 20, command
    for param in click_command.params:
        if param.name not in ("help",):
            assert getattr(param, "help", None), f"{command} --{param.name} has no help"


def test_help_and_version_run(cli: CliRun) -> None:
    result = cli("--help")
    assert result.returncode == 0 and "run" in result.stdout
    assert cli("--version").stdout.startswith("evalarena ")


def test_suites_lists_shipped_suites_with_counts_and_licences(cli: CliRun) -> None:
    result = cli("suites", env={"COLUMNS": "200"})
    assert result.returncode == 0
    for name, count in (("smoke", "24"), ("smoke-mc", "24"), ("hellaswag", "100"),
                        ("gsm8k", "1319")):
        line = next(li for li in result.stdout.splitlines() if f" {name} " in li)
        assert f" {count} " in line and ("MIT" in line or "Apache" in line)


def test_read_commands_on_a_missing_database_fail_cleanly(cli: CliRun, tmp_path: Path) -> None:
    for args in (("runs",), ("show", "abc"), ("export", "abc")):
        result = cli(*args, "--db", str(tmp_path / "none.db"))
        assert result.returncode == 2 and "no database" in result.stderr
        assert not (tmp_path / "none.db").exists()


@pytest.mark.slow
def test_run_then_runs_show_and_export(cli: CliRun, tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    result = cli("run", "--model", "smollm2-135m", "--suite", "smoke-mc", "--limit", "6",
                 "--db", db, env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "95% CI" in result.stdout
    assert "generated 6, reused 0, errors 0" in result.stdout
    run_id = result.stdout.split("evalarena show ")[1].split(")")[0].strip()

    again = cli("run", "--model", "smollm2-135m", "--suite", "smoke-mc", "--limit", "6",
                "--db", db, env={"COLUMNS": "200"})
    assert "generated 0, reused 6" in again.stdout

    listing = cli("runs", "--db", db, env={"COLUMNS": "200"})
    assert run_id in listing.stdout and "completed" in listing.stdout

    shown = cli("show", run_id[:6], "--db", db, "--samples", "1", env={"COLUMNS": "200"})
    assert shown.returncode == 0 and "torch" in shown.stdout and "acc_norm" in shown.stdout

    lines = cli("export", run_id, "--db", db).stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 6 and all(len(r["loglikelihoods"]) == 4 for r in rows)
    assert all(set(r["scores"]) == {"accuracy", "acc_norm"} for r in rows)

    table = cli("export", run_id, "--db", db, "--format", "csv").stdout
    parsed = list(csv.DictReader(io.StringIO(table)))
    assert [r["sample_id"] for r in parsed] == [r["sample_id"] for r in rows]

    bad = cli("export", run_id, "--db", db, "--format", "xml")
    assert bad.returncode == 2 and "--format" in bad.stderr
