"""Text-overlap metrics, maj@k and expected calibration error.

Expected values are worked out by hand (token F1, ROUGE-L's longest common
subsequence, ECE bins) or are the libraries' own documented behaviour
(identical sentences score 100 in sacrebleu).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.metrics import METRICS, AggregateMetric, Extraction
from harness.metrics.text import (
    bleu,
    chrf,
    expected_calibration_error,
    majority_vote,
    references,
    rouge_l,
    squad_normalize,
    token_f1,
)
from harness.runner import score_all
from harness.suites.config import SuiteConfig
from harness.types import Completion, Sample

PLAIN = Extraction(normalize=["strip"])
GSM = Extraction(regex=r"answer is\s*(-?[$0-9.,]*[0-9])", fallback="last_number",
                 normalize=["number"])


def _gen(target: str, *texts: str) -> tuple[Sample, Completion]:
    return Sample("1", {}, target), Completion(texts=texts)


# -- token F1 and exact match against several references ----------------------

def test_squad_normalisation_drops_case_punctuation_and_articles() -> None:
    assert squad_normalize("The  Eiffel Tower!") == "eiffel tower"
    assert squad_normalize("an apple, a pear") == "apple pear"


@pytest.mark.parametrize(("prediction", "reference", "expected"), [
    ("the cat sat", "a cat sat down", 2 * 1.0 * (2 / 3) / (1.0 + 2 / 3)),  # P 2/2, R 2/3
    ("Paris", "paris.", 1.0),
    ("London", "Paris", 0.0),
    ("cat cat dog", "cat dog dog", 2 / 3),  # overlap counts min multiplicities: 2 of 3
    ("", "", 1.0),
    ("the", "Paris", 0.0),  # nothing left after normalisation on one side
])
def test_token_f1_hand_checked(prediction: str, reference: str, expected: float) -> None:
    assert token_f1(prediction, reference) == pytest.approx(expected)


def test_references_read_a_json_list_or_the_plain_target() -> None:
    assert references('["Sebastian Vettel", "Vettel"]') == ["Sebastian Vettel", "Vettel"]
    assert references("[not json") == ["[not json"]
    assert references("Paris") == ["Paris"]


def test_overlap_metrics_take_the_best_reference() -> None:
    target = json.dumps(["Sebastian Vettel", "Vettel"])
    sample, completion = _gen(target, " vettel ")
    assert METRICS["exact_match_any"](sample, completion, PLAIN).value == 1.0
    assert METRICS["token_f1"](sample, completion, PLAIN).value == 1.0
    sample, completion = _gen(target, "Lewis Hamilton")
    assert METRICS["exact_match_any"](sample, completion, PLAIN).value == 0.0
    assert METRICS["token_f1"](sample, completion, PLAIN).value == 0.0
    partial = METRICS["token_f1"](*_gen(target, "Sebastian"), PLAIN).value
    assert partial == pytest.approx(2 / 3)  # vs "Sebastian Vettel": P 1, R 1/2


# -- ROUGE-L, BLEU, chrF (rouge-score and sacrebleu) --------------------------

def test_rouge_l_is_the_lcs_f_measure() -> None:
    # LCS of "the cat sat on the mat" / "the cat is on the mat" is 5 tokens of 6 each
    assert rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    assert rouge_l("completely different words", "the cat is on the mat") == 0.0
    # stemming: "cats running" matches "cat run"
    assert rouge_l("cats running", "cat run") == pytest.approx(1.0)


def test_bleu_and_chrf_are_scaled_to_unit_interval() -> None:
    assert bleu("The cat is on the mat.", ["The cat is on the mat."]) == pytest.approx(1.0)
    assert chrf("The cat is on the mat.", ["The cat is on the mat."]) == pytest.approx(1.0)
    assert bleu("xyz qqq", ["The cat is on the mat."]) < 0.05
    assert chrf("xyz qqq", ["The cat is on the mat."]) < 0.05
    middle = bleu("the cat sat on the mat", ["the cat is on the mat"])
    assert 0.2 < middle < 0.6
    # a second reference can only help
    assert bleu("the cat sat on the mat", ["the cat is on the mat", "the cat sat on the mat"]) \
        == pytest.approx(1.0)


def test_overlap_metric_without_an_extracted_answer_scores_zero() -> None:
    strict = Extraction(regex=r"ANSWER: (\w+)", fallback="none")
    result = METRICS["rouge_l"](*_gen("Paris", "I do not know"), strict)
    assert result.value == 0.0 and result.extracted is None


# -- maj@k --------------------------------------------------------------------

def test_majority_vote_breaks_ties_by_first_appearance() -> None:
    assert majority_vote(["3", "5", "5", "3", "7"]) == "3"  # 3 and 5 tie; 3 came first
    assert majority_vote(["5", "3", "3", "5"]) == "5"
    assert majority_vote([None, "4", None, None]) == "4"  # no answer does not vote
    assert majority_vote([None, None]) is None
    assert majority_vote(["2", "9", "9"]) == "9"


def test_maj_at_k_votes_over_extracted_answers() -> None:
    maj = METRICS["maj@k"]
    texts = ("so the answer is 12", "the answer is 1,2", "I get 15", "answer is 15.",
             "answer is $12")
    result = maj(*_gen("12", *texts), GSM)
    assert (result.value, result.extracted) == (1.0, "12")  # "1,2" reads as 12: three votes
    tie = maj(*_gen("15", "answer is 15", "answer is 12", "answer is 12", "answer is 15"), GSM)
    assert (tie.value, tie.extracted) == (1.0, "15")  # 2-2 tie: the first seen wins
    single = maj(*_gen("7", "the answer is 8"), GSM)
    assert single.value == METRICS["exact_match"](*_gen("7", "the answer is 8"), GSM).value == 0


# -- expected calibration error ---------------------------------------------------

def test_ece_of_perfect_calibration_is_zero() -> None:
    confidences = [0.95] * 100 + [0.55] * 20
    correct = [1] * 95 + [0] * 5 + [1] * 11 + [0] * 9
    assert expected_calibration_error(confidences, correct) == pytest.approx(0.0, abs=1e-12)


def test_ece_hand_checked_bins() -> None:
    # bin [0.6, 0.7): one item, right, conf 0.6 -> gap 0.4; bin [0.9, 1]: conf 0.9, wrong -> 0.9
    assert expected_calibration_error([0.6, 0.9], [1, 0]) == pytest.approx(0.5 * 0.4 + 0.5 * 0.9)
    # an overconfident model: always 100% sure, right half the time
    assert expected_calibration_error([1.0] * 10, [1, 0] * 5) == pytest.approx(0.5)
    # within one bin the gaps of its items average out before the absolute value
    assert expected_calibration_error([0.71, 0.79], [1, 0]) == pytest.approx(abs(0.5 - 0.75))
    assert math.isnan(expected_calibration_error([], []))


def _mc(target: int, lls: list[float]) -> tuple[Sample, Completion]:
    return (Sample("x", {}, target, tuple("abcd"[: len(lls)])),
            Completion(loglikelihoods=tuple(lls)))


def test_ece_metric_reads_softmax_confidence_and_aggregates_with_ci() -> None:
    ece = METRICS["ece"]
    assert isinstance(ece, AggregateMetric)
    value = ece(*_mc(1, [math.log(0.2), math.log(0.7), math.log(0.1)]), PLAIN)
    assert value.value == 1.0 and value.confidence == pytest.approx(0.7)
    assert value.extracted == "1"
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(400):  # a model right exactly as often as it is confident: ECE near 0
        p = float(rng.uniform(0.5, 1.0))
        right = int(rng.uniform() < p)
        lls = [math.log(p), math.log(1 - p)]
        pairs.append(_mc(0 if right else 1, lls))
    results = [ece(s, c, PLAIN) for s, c in pairs]
    point, low, high = ece.aggregate(results, seed=3)
    assert point < 0.08 and low <= point <= high and high < 0.15
    assert ece.aggregate(results, seed=3) == (point, low, high)  # seeded
    overconfident = [ece(*_mc(1, [0.0, -5.0]), PLAIN) for _ in range(50)]
    assert ece.aggregate(overconfident, seed=0)[0] == pytest.approx(1 / (1 + math.exp(-5)))


def test_runner_uses_aggregate_for_ece_and_mean_for_accuracy() -> None:
    config = SuiteConfig.model_validate({
        "name": "t", "license": "x", "kind": "multiple_choice", "data": {"path": "d.jsonl"},
        "prompt": {"text": "q"}, "choices": {"field": "c"}, "metrics": ["accuracy", "ece"]})
    scored = [_mc(0, [0.0, -5.0]), _mc(1, [0.0, -5.0]), _mc(0, [-0.1, -0.2])]
    summaries = score_all(config, [*scored, (scored[0][0], None)], seed=0).summaries
    by_name = {s.metric: s for s in summaries}
    assert by_name["accuracy"].value == pytest.approx(2 / 3)
    assert by_name["ece"].n == 3 and by_name["ece"].n_errors == 1
    confs = [1 / (1 + math.exp(-5))] * 2 + [1 / (1 + math.exp(-0.1))]
    assert by_name["ece"].value == pytest.approx(expected_calibration_error(confs, [1, 0, 1]))
