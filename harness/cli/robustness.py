"""`run --perturb` (parsing its values) and the `robustness` command: a clean run
against its perturbed runs (harness/robustness.py; docs/beyond_accuracy.md)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from harness.cli.common import DEFAULT_DB, DbOption, ReportFormat, err, open_existing, out
from harness.cli.compare import EXIT_WORSE, _no_nan, _p
from harness.errors import InputError
from harness.suites.robustness_block import Perturbation

PERTURB_HELP = ("Also run the suite perturbed (a derived suite, its own run): KIND[:KEY=VALUE,"
                "...], e.g. typos:rate=0.1, case:mode=lower, shuffle_choices, "
                "names:mode=swap,fields=question+context; or `suite` for the perturbations "
                "the suite file lists. Repeatable (docs/beyond_accuracy.md).")


def parse_perturbation(value: str) -> Perturbation:
    """``typos:rate=0.1,seed=2`` as a Perturbation; a list value joins its items with +."""
    kind, _, rest = value.partition(":")
    given: dict[str, Any] = {"kind": kind.strip()}
    for term in filter(None, (t.strip() for t in rest.split(","))):
        key, sep, item = term.partition("=")
        if not sep or not key.strip():
            raise InputError("--perturb", value, f"expected KEY=VALUE, got {term!r}")
        given[key.strip()] = item.split("+") if key.strip() == "fields" else item.strip()
    try:
        return Perturbation.model_validate(given)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        raise InputError("--perturb", value, f"{where + ': ' if where else ''}{message}"
                         ) from None


def robustness(
    run_id: Annotated[str, typer.Argument(help="The clean run's id (or a unique prefix).")],
    db: DbOption = DEFAULT_DB,
    metric: Annotated[str | None, typer.Option(
        help="The metric to compare (default: the run's first per-item metric).")] = None,
    alpha: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Significance level after Holm correction across the "
                               "perturbations.")] = 0.05,
    min_delta: Annotated[float, typer.Option(
        min=0.0, help="Drops no larger than this never count as worse.")] = 0.0,
    fail_if_worse: Annotated[bool, typer.Option(
        help=f"Exit {EXIT_WORSE} when any perturbation makes the metric significantly "
             "worse.")] = False,
    format: Annotated[ReportFormat, typer.Option(help="text or json.")] = ReportFormat.TEXT,
    seed: Annotated[int, typer.Option(help="Seed for the bootstrap and permutations.")] = 0,
) -> None:
    """How a run's metric holds up under each perturbation it was run with: the metric,
    the paired difference from the clean run (95% CI, p-value, verdict), consistency, and
    worst-case accuracy over all perturbations."""
    from harness.robustness import robustness_report

    with open_existing(db) as store:
        report = robustness_report(store, run_id, metric, alpha=alpha, min_delta=min_delta,
                                   seed=seed)
    if format == "json":
        out.print_json(json.dumps(_no_nan({
            "run": report.clean.id, "suite": report.clean.suite, "model": report.clean.model,
            "metric": report.metric, "alpha": alpha, "min_delta": min_delta,
            "worst_case": _no_nan(asdict(report.worst_case)), "worse": report.worse,
            "perturbations": [{"label": r.label, "run": r.run_id, "changed": r.changed,
                               **_no_nan(asdict(r.paired)),
                               "consistency": _no_nan(asdict(r.consistency))}
                              for r in report.rows],
            "warnings": report.warnings})))
    else:
        for warning in report.warnings:
            err.print(f"evalarena: warning: {warning}", markup=False, highlight=False,
                      soft_wrap=True)
        out.print(_table(report, alpha))
    if fail_if_worse and report.worse:
        if format == "text":
            err.print(f"evalarena: {report.clean.id}: {report.metric} is significantly worse "
                      f"under {', '.join(report.worse)}", markup=False, highlight=False,
                      soft_wrap=True)
        raise typer.Exit(EXIT_WORSE)


def _ci(low: float, high: float, signed: bool = False) -> str:
    if math.isnan(low):
        return "[-]"
    return f"[{low:+.4f}, {high:+.4f}]" if signed else f"[{low:.4f}, {high:.4f}]"


def _table(report: Any, alpha: float) -> Table:
    worst = report.worst_case
    table = Table(title=f"{report.clean.suite} · {report.clean.model} · run {report.clean.id} · "
                        f"{report.metric} · worst case {worst.value:.4f} "
                        f"{_ci(worst.ci_low, worst.ci_high)} (n={worst.n}) · alpha {alpha} (Holm)")
    for column in ("perturbation", "run", "n", "changed", "clean", "perturbed", "diff [95% CI]",
                   "p_holm", "verdict", "consistency [95% CI]"):
        table.add_column(column, justify="left" if column in ("perturbation", "run", "verdict")
                         else "right", overflow="fold")
    for row in report.rows:
        r, c = row.paired, row.consistency
        table.add_row(row.label, row.run_id, str(r.n), str(row.changed), f"{r.a:.4f}",
                      f"{r.b:.4f}",
                      f"{r.diff:+.4f} {_ci(r.ci_low, r.ci_high, signed=True)}", _p(r.p_holm),
                      r.verdict, f"{c.value:.4f} {_ci(c.ci_low, c.ci_high)}")
    return table


def register(app: typer.Typer) -> None:
    """Add this command to the `evalarena` app."""
    app.command()(robustness)
