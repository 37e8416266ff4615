"""`evalarena compare`: paired differences, McNemar, sign-flip p-values, Holm, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from math import comb
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, CliRun
from scipy.stats import permutation_test

from harness.stats.bootstrap import bootstrap_mean_ci
from harness.stats.paired import (
    PairedResult,
    compare_metric,
    decide,
    holm,
    mcnemar_exact,
    sign_flip_p,
)


def test_mcnemar_exact_matches_the_binomial_by_hand() -> None:
    # 1 item only A gets right, 9 only B, 5 both, 5 neither
    a = np.array([1] * 1 + [0] * 9 + [1] * 5 + [0] * 5)
    b = np.array([0] * 1 + [1] * 9 + [1] * 5 + [0] * 5)
    by_hand = 2 * (comb(10, 0) + comb(10, 1)) / 2**10
    assert mcnemar_exact(a, b) == pytest.approx(by_hand)  # 0.021484375
    assert mcnemar_exact(b, a) == pytest.approx(by_hand)
    assert mcnemar_exact(a, a) == 1.0


def test_mcnemar_exact_is_close_to_the_chi_square_for_many_discordant_pairs() -> None:
    from scipy.stats import chi2

    a = np.array([1] * 60 + [0] * 90 + [1] * 200)
    b = np.array([0] * 60 + [1] * 90 + [1] * 200)
    corrected = (abs(60 - 90) - 1) ** 2 / (60 + 90)  # McNemar with continuity correction
    assert mcnemar_exact(a, b) == pytest.approx(chi2.sf(corrected, 1), rel=0.1)


def test_sign_flip_exact_by_hand_and_against_scipy() -> None:
    # the 8 sign patterns of (1, 2, 3) give |sums| 6 4 2 0 0 2 4 6: two reach 6
    assert sign_flip_p(np.array([1.0, 2.0, 3.0])) == pytest.approx(2 / 8)
    assert sign_flip_p(np.zeros(5)) == 1.0
    rng = np.random.default_rng(3)
    diffs = rng.normal(0.35, 1.0, 40)
    ours = sign_flip_p(diffs, seed=1, rounds=50_000)
    theirs = permutation_test((diffs,), np.sum, permutation_type="samples",
                              n_resamples=50_000, random_state=2).pvalue
    assert ours == pytest.approx(theirs, abs=0.01)
    # clusters flip whole: with one cluster per item it is the plain test
    assert sign_flip_p(diffs, seed=1, clusters=list(range(40))) == sign_flip_p(diffs, seed=1)


def test_holm_by_hand() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2 x 0.8, capped at 1; monotone
    assert holm([]) == []


def test_paired_interval_is_the_bootstrap_of_differences() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(300)
    b = a + rng.normal(0.05, 0.1, 300)
    result = compare_metric("score", a, b, seed=5)
    assert result.test == "sign-flip"
    assert (result.diff, result.ci_low, result.ci_high) == bootstrap_mean_ci(b - a, seed=5)
    assert result.ci_low > 0 and result.p < 0.001
    binary = compare_metric("em", [1, 0, 1, 1], [1, 1, 1, 1])
    assert binary.test == "mcnemar-exact" and binary.p == 1.0
    clustered = compare_metric("em", [1, 0, 1, 1], [0, 1, 1, 1], clusters=["x", "x", "y", "y"])
    assert clustered.test == "sign-flip-clustered"


def test_paired_interval_covers_a_known_difference() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    for seed in range(400):
        skill = rng.random(150)  # items differ in difficulty; both runs see the same items
        a = (rng.random(150) < skill).astype(float)
        b = (rng.random(150) < np.clip(skill + 0.1, 0, 1)).astype(float)
        truth = float(np.mean(np.clip(skill + 0.1, 0, 1) - skill))
        _, low, high = bootstrap_mean_ci(b - a, seed=seed, rounds=1000)
        covered += low <= truth <= high
    assert 0.92 <= covered / 400 <= 0.98


def _result(metric: str, diff: float, p: float) -> PairedResult:
    return PairedResult(metric, 100, 0.5, 0.5 + diff, diff, diff - 0.01, diff + 0.01, p, "t")


def test_verdicts_after_holm_direction_and_min_delta() -> None:
    results = [_result("up", 0.1, 0.001), _result("down", -0.1, 0.001),
               _result("noise", -0.1, 0.2), _result("tiny", -0.005, 0.001),
               _result("loss", 0.1, 0.001)]
    decided = decide(results, [True, True, True, True, False], alpha=0.05, min_delta=0.01)
    assert [r.verdict for r in decided] == ["better", "worse", "not significant",
                                            "within min-delta", "worse"]
    assert decided[0].p_holm == pytest.approx(0.005)
    # Holm can take significance away: 0.03 alone passes, among five it does not
    assert decide([_result("m", -0.1, 0.03)], [True])[0].verdict == "worse"
    crowd = [_result(f"m{i}", -0.1, 0.03) for i in range(5)]
    assert {r.verdict for r in decide(crowd, [True] * 5)} == {"not significant"}


# -- the command, on real runs in a fresh SQLite file ----------------------------------

def _answers(tmp_path: Path, name: str, right_every: int, keep: int | None = None) -> Path:
    rows = [json.loads(line) for line in (REPO / "tasks" / "smoke.jsonl").read_text()
            .splitlines() if line.strip()][:keep]
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(
        json.dumps({"id": r["id"], "answer": r["answer"] if i % right_every == 0 else "nope"})
        + "\n" for i, r in enumerate(rows)))
    return path


def _import(db: str, file: Path, name: str, suite: str = "smoke") -> str:
    result = subprocess.run([sys.executable, "-m", "harness", "import", str(file), "--suite",
                             suite, "--name", name, "--db", db], capture_output=True, text=True,
                            check=False, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout.split(" as run ")[1].split()[0]


@dataclass(frozen=True)
class Runs:
    db: str
    good: str  # 24/24 right
    poor: str  # 6/24 right
    half: str  # the first 12 items only, every other one right
    other: str  # a run of another suite with the same items


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Imported answers: real runs in a fresh SQLite file without loading a model."""
    tmp = tmp_path_factory.mktemp("compare")
    db = str(tmp / "c.db")
    other_suite = tmp / "other.yaml"
    other_suite.write_text((REPO / "tasks" / "smoke.yaml").read_text()
                           .replace("name: smoke\n", "name: other\n")
                           .replace("path: smoke.jsonl", f"path: {REPO / 'tasks/smoke.jsonl'}"))
    return Runs(db, _import(db, _answers(tmp, "good", 1), "good"),
                _import(db, _answers(tmp, "poor", 4), "poor"),
                _import(db, _answers(tmp, "half", 2, keep=12), "half"),
                _import(db, _answers(tmp, "o", 1), "o", str(other_suite)))


def test_compare_cli_exit_codes_and_json(cli: CliRun, runs: Runs) -> None:
    db, good, poor = runs.db, runs.good, runs.poor
    shown = cli("compare", good, poor, "--db", db, env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    line = next(li for li in shown.stdout.splitlines() if "exact_match" in li)
    assert "1.0000" in line and "0.2500" in line and "-0.7500" in line and "worse" in line
    assert "mcnemar-exact" in line

    gate = cli("compare", good, poor, "--db", db, "--fail-if-worse")
    assert gate.returncode == 3 and "significantly worse" in gate.stderr
    assert cli("compare", poor, good, "--db", db, "--fail-if-worse").returncode == 0
    assert cli("compare", good, poor, "--db", db, "--fail-if-worse",
               "--min-delta", "0.8").returncode == 0

    data = json.loads(cli("compare", poor[:6], good[:6], "--db", db, "--format", "json").stdout)
    (metric,) = data["metrics"]
    assert data["run_a"] == poor and data["worse"] == []
    assert metric["verdict"] == "better" and metric["n"] == 24
    assert metric["p"] == pytest.approx(2 / 2**18)  # 18 discordant pairs, all for B
    assert metric["diff"] == pytest.approx(0.75)
    assert metric["ci_low"] <= metric["diff"] <= metric["ci_high"]


def test_compare_cli_bad_input_is_one_line_and_exit_2(cli: CliRun, runs: Runs) -> None:
    db, good, other = runs.db, runs.good, runs.other
    for args, message in (((good, "nope"), "run 'nope' not found"),
                          ((good, other), "is a run of suite 'other', RUN_A of 'smoke'"),
                          ((good, good), "is the same run as RUN_A"),
                          ((good, other, "--format", "xml"), "--format")):
        result = cli("compare", *args, "--db", db)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_compare_matches_items_answered_in_both(cli: CliRun, runs: Runs) -> None:
    db, good, half = runs.db, runs.good, runs.half
    result = cli("compare", good, half, "--db", db, "--format", "json")
    data = json.loads(result.stdout)
    assert data["metrics"][0]["n"] == 12
    assert any("compared the 12 items scored in both runs (A scored 24, B scored 12)" in w
               for w in data["warnings"])
    text = cli("compare", good, half, "--db", db, env={"COLUMNS": "200"})
    assert "warning: exact_match: compared the 12 items" in text.stderr
    unknown = cli("compare", good, half, "--db", db, "--metric", "bleu")
    assert unknown.returncode == 2 and "--metric: bleu: is not scored in both runs" in \
        unknown.stderr
