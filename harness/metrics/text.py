"""Text-overlap metrics, majority vote over samples, and calibration error.

Overlap metrics (token F1, exact match, BLEU, chrF, ROUGE-L) score the
extracted answer against one or more references: a suite's ``target`` may
render a JSON list of strings (``{{ answers | tojson }}``) and the best match
counts, as in the open-domain QA literature. All values are in [0, 1]; BLEU
and chrF, which sacrebleu reports on 0-100, are divided by 100. They are
sentence-level scores averaged over items (with the usual bootstrap CI), which
is not the same number as corpus BLEU over the whole run.

``nq_open_exact_match`` is lm-evaluation-harness's ``nq_open`` scoring (0.4.13): the
answer stripped, then for answer and each reference its ``exact_match`` options in
its order (the articles "The ", "A ", "An " and lowercase forms with their space
removed, lowercased, every ASCII punctuation mark removed, spaces kept), right if
any reference matches.

``maj@k`` reads an answer from each of the n sampled texts and votes;
``ece`` is a run-level number (an ``AggregateMetric``), not a mean.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from harness.metrics.base import Extraction, MetricValue, normalize, register_metric
from harness.stats.bootstrap import DEFAULT_ROUNDS
from harness.types import Completion, Sample

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLE_WITH_SPACE = re.compile(r"\b(?:The |the |An |A |a |an )")  # nq_open's regex


def _value(value: float, extracted: str | None, confidence: float | None = None
           ) -> MetricValue:
    return MetricValue(value, extracted, confidence)


def references(target: str | int | None) -> list[str]:
    """The reference answers of a sample: a JSON list of strings, or the target itself."""
    text = "" if target is None else str(target)
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            return [text]
        if isinstance(parsed, list) and parsed and all(isinstance(p, str) for p in parsed):
            return parsed
    return [text]


def squad_normalize(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse spaces (SQuAD's rule)."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    """F1 of the bags of normalised tokens; two empty answers agree (1.0)."""
    predicted = squad_normalize(prediction).split()
    expected = squad_normalize(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    overlap = sum((Counter(predicted) & Counter(expected)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common subsequence, Porter stemming), rouge-score's."""
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


def bleu(prediction: str, refs: Sequence[str]) -> float:
    """sacrebleu's sentence BLEU (exp smoothing, 13a tokenizer) over all references, / 100."""
    import sacrebleu

    return min(float(sacrebleu.sentence_bleu(prediction, list(refs)).score) / 100, 1.0)


def chrf(prediction: str, refs: Sequence[str]) -> float:
    """sacrebleu's sentence chrF (character 6-grams, beta 2), / 100."""
    import sacrebleu

    return min(float(sacrebleu.sentence_chrf(prediction, list(refs)).score) / 100, 1.0)


@dataclass(frozen=True)
class OverlapMetric:
    """Best score of the extracted answer against any reference."""

    name: str
    measure: Literal["token_f1", "exact_match_any", "rouge_l", "bleu", "chrf"]
    kind: Literal["generate", "multiple_choice"] = "generate"
    higher_is_better: bool = True

    def __call__(self, sample: Sample, completion: Completion,
                 extraction: Extraction) -> MetricValue:
        answer = extraction.read(completion.texts[0])
        if answer is None:
            return _value(0.0, None)
        refs = references(sample.target)
        if self.measure == "bleu":
            return _value(bleu(answer, refs), answer)
        if self.measure == "chrf":
            return _value(chrf(answer, refs), answer)
        if self.measure == "token_f1":
            return _value(max(token_f1(answer, r) for r in refs), answer)
        if self.measure == "rouge_l":
            return _value(max(rouge_l(answer, r) for r in refs), answer)
        normalized = squad_normalize(answer)
        return _value(float(any(normalized == squad_normalize(r) for r in refs)), answer)


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """The most frequent answer; ties go to the answer seen first among the samples.

    Texts with no extractable answer (None) do not vote; if none has one, None.
    """
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


@dataclass(frozen=True)
class MajorityAtK:
    """maj@k: extract an answer from each of the k = generation.n texts, vote, compare.

    With n = 1 it equals ``exact_match``.
    """

    name: str = "maj@k"
    kind: Literal["generate", "multiple_choice"] = "generate"
    higher_is_better: bool = True

    def __call__(self, sample: Sample, completion: Completion,
                 extraction: Extraction) -> MetricValue:
        voted = majority_vote([extraction.read(text) for text in completion.texts])
        target = normalize(str(sample.target), extraction.normalize)
        return _value(float(voted is not None and voted == target), voted)


ECE_BINS = 10


def choice_probabilities(loglikelihoods: Sequence[float]) -> np.ndarray:
    """Softmax over the choices' log-likelihoods (the model's belief restricted to them)."""
    scores = np.asarray(loglikelihoods, dtype=float)
    weights = np.exp(scores - scores.max())
    return weights / weights.sum()


def expected_calibration_error(confidences: Sequence[float] | np.ndarray,
                               correct: Sequence[float] | np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """Sum over equal-width confidence bins of (share of items) x |accuracy - mean confidence|.

    Bins are [0, 1/b), [1/b, 2/b), ..., [(b-1)/b, 1]; a confidence of exactly 1 falls in the last.
    """
    conf = np.asarray(confidences, dtype=float)
    hits = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return math.nan
    index = np.minimum((conf * bins).astype(int), bins - 1)
    gap = np.abs(np.bincount(index, hits, bins) - np.bincount(index, conf, bins))
    return float(gap.sum() / conf.size)  # per bin: n_b/N * |acc_b - conf_b| = |sum diff|/N


@dataclass(frozen=True)
class CalibrationError:
    """Expected calibration error of multiple-choice answers (10 equal-width bins).

    Per item: the confidence is the softmax probability of the argmax choice over
    the choices' log-likelihoods, and the value is whether that choice is right.
    The run-level number is the ECE; its 95% CI is a seeded percentile bootstrap
    that resamples items and recomputes the ECE.
    """

    name: str = "ece"
    bins: int = ECE_BINS
    rounds: int = DEFAULT_ROUNDS
    kind: Literal["generate", "multiple_choice"] = "multiple_choice"
    higher_is_better: bool = False  # an error: lower is better

    def __call__(self, sample: Sample, completion: Completion,
                 extraction: Extraction) -> MetricValue:
        probabilities = choice_probabilities(completion.loglikelihoods)
        best = int(np.argmax(probabilities))
        return _value(float(best == sample.target), str(best), float(probabilities[best]))

    def aggregate(self, values: Sequence[MetricValue],
                  seed: int) -> tuple[float, float, float]:
        conf = np.asarray([v.confidence for v in values], dtype=float)
        hits = np.asarray([v.value for v in values], dtype=float)
        point = expected_calibration_error(conf, hits, self.bins)
        if conf.size < 2:
            return point, point, point
        rng = np.random.default_rng(seed)
        resampled = [
            expected_calibration_error(conf[idx], hits[idx], self.bins)
            for idx in rng.integers(0, conf.size, size=(self.rounds, conf.size))
        ]
        low, high = np.percentile(resampled, [2.5, 97.5])
        return point, float(low), float(high)


def nq_open_normalize(text: str) -> str:
    return _ARTICLE_WITH_SPACE.sub("", text).lower().translate(_PUNCTUATION)


@dataclass(frozen=True)
class NQOpenMatch:
    name: str = "nq_open_exact_match"
    kind: Literal["generate", "multiple_choice"] = "generate"
    higher_is_better: bool = True

    def __call__(self, sample: Sample, completion: Completion,
                 extraction: Extraction) -> MetricValue:
        answer = completion.texts[0].strip()
        mine = nq_open_normalize(answer)
        right = any(mine == nq_open_normalize(ref) for ref in references(sample.target))
        return _value(float(right), answer)


register_metric(NQOpenMatch())
for _measure in ("token_f1", "exact_match_any", "rouge_l", "bleu", "chrf"):
    register_metric(OverlapMetric(_measure, _measure))
register_metric(MajorityAtK())
register_metric(CalibrationError())
