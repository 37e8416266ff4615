"""vLLM's OpenAI-compatible server, managed by evalarena (``vllm-serve:``), for real.

One server of the embedded model is started for the module and shared. Through
it the openai backend is checked against the transformers reference in
float32 (the session's embedded model): multiple choice by prompt
log-probabilities (``/v1/completions`` with ``echo`` and ``logprobs``, which
transformers serve cannot answer), greedy chat
answers, and streamed answers, which must equal the plain ones. The server's
lifecycle (start, health, clean stop, Ctrl-C, killed mid-run then resumed) is
tested in test_managed_server.py; data parallel over two vLLM engines here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    VLLM_MISSING,
    VLLM_TEST_OPTIONS,
    choice_agreement,
    side_by_side,
    vllm_available,
)

from harness.backends import Backend, load_backend
from harness.runner import execute, plan_run
from harness.store import Store
from harness.types import Completion

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not vllm_available(), reason=VLLM_MISSING)]
REFERENCE = "smollm2-135m"


def _model_dir() -> str:
    from harness.backends.embedded import converted_model_dir

    return str(converted_model_dir())


@pytest.fixture(scope="module")
def served() -> Iterator[Backend]:
    backend = load_backend(f"vllm-serve:{_model_dir()}?{VLLM_TEST_OPTIONS}&startup_timeout=300")
    close = backend.close
    backend.close = lambda: None  # type: ignore[method-assign]  # shared across the module
    yield backend
    close()
    assert not backend.server.alive()  # type: ignore[attr-defined]


def _openai_spec(served: Backend, options: str = "") -> str:
    """The plain openai: spec of the managed server (a server someone else started)."""
    url = served.server.base_url  # type: ignore[attr-defined]
    return f"openai:{url}/v1@{_model_dir()}" + (f"?{options}" if options else "")


def _pairs(suite: str, spec: str, backend: Backend, reference: Backend,
           db: Path) -> list[tuple[Completion, Completion]]:
    return side_by_side(suite, spec, backend, REFERENCE, reference, db)


def test_openai_loglikelihood_against_the_real_vllm_server(served, embedded_backend,
                                                           tmp_path: Path) -> None:
    client = load_backend(_openai_spec(served))
    pairs = _pairs("smoke-mc", _openai_spec(served), client, embedded_backend,
                   tmp_path / "mc.db")
    worst, picks = choice_agreement(pairs)
    print(f"\nopenai over vllm serve vs transformers: worst |diff| {worst:.4f}, "
          f"same choice {picks}/{len(pairs)}")
    assert picks == len(pairs) and worst < 0.25
    assert all(m.continuation_tokens == t.continuation_tokens for m, t in pairs)


def test_managed_server_greedy_and_streamed_answers(served, embedded_backend,
                                                    tmp_path: Path) -> None:
    spec = f"vllm-serve:{_model_dir()}?{VLLM_TEST_OPTIONS}"
    pairs = _pairs("smoke", spec, served, embedded_backend, tmp_path / "g.db")
    same = sum(m.texts == t.texts for m, t in pairs)
    print(f"\ngreedy texts vllm serve vs transformers: {same}/{len(pairs)} identical")
    assert same / len(pairs) >= 0.95
    streamed = load_backend(_openai_spec(served, "stream=1"))
    plain = load_backend(_openai_spec(served))
    plan = plan_run("smoke", _openai_spec(served), limit=8)
    requests = [r for _, r in plan.items]
    got, want = streamed.run(requests), plain.run(requests)
    assert [c.texts for c in got] == [c.texts for c in want]
    assert all(c.ttft_s is not None and 0 < c.ttft_s <= c.latency_s for c in got)


def test_data_parallel_over_two_vllm_engines(embedded_backend, tmp_path: Path) -> None:
    """Two in-process engines in two Ray actors, one CPU each: every answer agrees with
    the single engine's path (the same texts as the reference on nearly every item) and
    both replicas worked."""
    # batch_size=4: chunks of 4 requests, so both replicas get work from 24 items
    spec = f"vllm:{_model_dir()}?{VLLM_TEST_OPTIONS}&data_parallel=2&replica_cpus=1&batch_size=4"
    plan = plan_run("smoke", spec)
    backend = load_backend(plan.model)
    with Store(tmp_path / "dp.db") as store:
        outcome = execute(store, plan, lambda: backend)
        assert outcome.errors == 0, store.latest_errors(plan.run_id)
        answers = store.completions(r.key for _, r in plan.items)
        ref = plan_run("smoke", REFERENCE)
        execute(store, ref, lambda: embedded_backend)
        theirs = store.completions(r.key for _, r in ref.items)
    same = sum(answers[a.key].texts == theirs[b.key].texts
               for (_, a), (_, b) in zip(plan.items, ref.items, strict=True))
    print(f"\ndata parallel x2 vs transformers: {same}/{len(plan.items)} identical; "
          f"per replica {backend.chunks_done}")  # type: ignore[attr-defined]
    assert same / len(plan.items) >= 0.95
    assert all(n > 0 for n in backend.chunks_done)  # type: ignore[attr-defined]


def test_token_logprobs_for_membership_agree_with_transformers(served,
                                                               embedded_backend) -> None:
    """What `contamination membership` reads from a server (Min-K%): each prompt token's
    log-probability, echoed; the same numbers as the model in process gives (float32) for
    the same tokens with nothing before them (the server adds no BOS, so its first token
    goes unscored)."""
    import torch

    client = load_backend(_openai_spec(served))
    texts = ["The capital of France is Paris, a city on the Seine.",
             "Natalia sold clips to 48 of her friends in April, and half as many in May."]
    try:
        remote = client.token_logprobs(texts)
    finally:
        client.close()
    tokenizer, model = embedded_backend.tokenizer, embedded_backend.model
    for got, text in zip(remote, texts, strict=True):
        ids = tokenizer(text, add_special_tokens=False).input_ids
        with torch.no_grad():
            logp = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
        expected = [logp[i - 1, ids[i]].item() for i in range(1, len(ids))]
        assert isinstance(got, list) and len(got) == len(expected)
        worst = max(abs(a - b) for a, b in zip(got, expected, strict=True))
        print(f"\n{len(got)} tokens, worst |diff| {worst:.4f}")
        assert worst < 0.05
