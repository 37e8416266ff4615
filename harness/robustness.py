"""The robustness report behind `evalarena robustness`: a clean run against the runs of
its derived (perturbed) suites, from the database alone (docs/beyond_accuracy.md).

A derived run belongs to a clean run when it has the same model, limit and seed and
its suite was derived from the clean run's suite (the manifest's ``base_hash``). Per
perturbation: the metric, its paired difference from the clean run (``compare``'s
bootstrap CI and McNemar or sign-flip p-value, Holm-corrected across the
perturbations), and consistency (the share of items whose score is unchanged). Over
all of them: worst-case accuracy, the mean over items of the item's lowest score
under the clean prompt and every perturbation (its highest, for a metric where lower
is better).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.compare import PairedScores, higher_is_better, paired_scores
from harness.errors import InputError
from harness.stats.bootstrap import bootstrap_mean_ci
from harness.stats.paired import PairedResult, compare_metric, decide
from harness.store import RunRecord, Store
from harness.suites.perturbed import SEPARATOR

SAME = 1e-9  # scores this close count as unchanged


@dataclass(frozen=True)
class Interval:
    value: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class PerturbationRow:
    label: str  # the perturbation (``typos@0.05``)
    run_id: str
    paired: PairedResult  # a = clean, b = perturbed, over the items both scored
    consistency: Interval  # share of those items whose score did not change
    changed: int  # of those items, how many the perturbation showed differently


@dataclass(frozen=True)
class RobustnessReport:
    clean: RunRecord
    metric: str
    higher_is_better: bool
    rows: list[PerturbationRow]
    worst_case: Interval  # over the items scored in the clean run and every perturbed one
    warnings: list[str]

    @property
    def worse(self) -> list[str]:
        return [row.label for row in self.rows if row.paired.verdict == "worse"]


FINISHED = ("completed", "completed_with_errors")


def derived_runs(store: Store, clean: RunRecord, warnings: list[str] | None = None
                 ) -> list[RunRecord]:
    """The finished runs of suites derived from the clean run's, with its model, limit and
    seed; unfinished ones are named in ``warnings`` and left out."""
    found = []
    for run in store.list_runs():
        if (run.model, run.limit_n, run.seed) != (clean.model, clean.limit_n, clean.seed) \
                or run.base_hash != clean.suite_hash:
            continue
        if run.status in FINISHED:
            found.append(run)
        elif warnings is not None:
            warnings.append(f"{run.suite} (run {run.id}) is {run.status}; left out")
    return sorted(found, key=lambda run: run.suite)


def robustness_report(store: Store, run_id: str, metric: str | None = None, *,
                      alpha: float = 0.05, min_delta: float = 0.0, seed: int = 0
                      ) -> RobustnessReport:
    clean = store.get_run(run_id)
    if clean.base_hash is not None:
        raise InputError("RUN", clean.id, f"is a run of the derived suite {clean.suite!r}; "
                         "give the clean run")
    warnings: list[str] = []
    runs = derived_runs(store, clean, warnings)
    if not runs:
        raise InputError("RUN", clean.id, "no finished perturbed run of this suite, model, "
                         "limit and seed is stored; run it with --perturb first")
    metric = metric or _headline(store, clean)
    pairs = [paired_scores(store, clean, run, [metric], warnings)[0] for run in runs]
    direction = higher_is_better(metric)
    tested = [compare_metric(metric, p.a, p.b, seed=seed, clusters=p.clusters) for p in pairs]
    decided = decide(tested, [direction] * len(tested), alpha=alpha, min_delta=min_delta)
    rows = []
    asked = _request_keys(store, clean.id)
    for run, pair, result in zip(runs, pairs, decided, strict=True):
        unchanged = [float(abs(a - b) <= SAME) for a, b in zip(pair.a, pair.b, strict=True)]
        theirs = _request_keys(store, run.id)
        changed = sum(asked.get(i) != theirs.get(i) for i in pair.sample_ids)
        rows.append(PerturbationRow(run.suite.split(SEPARATOR, 1)[1], run.id, result,
                                    _interval(unchanged, pair.clusters, seed), changed))
    return RobustnessReport(clean, metric, direction, rows,
                            _worst_case(pairs, direction, seed), warnings)


def _request_keys(store: Store, run_id: str) -> dict[str, str]:
    """What each item was asked: a perturbation that left an item's request as it was
    cannot have changed its score."""
    return {s.sample.id: s.request_key for s in store.run_samples(run_id)}


def _headline(store: Store, run: RunRecord) -> str:
    """The first of the suite's metrics that the run has per-item scores of."""
    scored = {row.metric for row in store.scores(run.id)}
    for name in ((run.manifest.get("suite") or {}).get("config") or {}).get("metrics", []):
        if name in scored:
            return str(name)
    raise InputError("RUN", run.id, "has no per-item scores to compare")


def _worst_case(pairs: list[PairedScores], direction: bool, seed: int) -> Interval:
    """Per item, its worst score over the clean run and every perturbed one."""
    common = set(pairs[0].sample_ids)
    for pair in pairs[1:]:
        common &= set(pair.sample_ids)
    ids = [i for i in pairs[0].sample_ids if i in common]
    clean = dict(zip(pairs[0].sample_ids, pairs[0].a, strict=True))
    worst = dict(clean)
    pick = min if direction else max
    for pair in pairs:
        for sample_id, value in zip(pair.sample_ids, pair.b, strict=True):
            if sample_id in common:
                worst[sample_id] = pick(worst[sample_id], value)
    clusters_of = (dict(zip(pairs[0].sample_ids, pairs[0].clusters, strict=True))
                   if pairs[0].clusters is not None else None)
    return _interval([worst[i] for i in ids],
                     [clusters_of[i] for i in ids] if clusters_of else None, seed)


def _interval(values: list[float], clusters: list[str] | None, seed: int) -> Interval:
    if not values:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean, low, high = bootstrap_mean_ci(values, seed=seed, clusters=clusters)
    return Interval(mean, low, high, len(values))
