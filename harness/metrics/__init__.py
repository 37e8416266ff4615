"""Per-sample metrics, by family, and ``METRICS``: every metric a suite can name.

Suites name metrics from ``METRICS``; the names are validated, so a typo fails at
load time, not after a long run. The base types and protocols live in
``base.py``; each family in its own module imports only them, so any module
here can be imported first, alone.
"""

from __future__ import annotations

from harness.metrics.base import (
    AggregateMetric,
    BatchMetric,
    Extraction,
    Metric,
    MetricValue,
    normalize,
)
from harness.metrics.choice import ChoiceAccuracy, ExactMatch
from harness.metrics.code import pass_at_k_metrics
from harness.metrics.ifeval.metric import IFEVAL_METRICS
from harness.metrics.text import CalibrationError, MajorityAtK, OverlapMetric

METRICS: dict[str, Metric] = {
    "exact_match": ExactMatch(),
    "accuracy": ChoiceAccuracy("accuracy"),
    "acc_norm": ChoiceAccuracy("acc_norm", per_char=True),
    # text overlap, votes and calibration (text.py)
    "token_f1": OverlapMetric("token_f1", "token_f1"),
    "exact_match_any": OverlapMetric("exact_match_any", "exact_match_any"),
    "rouge_l": OverlapMetric("rouge_l", "rouge_l"),
    "bleu": OverlapMetric("bleu", "bleu"),
    "chrf": OverlapMetric("chrf", "chrf"),
    "maj@k": MajorityAtK(),
    "ece": CalibrationError(),
    # IFEval's instruction checks (ifeval/), pass@k over sandboxed code (code.py)
    **IFEVAL_METRICS,
    **pass_at_k_metrics((1, 5, 10, 100)),
}

__all__ = ["METRICS", "AggregateMetric", "BatchMetric", "ChoiceAccuracy", "ExactMatch",
           "Extraction", "Metric", "MetricValue", "normalize"]
