"""Per-sample metrics, by family, and ``METRICS``: every metric a suite can name.

Suites name metrics from ``METRICS``; the names are validated, so a typo fails at
load time, not after a long run. ``base.py`` holds the base types, the
protocols and the registry; each family (``choice``, ``text``, ``code``, ``gsm8k``,
``math_answer``, ``ifeval``) imports only ``base`` and registers its metrics with
``register_metric``. This module imports every family, so whichever module of
the package is imported first, the registry is complete.
"""

from __future__ import annotations

from harness.metrics import (  # noqa: F401  (they register metrics)
    bias,
    choice,
    code,
    gsm8k,
    math_answer,
    text,
)
from harness.metrics.base import (
    METRICS,
    AggregateMetric,
    BatchMetric,
    Extraction,
    Metric,
    MetricValue,
    normalize,
    register_metric,
)
from harness.metrics.choice import ChoiceAccuracy, ExactMatch
from harness.metrics.ifeval import metric as ifeval_metric  # noqa: F401  (registers)

__all__ = ["METRICS", "AggregateMetric", "BatchMetric", "ChoiceAccuracy", "ExactMatch",
           "Extraction", "Metric", "MetricValue", "normalize", "register_metric"]
