"""Answer rules that follow lm_eval 0.4.13: ``aime_exact_match`` (its aime
``process_results``; the expected values were checked against lm_eval's own code by
benchmarks/generate_agreement.py) and ``nq_open_exact_match`` (its nq_open scoring)."""

from __future__ import annotations

import json

import pytest

from harness.metrics import METRICS
from harness.metrics.base import Extraction
from harness.metrics.math_answer import answer_of, normalised
from harness.types import Completion, Sample


@pytest.mark.parametrize(("response", "target", "right"), [
    ("The answer is $70$.", "70", True),        # between the first and last $
    ("$\\boxed{70}$", "70", True),
    ("\\boxed{070}", "70", False),              # no integer conversion: strings compared
    ("so \\boxed 70$ done", "70", True),        # "\boxed " runs to the next $
    ("\\fbox{70}", "70", False),                 # found, but only \boxed is unwrapped
    ("Answer: 70", "70", False),                 # no $ and no box: the whole response
    ("$k=70$", "70", True),                      # "k = " dropped (two characters or fewer)
    ("$abc = 70$", "70", False),
    ("\\boxed{1/2}", "\\frac{1}{2}", True),
    ("\\boxed{0.5}", "\\frac{1}{2}", True),
    ("$.5$", "0.5", True),
    ("\\boxed{\\dfrac{3}{4}}", "\\frac34", True),
    ("\\boxed{3/x}", "3/x", True),               # not two integers: raw strings compared
    ("\\boxed{90^\\circ}", "90", True),
    ("\\boxed{5\\text{ a}\\text{ b}}", "5", False),  # two unit markers: raw comparison
    ("\\boxed{2\\sqrt}", "2\\sqrt", True),       # \sqrt with nothing after: raw comparison
    ("\\boxed{1} and \\boxed{2}", "2", True),    # the last box
    ("\\boxed{7", "7", False),                   # unclosed: the whole response
    ("\\boxed{ 4 2 }", "42", True),
])
def test_answer_rule(response: str, target: str, right: bool) -> None:
    metric = METRICS["aime_exact_match"]
    value = metric(Sample("1", {}, target), Completion(texts=(response,)), Extraction())
    assert value.value == float(right), (answer_of(response), normalised(target))


def test_normalisation_steps() -> None:
    assert normalised("\\left(3\\right)") == "(3)"
    assert normalised("1\\!000") == "1000"
    assert normalised("\\frac12") == "\\frac{1}{2}"
    assert normalised("\\frac1{7}") == "\\frac{1}{7}"
    assert normalised("50\\%") == "50"


@pytest.mark.parametrize(("answer", "refs", "right"), [
    (" The Beatles", ["Beatles"], True),            # stripped, article and its space dropped
    ("beatles.", ["The Beatles"], True),            # case and punctuation
    ("Sebastian  Vettel", ["Sebastian Vettel"], False),  # spaces are kept as they are
    ("Britain", ["British", "Great Britain"], False),
    ("Great Britain", ["British", "Great Britain"], True),  # any reference
    ("Theory", ["ory"], False),                     # "The" only with its space
    ("a cat", ["cat"], True),
])
def test_nq_open_exact_match(answer: str, refs: list[str], right: bool) -> None:
    metric = METRICS["nq_open_exact_match"]
    value = metric(Sample("1", {}, json.dumps(refs)), Completion(texts=(answer,)), Extraction())
    assert value.value == float(right)
