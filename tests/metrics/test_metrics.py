"""Answer extraction, metrics and confidence intervals."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics import METRICS, Extraction, normalize
from harness.stats.bootstrap import bootstrap_mean_ci
from harness.types import Completion, Sample

GSM = Extraction(regex=r"####\s*(-?[$0-9.,]+)", fallback="last_number", normalize=["number"])


@pytest.mark.parametrize(("text", "expected"), [
    ("so 3 + 4 = 7\n#### 7", "7"),
    ("#### 1,234.00", "1234"),
    ("#### $18", "18"),
    ("I think it is 12 apples and then 15.", "15"),
    ("no number at all", None),
    ("#### -3", "-3"),
    ("#### 2.5", "2.5"),
])
def test_gsm8k_style_extraction(text: str, expected: str | None) -> None:
    assert GSM.read(text) == expected


def test_normalisers() -> None:
    assert normalize("  Paris. ", ["strip", "lower", "remove_trailing_period"]) == "paris"
    assert normalize("$1,000", ["remove_dollar", "remove_commas"]) == "1000"
    assert normalize("a   b\n c", ["collapse_spaces"]) == "a b c"


def test_exact_match_and_choice_accuracy() -> None:
    em = METRICS["exact_match"]
    sample = Sample("1", {}, "18")
    assert em(sample, Completion(texts=("#### 18",)), GSM).value == 1.0
    assert em(sample, Completion(texts=("#### 19",)), GSM).value == 0.0
    assert em(sample, Completion(texts=("nothing",)), GSM).value == 0.0

    mc = Sample("2", {}, 1, ("a", "much longer choice"))
    completion = Completion(loglikelihoods=(-1.0, -5.0))
    assert METRICS["accuracy"](mc, completion, Extraction()).value == 0.0
    # per byte, the long choice is more likely: -5/18 > -1/1
    assert METRICS["acc_norm"](mc, completion, Extraction()).value == 1.0


def test_bootstrap_ci_is_seeded_and_covers_the_truth() -> None:
    rng = np.random.default_rng(0)
    assert bootstrap_mean_ci([1, 0, 1, 1], seed=3) == bootstrap_mean_ci([1, 0, 1, 1], seed=3)
    covered, repeats, truth = 0, 300, 0.3
    for i in range(repeats):
        values = rng.random(200) < truth
        _, low, high = bootstrap_mean_ci(values.astype(float), seed=i, rounds=500)
        covered += low <= truth <= high
    assert 0.92 <= covered / repeats <= 0.98, covered / repeats


def test_degenerate_inputs() -> None:
    assert np.isnan(bootstrap_mean_ci([])[0])
    assert bootstrap_mean_ci([1.0]) == (1.0, 1.0, 1.0)
