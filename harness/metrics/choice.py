"""Exact match on a generated answer, and accuracy over multiple-choice log-likelihoods
(``accuracy``, and ``acc_norm`` normalised by each choice's length in bytes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.metrics.base import Extraction, MetricValue, normalize, register_metric
from harness.types import Completion, Sample


@dataclass(frozen=True)
class ExactMatch:
    """1 if the extracted, normalised answer equals the normalised target."""

    name: str = "exact_match"
    kind: Literal["generate", "multiple_choice"] = "generate"
    higher_is_better: bool = True

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
    higher_is_better: bool = True

    def __call__(self, sample: Sample, completion: Completion,
                 extraction: Extraction) -> MetricValue:
        scores = list(completion.loglikelihoods)
        if self.per_char:
            scores = [s / max(len(c.encode()), 1) for s, c in zip(scores, sample.choices,
                                                                   strict=True)]
        best = max(range(len(scores)), key=scores.__getitem__)
        return MetricValue(float(best == sample.target), str(best))


register_metric(ExactMatch())
register_metric(ChoiceAccuracy("accuracy"))
register_metric(ChoiceAccuracy("acc_norm", per_char=True))
