"""IFEval's four accuracies from the instruction checks.

Strict: the response as generated (a blank one follows no instruction). Loose: an
instruction counts as followed if any of eight variants of the response follows
it: the response, without its first line, without its last line, without both
(each stripped), and each of those with every asterisk removed (blank variants are
not tried). This forgives a
leading "Sure, here is..." line, a trailing remark, and markdown emphasis.

Prompt level: 1 if every instruction of the prompt is followed (a mean over
prompts). Instruction level: followed instructions / all instructions over the
run, a ratio of sums (an ``AggregateMetric``) with a bootstrap CI that
resamples prompts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from harness.errors import DataError
from harness.metrics.base import Extraction, MetricValue, register_metric
from harness.metrics.ifeval.checks import UnknownInstruction, check
from harness.stats.bootstrap import DEFAULT_ROUNDS
from harness.types import Completion, Sample


def _value(value: float, extracted: str | None, confidence: float | None = None
           ) -> MetricValue:
    return MetricValue(value, extracted, confidence)


def loose_variants(response: str) -> list[str]:
    """The eight variants of the loose score (the trimmed ones stripped, as the
    reference strips them), blank ones dropped."""
    lines = response.split("\n")
    trimmed = [response, *("\n".join(part).strip()
                           for part in (lines[1:], lines[:-1], lines[1:-1]))]
    variants = trimmed + [t.replace("*", "") for t in trimmed]
    return [v for v in variants if v.strip()]


def follows(doc: dict[str, Any], response: str, loose: bool) -> list[tuple[str, bool]]:
    """(instruction id, followed) for each instruction of an IFEval row, in order."""
    ids: list[str] = list(doc["instruction_id_list"])
    kwargs: list[dict[str, Any] | None] = list(doc.get("kwargs") or [{}] * len(ids))
    # a blank response follows nothing, not even "no commas" (as in the reference)
    candidates = loose_variants(response) if loose else [response] if response.strip() else []
    results = []
    for instruction, given in zip(ids, kwargs, strict=True):
        try:
            ok = any(check(instruction, text, given) for text in candidates)
        except UnknownInstruction:
            raise DataError("ifeval", "instruction_id_list",
                            f"no check for instruction {instruction!r}; it cannot be scored "
                            "(harness/metrics/ifeval/checks.py lists the implemented ones)"
                            ) from None
        results.append((instruction, ok))
    return results


@dataclass(frozen=True)
class IFEvalAccuracy:
    """One of IFEval's four numbers; ``extracted`` records each instruction's outcome."""

    name: str
    loose: bool
    level: Literal["prompt", "instruction"]
    rounds: int = DEFAULT_ROUNDS
    kind: Literal["generate", "multiple_choice"] = "generate"
    higher_is_better: bool = True

    def __call__(self, sample: Sample, completion: Completion,
                 extraction: Extraction) -> MetricValue:
        outcome = follows(sample.doc, completion.texts[0], self.loose)
        followed = sum(ok for _, ok in outcome)
        value = (float(followed == len(outcome)) if self.level == "prompt"
                 else followed / len(outcome))
        return _value(value, json.dumps([[i, ok] for i, ok in outcome]))

    def aggregate(self, values: Sequence[MetricValue],
                  seed: int) -> tuple[float, float, float]:
        outcomes = [json.loads(v.extracted or "[]") for v in values]
        followed = np.asarray([sum(ok for _, ok in o) for o in outcomes], dtype=float)
        total = np.asarray([len(o) for o in outcomes], dtype=float)
        if self.level == "prompt":
            followed, total = (followed == total).astype(float), np.ones_like(total)
        if total.sum() == 0:
            return float("nan"), float("nan"), float("nan")
        point = float(followed.sum() / total.sum())
        if total.size < 2:
            return point, point, point
        idx = np.random.default_rng(seed).integers(0, total.size, size=(self.rounds, total.size))
        ratios = followed[idx].sum(axis=1) / np.maximum(total[idx].sum(axis=1), 1)
        low, high = np.percentile(ratios, [2.5, 97.5])
        return point, float(low), float(high)


register_metric(IFEvalAccuracy("ifeval_prompt_strict", loose=False, level="prompt"))
register_metric(IFEvalAccuracy("ifeval_prompt_loose", loose=True, level="prompt"))
register_metric(IFEvalAccuracy("ifeval_instruction_strict", loose=False, level="instruction"))
register_metric(IFEvalAccuracy("ifeval_instruction_loose", loose=True, level="instruction"))
