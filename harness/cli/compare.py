"""The `compare` command: paired difference of two runs per metric, as a CI regression
gate; and `gaps`: how far apart groups of one run's items score, as a fairness gate.

The pairing and grouping are in harness/compare.py and the math in
harness/stats/paired.py and harness/stats/gaps.py; this module prints. Exit codes: 0
done, 2 bad input (one line on stderr), ``EXIT_WORSE`` (3) with ``--fail-if-worse``
when a metric is significantly worse, or with ``--max-gap`` when a gap's lower bound
is above it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.cli.common import DEFAULT_DB, DbOption, ReportFormat, err, open_existing, out

EXIT_WORSE = 3


def compare(
    run_a: Annotated[str, typer.Argument(help="Baseline run id (or unique prefix).")],
    run_b: Annotated[str, typer.Argument(help="Candidate run id (or unique prefix); "
                                         "differences are B − A.")],
    db: DbOption = DEFAULT_DB,
    metric: Annotated[list[str] | None, typer.Option(
        help="Compare only this metric (repeat for several; default: all both runs have).")]
        = None,
    alpha: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Significance level after Holm correction.")] = 0.05,
    min_delta: Annotated[float, typer.Option(
        min=0.0, help="Differences no larger than this never count as better or worse.")]
        = 0.0,
    fail_if_worse: Annotated[bool, typer.Option(
        help=f"Exit {EXIT_WORSE} when any metric of B is significantly worse than A.")]
        = False,
    format: Annotated[ReportFormat, typer.Option(help="text or json.")] = ReportFormat.TEXT,
    seed: Annotated[int, typer.Option(help="Seed for the bootstrap and permutations.")] = 0,
) -> None:
    """Compare two runs of one suite item by item: difference, 95% CI, p-value, verdict."""
    from harness.compare import compare_runs

    with open_existing(db) as store:
        outcome = compare_runs(store, run_a, run_b, metric, alpha=alpha, min_delta=min_delta,
                               seed=seed)
    first, second, decided, warnings = (outcome.first, outcome.second, outcome.results,
                                        outcome.warnings)
    worse = outcome.worse
    if format == "json":
        out.print_json(json.dumps({
            "run_a": first.id, "run_b": second.id, "suite": first.suite, "alpha": alpha,
            "min_delta": min_delta, "metrics": [_no_nan(asdict(r)) for r in decided],
            "worse": worse, "warnings": warnings,
        }))
    else:
        for warning in warnings:
            err.print(f"evalarena: warning: {warning}", markup=False, highlight=False,
                      soft_wrap=True)
        out.print(_table(first, second, decided, alpha))
    if fail_if_worse and worse:
        if format == "text":
            err.print(f"evalarena: {second.id} is significantly worse than {first.id} on "
                      f"{', '.join(worse)}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_WORSE)


def _table(first: Any, second: Any, results: list[Any], alpha: float) -> Table:
    table = Table(title=f"{first.suite} · B − A · A {first.id} ({first.model}) · "
                        f"B {second.id} ({second.model}) · alpha {alpha} (Holm)")
    for column in ("metric", "n", "A", "B", "diff [95% CI]", "p", "p_holm", "test", "verdict"):
        table.add_column(column, justify="left" if column in ("metric", "test", "verdict")
                         else "right", overflow="fold")
    for r in results:
        table.add_row(r.metric, str(r.n), f"{r.a:.4f}", f"{r.b:.4f}",
                      f"{r.diff:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]", _p(r.p),
                      _p(r.p_holm), r.test, r.verdict)
    return table


def _p(value: float) -> str:
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _no_nan(row: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def gaps(
    run_id: Annotated[str, typer.Argument(help="Run id (or unique prefix).")],
    by: Annotated[str, typer.Option(help="Data field whose values group the items "
                                    "(a list value puts an item in each of its groups).")],
    db: DbOption = DEFAULT_DB,
    metric: Annotated[list[str] | None, typer.Option(
        help="Only this metric (repeat for several; default: every per-item metric).")]
        = None,
    max_gap: Annotated[float | None, typer.Option(
        min=0.0, help=f"Exit {EXIT_WORSE} when a metric's largest gap is above this even at "
                      "the lower end of its 95% CI.")] = None,
    min_items: Annotated[int, typer.Option(
        min=1, help="Groups with fewer items are shown but left out of the gap.")] = 5,
    format: Annotated[ReportFormat, typer.Option(help="text or json.")] = ReportFormat.TEXT,
    seed: Annotated[int, typer.Option(help="Seed for the bootstrap.")] = 0,
) -> None:
    """Score each group of a run's items apart: per-group means and the largest gap between
    groups, each with a 95% bootstrap CI (docs/beyond_accuracy.md)."""
    from harness.compare import run_gaps

    with open_existing(db) as store:
        run, found = run_gaps(store, run_id, by, metric, seed=seed, min_items=min_items)
    above = [g.metric for g in found
             if max_gap is not None and not math.isnan(g.ci_low) and g.ci_low > max_gap]
    if format == "json":
        out.print_json(json.dumps({"run": run.id, "by": by, "max_gap": max_gap,
                                   "above": above, "metrics": [_no_nan(asdict(g)) for g in found]}))
    else:
        for gap in found:
            out.print(_gap_table(run, gap))
    if above:
        if format == "text":
            err.print(f"evalarena: {run.id}: the gap between {by} groups is above {max_gap} on "
                      f"{', '.join(above)}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_WORSE)


def _gap_table(run: Any, gap: Any) -> Table:
    summary = ("fewer than two groups with enough items" if math.isnan(gap.gap) else
               f"largest gap {gap.gap:.4f} [{gap.ci_low:.4f}, {gap.ci_high:.4f}] "
               f"({gap.best} − {gap.worst})")
    table = Table(title=f"{run.suite} · run {run.id} · {gap.metric} by {gap.field} · {summary}")
    for column in ("group", "n", "mean [95% CI]"):
        table.add_column(column, justify="left" if column == "group" else "right",
                         overflow="fold")
    for group in gap.groups:
        table.add_row(group.group, str(group.n),
                      f"{group.mean:.4f} [{group.ci_low:.4f}, {group.ci_high:.4f}]")
    return table


def register(app: typer.Typer) -> None:
    """Add these commands to the `evalarena` app."""
    app.command()(compare)
    app.command()(gaps)
