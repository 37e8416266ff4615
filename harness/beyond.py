"""The beyond-accuracy tables of the published site (docs/beyond_accuracy.md): one
row per robustness perturbation, per group gap and per contamination check of the
database's runs, as plain JSON-ready values for ``leaderboards.publish`` (which
imports none of the pipeline). Each is recomputed from the database."""

from __future__ import annotations

import math
from typing import Any

from harness.compare import run_gaps
from harness.contamination.check import contamination_report
from harness.robustness import derived_runs, robustness_report
from harness.store import RunRecord, Store
from harness.suites.config import SuiteConfig

_DONE = ("completed", "completed_with_errors")


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def _latest(runs: list[RunRecord]) -> list[RunRecord]:
    """Per (model, suite): the finished run with the most items, then the newest."""
    best: dict[tuple[str, str], RunRecord] = {}
    for run in sorted(runs, key=lambda r: (r.n_samples, r.updated_at)):
        best[(run.model, run.suite)] = run
    return sorted(best.values(), key=lambda r: (r.suite, r.model))


def beyond_accuracy(store: Store, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    clean = _latest([r for r in store.list_runs() if r.status in _DONE
                     and r.base_hash is None])
    return {"robustness": _robustness(store, clean, seed),
            "fairness": _fairness(store, clean, seed),
            "contamination": _contamination(store, clean, seed)}


def _robustness(store: Store, runs: list[RunRecord], seed: int) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        if not derived_runs(store, run):
            continue
        report = robustness_report(store, run.id, seed=seed)
        worst = report.worst_case
        for row in report.rows:
            r = row.paired
            rows.append({"suite": run.suite, "model": run.model, "run": run.id,
                         "metric": report.metric, "perturbation": row.label, "n": r.n,
                         "changed": row.changed, "clean": _num(r.a), "perturbed": _num(r.b),
                         "diff": _num(r.diff), "ci_low": _num(r.ci_low),
                         "ci_high": _num(r.ci_high), "p_holm": _num(r.p_holm),
                         "verdict": r.verdict, "consistency": _num(row.consistency.value),
                         "worst_case": _num(worst.value), "worst_low": _num(worst.ci_low),
                         "worst_high": _num(worst.ci_high)})
    return rows


def _fairness(store: Store, runs: list[RunRecord], seed: int) -> list[dict[str, Any]]:
    """Gaps over each data field the suite breaks its metrics down by (``stats.slices``)."""
    rows = []
    for run in runs:
        config = (run.manifest.get("suite") or {}).get("config")
        if config is None:  # a run whose manifest holds no suite
            continue
        stats = SuiteConfig.model_validate(config).stats
        for field in (stats.slices if stats is not None else []):
            if field == "length":
                continue
            _, gaps = run_gaps(store, run.id, field, seed=seed)
            for gap in gaps:
                rows.append({"suite": run.suite, "model": run.model, "run": run.id,
                             "metric": gap.metric, "field": field, "gap": _num(gap.gap),
                             "ci_low": _num(gap.ci_low), "ci_high": _num(gap.ci_high),
                             "best": gap.best, "worst": gap.worst,
                             "groups": len(gap.groups)})
    return rows


def _contamination(store: Store, runs: list[RunRecord], seed: int) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        if not store.checks(run.id):
            continue
        _, reports = contamination_report(store, run.id, seed=seed)
        for report in reports:
            share = report.flagged_share
            for split in report.splits:
                rows.append({"suite": run.suite, "model": run.model, "run": run.id,
                             "check": report.method, "flagged": _num(share[0]),
                             "flagged_low": _num(share[1]), "flagged_high": _num(share[2]),
                             "items": share[3], "metric": split.metric,
                             "unflagged_value": _num(split.clean[0]),
                             "unflagged_n": split.clean[3],
                             "flagged_value": _num(split.flagged[0]),
                             "flagged_n": split.flagged[3]})
    return rows
