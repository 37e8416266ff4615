"""Per-sample metrics and how a generated answer is read.

A metric looks at one sample and its completion and returns a value (and the
answer it read, kept for audit). Suites name metrics from ``METRICS``; the
names are validated, so a typo fails at load time, not after a long run.
Samples whose request failed never reach a metric: they are counted apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from harness.types import Completion, Sample

Normalizer = Literal[
    "strip", "lower", "remove_commas", "remove_dollar", "remove_trailing_period",
    "collapse_spaces", "number",
]
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


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
    name: str
    kind: Literal["generate", "multiple_choice"]

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


@dataclass(frozen=True)
class ExactMatch:
    """1 if the extracted, normalised answer equals the normalised target."""

    name: str = "exact_match"
    kind: Literal["generate", "multiple_choice"] = "generate"

    def __call__(self, sample: Sample, completion: Completion,
                 extraction: Extraction) -> MetricValue:
        answer = extraction.read(completion.texts[0])
        target = normalize(str(sample.target), extraction.normalize)
        return MetricValue(float(answer is not None and answer == target), answer)


@dataclass(frozen=True)
class ChoiceAccuracy:
    """1 if the most likely choice is the right one.

    ``per_char`` divides each choice's log-likelihood by its length in bytes
    (acc_norm), which removes the bias towards short choices.
    """

    name: str
    per_char: bool = False
    kind: Literal["generate", "multiple_choice"] = "multiple_choice"

    def __call__(self, sample: Sample, completion: Completion,
                 extraction: Extraction) -> MetricValue:
        scores = list(completion.loglikelihoods)
        if self.per_char:
            scores = [s / max(len(c.encode()), 1) for s, c in zip(scores, sample.choices,
                                                                   strict=True)]
        best = max(range(len(scores)), key=scores.__getitem__)
        return MetricValue(float(best == sample.target), str(best))


METRICS: dict[str, Metric] = {
    "exact_match": ExactMatch(),
    "accuracy": ChoiceAccuracy("accuracy"),
    "acc_norm": ChoiceAccuracy("acc_norm", per_char=True),
}

# text-overlap, vote and calibration metrics (harness/metrics_text.py) and IFEval's
# instruction checks (harness/ifeval/); imported here, after the types they use exist
from harness.ifeval.metric import IFEVAL_METRICS  # noqa: E402
from harness.metrics_text import CalibrationError, MajorityAtK, OverlapMetric  # noqa: E402

METRICS.update({
    "token_f1": OverlapMetric("token_f1", "token_f1"),
    "exact_match_any": OverlapMetric("exact_match_any", "exact_match_any"),
    "rouge_l": OverlapMetric("rouge_l", "rouge_l"),
    "bleu": OverlapMetric("bleu", "bleu"),
    "chrf": OverlapMetric("chrf", "chrf"),
    "maj@k": MajorityAtK(),
    "ece": CalibrationError(),
    **IFEVAL_METRICS,
})

# pass@k over code run in the sandbox (harness/metrics_code.py, harness/sandbox.py)
from harness.metrics_code import pass_at_k_metrics  # noqa: E402

METRICS.update(pass_at_k_metrics((1, 5, 10, 100)))
