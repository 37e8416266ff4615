"""Verdicts read from the judge's probabilities (`judge --verdict likelihood`).

The pure parts are checked on constructed log-likelihoods; the end-to-end test
has the embedded model judge three imported systems, then publishes a board.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from harness.judge import likelihood
from harness.judge.parse import ABC, FIVE, SCORE10, swap_outcome
from harness.types import Completion


def _completion(probs: list[float]) -> Completion:
    return Completion(loglikelihoods=tuple(math.log(p) - 3.0 for p in probs))


def test_continuations_are_the_scale_tokens_in_order() -> None:
    assert likelihood.continuations(ABC) == ("[[A]]", "[[B]]", "[[C]]")
    assert likelihood.continuations(FIVE)[0] == "[[A>>B]]"
    assert len(likelihood.continuations(SCORE10)) == 10


def test_probabilities_are_a_softmax_over_the_verdict_tokens() -> None:
    probs = likelihood.probabilities(_completion([0.5, 0.3, 0.2]), ABC)
    assert probs == pytest.approx({"a>b": 0.5, "b>a": 0.3, "tie": 0.2})
    with pytest.raises(ValueError):
        likelihood.probabilities(_completion([0.5, 0.5]), ABC)


def test_pairwise_reads_the_most_likely_verdict_and_stores_the_probabilities() -> None:
    text, outcome = likelihood.read(_completion([0.2, 0.7, 0.1]), ABC, "pairwise")
    assert outcome == "b>a"
    assert json.loads(text)["p"]["b>a"] == pytest.approx(0.7)


def test_single_mode_is_the_probability_weighted_grade() -> None:
    probs = [0.0001] * 10
    probs[6], probs[8] = 0.5, 0.5  # grades 7 and 9, equally likely
    _, grade = likelihood.read(_completion(probs), SCORE10, "single")
    assert float(grade) == pytest.approx(8.0, abs=0.01)


def test_a_constant_position_bias_cancels_when_both_orders_are_averaged() -> None:
    # the judge adds 0.3 to whichever answer is shown first; underneath, b is better
    first = {"a>b": 0.45, "b>a": 0.40, "tie": 0.15}  # a shown first
    second = {"a>b": 0.65, "b>a": 0.20, "tie": 0.15}  # b shown first, presented order
    text = json.dumps({"p": second})
    as_a = likelihood.model_a_view(text, swapped=True)
    assert as_a == {"b>a": 0.65, "a>b": 0.20, "tie": 0.15}
    # each order alone names the first-shown answer; averaged, b wins
    assert likelihood.pair_outcome_from_probabilities([first, as_a]) == "b"
    level = {"a>b": 0.4, "b>a": 0.4, "tie": 0.2}
    assert likelihood.pair_outcome_from_probabilities([level, level]) == "tie"
    assert likelihood.pair_outcome_from_probabilities([]) is None


SUITE = """\
name: tiny-likelihood
license: test data
kind: generate
data: {path: data.jsonl, id_field: id}
prompt:
  user: "{{ question }}"
metrics: []
judge:
  pairwise: mt-bench-pair
  verdict: likelihood
"""
QUESTIONS = [
    {"id": "q1", "question": "What is the capital of France?"},
    {"id": "q2", "question": "How many legs does a spider have?"},
    {"id": "q3", "question": "What is 12 times 12?"},
]
ANSWERS = {
    "right": ["The capital of France is Paris.", "A spider has eight legs.", "144."],
    "wrong": ["The capital of France is Berlin.", "A spider has six legs.", "124."],
    "empty": ["I do not know.", "I do not know.", "I do not know."],
}


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, cwd=folder, check=False, timeout=900,
                          env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_embedded_judge_gives_a_verdict_for_every_pair_and_a_three_model_board(
        tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    (tmp_path / "suite.yaml").write_text(SUITE)
    for name, texts in ANSWERS.items():
        rows = [{"id": q["id"], "model": name, "answer": t} for q, t in zip(QUESTIONS, texts,
                                                                            strict=True)]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        done = _cli(tmp_path, "import", f"{name}.jsonl", "--suite", "suite.yaml", "--db", "j.db")
        assert done.returncode == 0, done.stderr
    args = ["judge", "--suite", "suite.yaml", "--mode", "pairwise", "--judge", "smollm2-135m",
            "--model", "import:right", "--model", "import:wrong", "--model", "import:empty",
            "--db", "j.db", "--quiet"]
    first = _cli(tmp_path, *args)
    assert first.returncode == 0, first.stderr
    conn = sqlite3.connect(tmp_path / "j.db")
    rows = conn.execute("SELECT raw, outcome, parse_error, retry_key, swapped "
                        "FROM judgments").fetchall()
    assert len(rows) == 3 * 3 * 2  # pairs x items x orders
    for raw, outcome, parse_error, retry_key, swapped in rows:
        assert parse_error is None and retry_key is None and outcome in ("a>b", "b>a", "tie")
        probs = json.loads(raw)["p"]  # presented order; the outcome is model_a's view
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
        best = max(probs, key=probs.get)
        assert outcome == (swap_outcome(best) if swapped else best)
    kinds = {k for (k,) in conn.execute("SELECT DISTINCT r.kind FROM requests r JOIN "
                                        "judgments j ON j.request_key = r.key")}
    assert kinds == {"loglikelihood"}
    battles = conn.execute("SELECT count(*), count(outcome) FROM battles").fetchone()
    assert battles == (9, 9)  # every pair of every item has an outcome
    conn.close()
    again = _cli(tmp_path, *args)  # resumes: nothing is asked twice
    assert again.returncode == 0 and "Loading weights" not in again.stderr
    published = _cli(tmp_path, "publish", "--source", "judge", "--out", "site", "--db", "j.db")
    assert published.returncode == 0, published.stderr
    assert published.stdout.strip().endswith("index.html")
    board = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    assert board["board"]["n_models"] == 3 and len(board["board"]["ratings"]) == 3
    assert board["board"]["n_battles"] == 9


def test_where_and_max_tokens_make_a_different_smaller_run() -> None:
    from harness.errors import InputError
    from harness.runner import plan_run

    whole = plan_run("mt-bench", "smollm2-135m")
    reasoning = plan_run("mt-bench", "smollm2-135m", where={"category": ["reasoning"]})
    assert len(whole.items) == 80 and len(reasoning.items) == 10
    assert all(s.doc["category"] == "reasoning" for s, _ in reasoning.items)
    assert reasoning.run_id != whole.run_id
    assert reasoning.suite.config.data.include == {"category": ["reasoning"]}
    short = plan_run("mt-bench", "smollm2-135m", max_tokens=16)
    assert short.run_id != whole.run_id
    assert {r.params.max_tokens for _, r in short.items} == {16}
    again = plan_run("mt-bench", "smollm2-135m", where={"category": ["reasoning"]})
    assert again.run_id == reasoning.run_id  # the same command finds the same run
    with pytest.raises(InputError, match="--where"):
        plan_run("mt-bench", "smollm2-135m", where={"colour": ["red"]})
    with pytest.raises(InputError, match="no item"):
        plan_run("mt-bench", "smollm2-135m", where={"category": ["cooking"]})
