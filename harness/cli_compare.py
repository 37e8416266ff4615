"""The `compare` command: paired difference of two runs per metric, as a CI regression gate.

Registered on the main app when harness/cli.py imports this module. The math
is in harness/compare.py; this module matches items between the runs and
prints. Exit codes: 0 compared, 2 bad input (one line on stderr),
``EXIT_WORSE`` (3) with ``--fail-if-worse`` when a metric is significantly worse.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.cli import DEFAULT_DB, DbOption, _open_existing, app, err, out, reports_errors
from harness.errors import InputError

EXIT_WORSE = 3


@dataclass(frozen=True)
class PairedScores:
    metric: str
    sample_ids: list[str]
    a: list[float]
    b: list[float]
    clusters: list[str] | None


@app.command()
@reports_errors
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
    format: Annotated[str, typer.Option(help="text or json.")] = "text",
    seed: Annotated[int, typer.Option(help="Seed for the bootstrap and permutations.")] = 0,
) -> None:
    """Compare two runs of one suite item by item: difference, 95% CI, p-value, verdict."""
    from harness.compare import compare_metric, decide

    if format not in ("text", "json"):
        raise InputError("--format", None, f"{format!r} is not one of text, json")
    warnings: list[str] = []
    with _open_existing(db) as store:
        first, second = store.get_run(run_a), store.get_run(run_b)
        paired = paired_scores(store, first, second, metric, warnings)
    results = [compare_metric(p.metric, p.a, p.b, seed=seed, clusters=p.clusters)
               for p in paired]
    decided = decide(results, [_higher_is_better(p.metric) for p in paired], alpha=alpha,
                     min_delta=min_delta)
    worse = [r.metric for r in decided if r.verdict == "worse"]
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


def paired_scores(store: Any, first: Any, second: Any, metrics: list[str] | None,
                  warnings: list[str]) -> list[PairedScores]:
    """Per metric, the items scored in both runs (matched by sample id, in A's order)."""
    if first.id == second.id:
        raise InputError("RUN_B", second.id, "is the same run as RUN_A")
    if first.suite != second.suite:
        raise InputError("RUN_B", second.id, f"is a run of suite {second.suite!r}, RUN_A of "
                         f"{first.suite!r}; compare two runs of one suite")
    if first.suite_hash != second.suite_hash:
        warnings.append(f"the runs' suite configs differ ({first.suite_hash} vs "
                        f"{second.suite_hash}); items are matched by sample id")
    scores_a, scores_b = _by_metric(store, first.id), _by_metric(store, second.id)
    if metrics:
        for name in metrics:
            if name not in scores_a or name not in scores_b:
                raise InputError("--metric", name, "is not scored in both runs (A has "
                                 f"{', '.join(scores_a) or 'none'}; B has "
                                 f"{', '.join(scores_b) or 'none'})")
    names = metrics or [m for m in scores_a if m in scores_b]
    for name in sorted(set(scores_a) ^ set(scores_b)):
        if not metrics:
            warnings.append(f"{name} is scored in only one run; not compared")
    cluster_of = _clusters(store, first)
    paired = []
    for name in names:
        if _is_aggregate(name):
            warnings.append(f"{name} is not a mean of per-item scores; not compared")
            continue
        a, b = scores_a[name], scores_b[name]
        ids = [i for i in a if i in b]
        if len(ids) < len(a) or len(ids) < len(b):
            warnings.append(f"{name}: compared the {len(ids)} items scored in both runs "
                            f"(A scored {len(a)}, B scored {len(b)})")
        if ids:
            clusters = [cluster_of[i] for i in ids] if cluster_of is not None else None
            paired.append(PairedScores(name, ids, [a[i] for i in ids], [b[i] for i in ids],
                                       clusters))
    if not paired:
        raise InputError("RUN_B", second.id, f"no item is scored in both runs with a comparable "
                         f"metric (A has {first.n_samples} items, B {second.n_samples})")
    return paired


def _by_metric(store: Any, run_id: str) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    positions = {s.sample.id: s.position for s in store.run_samples(run_id)}
    for row in sorted(store.scores(run_id), key=lambda r: positions.get(r.sample_id, 0)):
        found.setdefault(row.metric, {})[row.sample_id] = row.value
    return found


def _clusters(store: Any, run: Any) -> dict[str, str] | None:
    """Cluster label per sample id when run A's suite names a ``stats.cluster`` field."""
    from harness.slices import cluster_labels
    from harness.suite import SuiteConfig

    config = SuiteConfig.model_validate(run.manifest["suite"]["config"])
    if config.stats is None or config.stats.cluster is None:
        return None
    samples = [s.sample for s in store.run_samples(run.id)]
    labels = cluster_labels(config.stats, samples) or []
    return dict(zip((s.id for s in samples), labels, strict=True))


def _metric(name: str) -> Any:
    from harness.metrics import METRICS

    return METRICS.get(name)


def _is_aggregate(name: str) -> bool:
    from harness.metrics import AggregateMetric

    return isinstance(_metric(name), AggregateMetric)


def _higher_is_better(name: str) -> bool:
    """Metrics are higher-is-better unless they say otherwise (``higher_is_better = False``)."""
    return bool(getattr(_metric(name), "higher_is_better", True))


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
