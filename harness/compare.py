"""Comparing two stored runs of one suite, metric by metric: the library behind
`evalarena compare` (the CLI only prints); and comparing groups of one run's items
(``run_gaps``, behind `evalarena gaps`).

Items are matched by sample id in run A's order; a metric is compared when
both runs scored it and it is a mean of per-item scores. The statistics
(paired bootstrap CI, McNemar or permutation p-value, Holm) are in
``harness.stats.paired``; the direction of each metric comes from its
registration (``higher_is_better``).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import InputError
from harness.metrics import METRICS, AggregateMetric
from harness.stats.gaps import GroupGap, group_gap
from harness.stats.paired import PairedResult, compare_metric, decide
from harness.stats.slices import cluster_labels, groups_of
from harness.store import RunRecord, Store
from harness.suites.config import SuiteConfig
from harness.suites.perturbed import base_name
from harness.suites.turns import effective_stats


@dataclass(frozen=True)
class PairedScores:
    metric: str
    sample_ids: list[str]
    a: list[float]
    b: list[float]
    clusters: list[str] | None


@dataclass(frozen=True)
class RunComparison:
    first: RunRecord  # run A, the baseline
    second: RunRecord  # run B, the candidate; differences are B - A
    results: list[PairedResult]  # one per compared metric, with its verdict
    warnings: list[str]

    @property
    def worse(self) -> list[str]:
        return [r.metric for r in self.results if r.verdict == "worse"]


def compare_runs(store: Store, run_a: str, run_b: str, metrics: list[str] | None = None, *,
                 alpha: float = 0.05, min_delta: float = 0.0, seed: int = 0) -> RunComparison:
    """Every metric both runs scored (or those named), tested and decided (Holm)."""
    warnings: list[str] = []
    first, second = store.get_run(run_a), store.get_run(run_b)
    paired = paired_scores(store, first, second, metrics, warnings)
    results = [compare_metric(p.metric, p.a, p.b, seed=seed, clusters=p.clusters)
               for p in paired]
    decided = decide(results, [higher_is_better(p.metric) for p in paired], alpha=alpha,
                     min_delta=min_delta)
    return RunComparison(first, second, decided, warnings)


def higher_is_better(metric: str) -> bool:
    """The registered direction; a metric no longer registered counts as higher-is-better."""
    found = METRICS.get(metric)
    return True if found is None else found.higher_is_better


def paired_scores(store: Store, first: RunRecord, second: RunRecord, metrics: list[str] | None,
                  warnings: list[str]) -> list[PairedScores]:
    """Per metric, the items scored in both runs (matched by sample id, in A's order)."""
    if first.id == second.id:
        raise InputError("RUN_B", second.id, "is the same run as RUN_A")
    if base_name(first.suite) != base_name(second.suite):  # a perturbed suite is its suite's
        raise InputError("RUN_B", second.id, f"is a run of suite {second.suite!r}, RUN_A of "
                         f"{first.suite!r}; compare two runs of one suite")
    derived = {first.base_hash, second.base_hash} & {first.suite_hash, second.suite_hash}
    if first.suite_hash != second.suite_hash and not derived:  # a perturbed run: expected
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


def _by_metric(store: Store, run_id: str) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    positions = {s.sample.id: s.position for s in store.run_samples(run_id)}
    for row in sorted(store.scores(run_id), key=lambda r: positions.get(r.sample_id, 0)):
        found.setdefault(row.metric, {})[row.sample_id] = row.value
    return found


def _clusters(store: Store, run: RunRecord) -> dict[str, str] | None:
    """Cluster label per sample id when run A's suite names a ``stats.cluster`` field."""
    stats = effective_stats(SuiteConfig.model_validate(run.manifest["suite"]["config"]))
    if stats is None or stats.cluster is None:
        return None
    samples = [s.sample for s in store.run_samples(run.id)]
    labels = cluster_labels(stats, samples) or []
    return dict(zip((s.id for s in samples), labels, strict=True))


def _is_aggregate(name: str) -> bool:
    return isinstance(METRICS.get(name), AggregateMetric)


def run_gaps(store: Store, run_id: str, field: str, metrics: list[str] | None = None, *,
             seed: int = 0, min_items: int = 5) -> tuple[RunRecord, list[GroupGap]]:
    """Per metric, each group's mean and the largest gap between groups, with CIs, for
    the groups a data field puts the run's items in; from the database alone."""
    run = store.get_run(run_id)
    docs = {s.sample.id: s.sample.doc for s in store.run_samples(run.id)}
    fields = set().union(*(doc.keys() for doc in docs.values())) if docs else set()
    if field not in fields:
        raise InputError("--by", field, "the run's items have no such field (fields: "
                         f"{', '.join(sorted(fields)) or 'none'})")
    rows = store.scores(run.id)
    scored = sorted({row.metric for row in rows
                     if not isinstance(METRICS.get(row.metric), AggregateMetric)})
    for name in metrics or []:
        if name not in scored:
            raise InputError("--metric", name, "the run has no per-item scores of this metric "
                             f"(has: {', '.join(scored) or 'none'})")
    wanted = metrics or scored
    values: dict[str, dict[str, list[float]]] = {name: {} for name in wanted}
    for row in rows:  # one pass: metric -> group -> per-item values
        doc = docs.get(row.sample_id)
        if row.metric in values and doc is not None and field in doc:
            for group in groups_of(doc[field]):
                values[row.metric].setdefault(group, []).append(row.value)
    return run, [group_gap(name, field, values[name], seed=seed, min_items=min_items)
                 for name in wanted]
