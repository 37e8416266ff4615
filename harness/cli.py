"""The `evalarena` command. Each command is a thin call into the library."""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from harness import __version__
from harness.errors import EvalarenaError, InputError

app = typer.Typer(
    name="evalarena", no_args_is_help=True, add_completion=False,
    help="Evaluate LLM checkpoints on task suites; judge, review and rank them.",
)
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

DbOption = Annotated[Path, typer.Option(
    "--db", envvar="EVALARENA_DB", help="SQLite database file (created if missing).")]
DEFAULT_DB = Path("evalarena.db")


def reports_errors(func: F) -> F:
    """Turn our typed errors into one line on stderr and the error's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except EvalarenaError as exc:
            err.print(f"evalarena: error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _parse_where(terms: list[str] | None) -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for term in terms or []:
        name, sep, values = term.partition("=")
        if not (sep and name.strip() and values.strip()):
            raise InputError("--where", term, "expected FIELD=VALUE[,VALUE...]")
        where.setdefault(name.strip(), []).extend(v.strip() for v in values.split(","))
    return where


def _open_existing(db: Path) -> Any:
    from harness.store import Store

    if not db.exists():
        raise InputError("--db", None, f"no database at {db}")
    return Store(db)


def _version(value: bool) -> None:
    if value:
        out.print(f"evalarena {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Evaluate LLM checkpoints on task suites; judge, review and rank them."""


@app.command()
@reports_errors
def run(
    model: Annotated[str, typer.Option(help="Model spec: smollm2-135m, hf:PATH, "
                                       "openai:URL@NAME (see docs/backends.md).")],
    suite: Annotated[list[str], typer.Option(
        help="Suite name (see `evalarena suites`) or YAML path; repeat it to run several "
             "suites on one loaded model.")],
    db: DbOption = DEFAULT_DB,
    limit: Annotated[int | None, typer.Option(
        min=1, help="Run a seeded subset of N items.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for subsetting and bootstrap CIs.")] = 0,
    max_tokens: Annotated[int | None, typer.Option(
        min=1, help="Override the suite's generation.max_tokens (a different run).")] = None,
    where: Annotated[list[str] | None, typer.Option(
        help="Only items whose data FIELD has one of the values: FIELD=V1,V2 (repeatable; "
             "applied before --limit; a different run).")] = None,
    data_parallel: Annotated[int, typer.Option(
        min=1, help="Replicas of the model in Ray actors sharing the work (docs/scaling.md); "
                    "speed only: stored answers are reused.")] = 1,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Run suites on a model. Rerunning the same command resumes where it stopped.

    With several --suite options the model is loaded once (when the first suite has
    something to generate) and serves each suite in turn; each suite is its own run."""
    from harness.backends import load_backend, with_data_parallel
    from harness.backends.base import SharedBackend
    from harness.report import RichProgress, results_table
    from harness.runner import execute, plan_run
    from harness.store import Store

    # validates every suite first; writes nothing
    plans = [plan_run(name, model, limit, seed, max_tokens, _parse_where(where))
             for name in suite]
    first = plans[0].model
    shared = SharedBackend(lambda: load_backend(with_data_parallel(first, data_parallel)))
    with Store(db) as store:
        try:
            for plan in plans:
                progress = None if quiet else RichProgress(
                    f"{plan.suite.name} · {plan.model.identity}", err)
                try:
                    outcome = execute(store, plan, shared.loaded, progress)
                except KeyboardInterrupt:
                    err.print(f"interrupted: run {plan.run_id} is saved; rerun the same "
                              "command to resume")
                    raise typer.Exit(130) from None
                out.print(results_table(
                    f"{plan.suite.name} · {plan.model.identity} · run {outcome.run_id}",
                    outcome.summaries))
                out.print(f"generated {outcome.generated}, reused {outcome.reused}, "
                          f"errors {outcome.errors} · results in {db} "
                          f"(evalarena show {outcome.run_id})")
        finally:
            shared.close_shared()


@app.command()
@reports_errors
def runs(db: DbOption = DEFAULT_DB) -> None:
    """List the runs in a database with their headline metric."""
    from harness.report import runs_table

    with _open_existing(db) as store:
        records = store.list_runs()
        headline = {r.id: next(iter(store.metric_summaries(r.id)), None) for r in records}
        rates = store.output_rates()
    out.print(runs_table(records, headline, rates))


@app.command()
@reports_errors
def show(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    db: DbOption = DEFAULT_DB,
    samples: Annotated[int, typer.Option(help="Also print the first N samples.")] = 0,
) -> None:
    """Show a run: its manifest summary, metrics with CIs and errors."""
    from harness.kpis import summarize
    from harness.report import kpi_lines, results_table, slices_table

    with _open_existing(db) as store:
        record = store.get_run(run_id)
        summaries = store.metric_summaries(record.id)
        slices = store.slice_summaries(record.id)
        latencies, ttfts = store.answer_timings(record.id)
        kpis = summarize(latencies, ttfts, store.invocations(record.id))
        errors = store.latest_errors(record.id)
        rows = list(store.export_rows(record.id))[:samples] if samples else []
    manifest = record.manifest
    out.print(f"run {record.id} · {record.status} · {record.n_samples} items · "
              f"created {record.created_at}")
    out.print(f"model {record.model} · suite {record.suite} ({manifest['suite']['hash']}) · "
              f"seed {record.seed} · limit {record.limit_n}")
    out.print(f"evalarena {manifest['evalarena']} ({manifest['git_sha']}) · "
              + ", ".join(f"{k} {v}" for k, v in manifest["packages"].items() if v))
    out.print(results_table("metrics", summaries))
    if slices:
        out.print(slices_table(slices))
    for line in kpi_lines(kpis):
        out.print(line, soft_wrap=True, highlight=False, markup=False)
    kinds: dict[str, int] = {}
    for error in errors.values():
        kinds[error.kind.value] = kinds.get(error.kind.value, 0) + 1
    if kinds:
        out.print("errors (not scored): " + ", ".join(f"{k} {v}" for k, v in kinds.items()))
    for row in rows:
        out.print_json(json.dumps(row, ensure_ascii=False))


@app.command()
@reports_errors
def export(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    db: DbOption = DEFAULT_DB,
    format: Annotated[str, typer.Option(help="jsonl or csv.")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--out", help="File (default stdout).")] = None,
) -> None:
    """Export a run's samples: request, answer, extracted answer, scores, error."""
    if format not in ("jsonl", "csv"):
        raise InputError("--format", None, f"{format!r} is not one of jsonl, csv")
    with _open_existing(db) as store:
        record = store.get_run(run_id)
        rows = list(store.export_rows(record.id))
    stream = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        if format == "jsonl":
            for row in rows:
                stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            columns = ["run_id", "sample_id", "request_key", "target", "texts", "extracted",
                       "scores", "error"]
            writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: v if isinstance(v, str | None) else json.dumps(v)
                                 for k, v in row.items()})
    finally:
        if output:
            stream.close()


@app.command()
@reports_errors
def suites() -> None:
    """List the shipped suites with item counts and data licences."""
    from rich.table import Table

    from harness.suite import TASKS_DIR, load_suite

    table = Table(title=f"suites in {TASKS_DIR}")
    for column in ("name", "kind", "items", "license", "description"):
        table.add_column(column)
    for path in sorted(TASKS_DIR.glob("*.yaml")):
        try:
            suite = load_suite(str(path))
        except EvalarenaError as exc:  # e.g. its data package is not installed
            table.add_row(path.stem, "-", "unavailable", "-", str(exc))
            continue
        table.add_row(suite.name, suite.config.kind, str(len(suite.rows)), suite.config.license,
                      suite.config.description)
    out.print(table)


# the other command groups register themselves on `app` when imported
from harness import cli_compare, cli_judge, cli_leaderboard, cli_review  # noqa: E402, F401
