"""What every metric shares: how a generated answer is read (``Extraction``,
``normalize``), the value a metric returns, and the protocols a metric follows.

A metric looks at one sample and its completion and returns a value (and the
answer it read, kept for audit). Samples whose request failed never reach a
metric: they are counted apart. The families (choice.py, text.py, code.py,
ifeval/) import only this module, and ``harness.metrics`` gathers them.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

from harness.types import Completion, Sample

Normalizer = Literal[
    "strip", "lower", "remove_commas", "remove_dollar", "remove_trailing_period",
    "collapse_spaces", "number", "remove_punctuation",
]
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


class Extraction(BaseModel):
    """How to read the answer out of generated text before comparing."""

    model_config = ConfigDict(extra="forbid")
    regex: str | None = None
    group: int = 1
    # when the regex does not match: the whole text, the last number, or nothing
    fallback: Literal["full", "last_number", "none"] = "full"
    normalize: list[Normalizer] = ["strip"]

    def read(self, text: str) -> str | None:
        found: str | None = text
        if self.regex is not None:
            match = re.search(self.regex, text, flags=re.DOTALL)
            if match:
                found = match.group(self.group) if match.groups() else match.group(0)
            elif self.fallback == "last_number":
                numbers = _NUMBER.findall(text)
                found = numbers[-1] if numbers else None
            elif self.fallback == "none":
                found = None
        return None if found is None else normalize(found, self.normalize)


def normalize(text: str, steps: list[Normalizer]) -> str:
    for step in steps:
        if step == "strip":
            text = text.strip()
        elif step == "lower":
            text = text.lower()
        elif step == "remove_commas":
            text = text.replace(",", "")
        elif step == "remove_dollar":
            text = text.replace("$", "")
        elif step == "remove_trailing_period":
            text = text.rstrip().rstrip(".")
        elif step == "collapse_spaces":
            text = " ".join(text.split())
        elif step == "number":
            text = _canonical_number(text)
        elif step == "remove_punctuation":  # ASCII punctuation, as lm_eval's ignore_punctuation
            text = text.translate(_NO_PUNCTUATION)
    return text


def _canonical_number(text: str) -> str:
    # "1,234", "$18.", "50%" and "5.00" all read as numbers ("1234", "18", "50", "5")
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".").removesuffix("%")
    try:
        value = float(cleaned)
    except ValueError:
        return text.strip()
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return repr(value)


@dataclass(frozen=True)
class MetricValue:
    value: float
    extracted: str | None  # what the metric compared, for the audit trail
    confidence: float | None = None  # probability the model gave its answer (calibration)


class Metric(Protocol):
    """A per-sample metric. The run-level number is the mean of the values (with a
    bootstrap CI) unless the metric is also an ``AggregateMetric``."""

    # read-only members: metrics are frozen dataclasses
    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> Literal["generate", "multiple_choice"]: ...

    @property
    def higher_is_better(self) -> bool: ...  # read by `compare` to call a change worse

    def __call__(self, sample: Sample, completion: Completion,
                 extraction: Extraction) -> MetricValue: ...


@runtime_checkable
class BatchMetric(Protocol):
    """A metric that is cheaper over all samples at once (e.g. code run in parallel).

    The runner calls ``score_batch`` instead of calling the metric per sample;
    it must return one value per pair, in order.
    """

    def score_batch(self, pairs: Sequence[tuple[Sample, Completion]],
                    extraction: Extraction) -> list[MetricValue]: ...


@runtime_checkable
class AggregateMetric(Protocol):
    """A metric whose run-level number is not the mean of per-sample values
    (e.g. calibration error): returns (value, ci_low, ci_high)."""

    def aggregate(self, values: Sequence[MetricValue],
                  seed: int) -> tuple[float, float, float]: ...


M = TypeVar("M", bound=Metric)
METRICS: dict[str, Metric] = {}  # filled by register_metric; read it as harness.metrics.METRICS


def register_metric(metric: M) -> M:
    """Make ``metric`` nameable by suites under ``metric.name``.

    Each family module registers its metrics when imported, and importing any part
    of ``harness.metrics`` imports every family first, so the registry is complete
    whatever is imported first. Two metrics of one name are a programming error."""
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} is registered twice")
    if metric.kind not in ("generate", "multiple_choice"):
        raise ValueError(f"metric {metric.name!r}: unknown kind {metric.kind!r}")
    METRICS[metric.name] = metric
    return metric
