"""GSM8K's two lm_eval filters and its exact match (lm_eval 0.4.13 ``gsm8k`` 3.0 rules)."""

from __future__ import annotations

import pytest

from harness.metrics import METRICS, Extraction
from harness.metrics.gsm8k import INVALID, cleaned, filtered
from harness.types import Completion, Sample

# (response, strict-match answer, flexible-extract answer)
FILTERS = [
    ("She has 3 + 4 = 7 apples.\n#### 7", "7", "7"),
    ("#### 1,234.50 dollars", "1,234.50", "1,234.50"),
    ("#### -12\nThen 5 more", "-12", "5"),
    ("The answer is $18.", INVALID, "$18."),
    ("####18", INVALID, "18"),  # strict needs the space after ####
    ("No numbers here.", INVALID, INVALID),
    ("It is 7", INVALID, "7"),  # one digit: the second alternative
    ("#### 5\n#### 6", "5", "6"),  # strict takes the first, flexible the last
]


@pytest.mark.parametrize(("response", "strict", "flexible"), FILTERS)
def test_filters(response: str, strict: str, flexible: str) -> None:
    assert filtered(response, flexible=False) == strict
    assert filtered(response, flexible=True) == flexible


def test_clean_up_matches_both_sides() -> None:
    assert cleaned("$1,000.") == "1000"
    assert cleaned("Janet pays 5 * 2 = 10.\n#### 10") == "10"
    assert cleaned("[invalid]") == "[invalid]"


@pytest.mark.parametrize(("response", "strict", "flexible"), [
    ("So 1,000 in all.\n#### 1,000", 1.0, 1.0),
    ("The total is $1000.", 0.0, 1.0),
    ("#### 999\nso 1000", 0.0, 1.0),
    ("#### 1000.", 1.0, 1.0),  # a trailing period is dropped before comparing
])
def test_metrics_score_against_the_target(response: str, strict: float, flexible: float) -> None:
    sample = Sample("1", {"answer": "... #### 1,000"}, "1,000")
    completion = Completion(texts=(response,))
    got = [METRICS[name](sample, completion, Extraction()).value
           for name in ("gsm8k_strict_match", "gsm8k_flexible_extract")]
    assert got == [strict, flexible]
