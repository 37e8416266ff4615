"""The run commands: `run`, `runs`, `show`, `export` and `suites`."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.cli.common import (
    DEFAULT_DB,
    DbOption,
    ExportFormat,
    FormatOption,
    ListFormat,
    Terminated,
    err,
    open_existing,
    out,
    parse_where,
    sigterm_interrupts,
)
from harness.cli.listing import Column, print_listing
from harness.cli.robustness import PERTURB_HELP, parse_perturbation
from harness.errors import EvalarenaError, InputError
from harness.spreadsheet import safe_row
from harness.suites.robustness_block import Perturbation, RobustnessConfig


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
    perturb: Annotated[list[str] | None, typer.Option(help=PERTURB_HELP)] = None,
    exclude_flagged: Annotated[bool, typer.Option(
        help="Leave out the items a contamination check of this run flagged (`evalarena "
             "contamination`): another run, answered from the stored answers.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Run suites on a model. Rerunning the same command resumes where it stopped.

    With several --suite options the model is loaded once (when the first suite has
    something to generate) and serves each suite in turn; each suite is its own run.
    With --perturb, each suite is also run once per perturbation (after its clean run);
    `evalarena robustness CLEAN_RUN` reports them."""
    from harness.backends import load_backend, with_data_parallel
    from harness.backends.base import SharedBackend
    from harness.cli.render import RichProgress, results_table
    from harness.runner import execute, plan_run
    from harness.store import Store

    # validates every suite and perturbation first; writes nothing
    asked = [None if value.strip() == "suite" else parse_perturbation(value)
             for value in perturb or []]
    plans = []
    for name in suite:
        clean = plan_run(name, model, limit, seed, max_tokens, parse_where(where))
        if exclude_flagged:
            clean = plan_run(name, model, limit, seed, max_tokens, parse_where(where),
                             exclude=_flagged(db, clean.run_id))
        plans.append(clean)
        for perturbation in _expand(asked, clean.suite.config.robustness, name):
            plans.append(plan_run(name, model, limit, seed, max_tokens, parse_where(where),
                                  perturbation, exclude=frozenset(clean.excluded)))
    first = plans[0].model
    shared = SharedBackend(lambda: load_backend(with_data_parallel(first, data_parallel)))
    with Store(db) as store, sigterm_interrupts():
        try:
            for plan in plans:
                progress = None if quiet else RichProgress(
                    f"{plan.suite.name} · {plan.model.identity}", err)
                try:
                    outcome = execute(store, plan, shared.loaded, progress)
                except KeyboardInterrupt as stop:
                    err.print(f"interrupted: run {plan.run_id} is saved; rerun the same "
                              "command to resume")
                    raise typer.Exit(143 if isinstance(stop, Terminated) else 130) from None
                out.print(results_table(
                    f"{plan.suite.name} · {plan.model.identity} · run {outcome.run_id}",
                    outcome.summaries))
                out.print(f"generated {outcome.generated}, reused {outcome.reused}, "
                          f"errors {outcome.errors} · results in {db} "
                          f"(evalarena show {outcome.run_id})")
        finally:
            shared.close_shared()


def _flagged(db: Path, run_id: str) -> frozenset[str]:
    """The items contamination checks of the run flagged (none checked: an input error)."""
    if not db.exists():
        raise InputError("--exclude-flagged", str(db), "no database here to read flags from")
    with open_existing(db) as store:
        if not store.checks(run_id):
            raise InputError("--exclude-flagged", run_id, "no contamination check of this run "
                             "is stored (run `evalarena contamination ngrams` first)")
        return frozenset(store.flagged_samples(run_id))


def _expand(asked: list[Perturbation | None], declared: RobustnessConfig | None,
            suite: str) -> list[Perturbation]:
    """The --perturb values for one suite, ``suite`` (None) standing for its own list."""
    found: list[Perturbation] = []
    for perturbation in asked:
        if perturbation is not None:
            found.append(perturbation)
        elif declared is None:
            raise InputError("--perturb", "suite", f"suite {suite!r} lists no perturbations "
                             "(its file has no robustness block)")
        else:
            found.extend(declared.perturbations)
    return list({p.label: p for p in found}.values())  # each label once


RUN_COLUMNS = (
    Column("run"), Column("model", shrinks=True), Column("suite", drop=3),
    Column("items", justify="right", drop=4), Column("status"),
    Column("metric", "headline", shrinks=True, drop=2),
    Column("value", justify="right", show=lambda v: "-" if v is None else f"{v:.4f}"),
    Column("tokens_per_s", "tok/s", justify="right", drop=5,
           show=lambda v: "-" if v is None else f"{v:,.1f}"),
    Column("created", drop=6, show=lambda v: v[:19]),
)


def runs(db: DbOption = DEFAULT_DB, format: FormatOption = ListFormat.TABLE) -> None:
    """List the runs in a database with their headline metric."""
    with open_existing(db) as store:
        records = store.list_runs()
        headline = {r.id: next(iter(store.metric_summaries(r.id)), None) for r in records}
        rates = store.output_rates()
    rows = [{"run": r.id, "model": r.model, "suite": r.suite, "items": r.n_samples,
             "status": r.status, "metric": h.metric if h else None,
             "value": h.value if h and h.n else None, "tokens_per_s": rates.get(r.id),
             "created": r.created_at}
            for r in records for h in [headline[r.id]]]
    print_listing(out, f"runs in {db}", RUN_COLUMNS, rows, format)


def show(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    db: DbOption = DEFAULT_DB,
    samples: Annotated[int, typer.Option(help="Also print the first N samples.")] = 0,
) -> None:
    """Show a run: its manifest summary, metrics with CIs and errors."""
    from harness.cli.render import kpi_lines, results_table, sandbox_line, slices_table
    from harness.stats.efficiency import summarize

    with open_existing(db) as store:
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
    if sandbox := manifest.get("code_execution"):
        out.print(sandbox_line(sandbox), soft_wrap=True, highlight=False, markup=False)
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


def export(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    db: DbOption = DEFAULT_DB,
    format: Annotated[ExportFormat, typer.Option(help="jsonl or csv.")] = ExportFormat.JSONL,
    output: Annotated[Path | None, typer.Option("--out", help="File (default stdout).")] = None,
) -> None:
    """Export a run's samples: request, answer, extracted answer, scores, error."""
    with open_existing(db) as store:
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
                writer.writerow(safe_row({k: v if isinstance(v, str | None) else json.dumps(v)
                                          for k, v in row.items()}))
    finally:
        if output:
            stream.close()


SUITE_COLUMNS = (
    Column("name"), Column("kind", drop=2), Column("items", justify="right"),
    Column("license", shrinks=True, drop=1), Column("description", shrinks=True),
)


def suites(format: FormatOption = ListFormat.TABLE) -> None:
    """List the shipped suites with item counts and data licences."""
    from harness.suites.config import TASKS_DIR, load_suite

    rows: list[dict[str, Any]] = []
    for path in sorted(TASKS_DIR.glob("*.yaml")):
        try:
            suite = load_suite(str(path))
        except EvalarenaError as exc:  # e.g. its data package is not installed
            rows.append({"name": path.stem, "kind": None, "items": None, "license": None,
                         "description": f"unavailable: {exc}"})
            continue
        rows.append({"name": suite.name, "kind": suite.config.kind, "items": len(suite.rows),
                     "license": suite.config.license, "description": suite.config.description})
    print_listing(out, f"suites in {TASKS_DIR}", SUITE_COLUMNS, rows, format)


def register(app: typer.Typer) -> None:
    """Add these commands to the `evalarena` app."""
    for command in (run, runs, show, export, suites):
        app.command()(command)
