"""The transformers backend on the real embedded model."""

from __future__ import annotations

import dataclasses

import pytest

from harness.types import ErrorKind, GenerationParams, Message, Request, RequestKind

pytestmark = pytest.mark.slow


def _chat(text: str, **params: object) -> Request:
    return Request(RequestKind.GENERATE, "smollm2-135m", messages=(Message("user", text),),
                   params=GenerationParams(**{"max_tokens": 12, **params}))  # type: ignore[arg-type]


QUESTIONS = ["What is 2+2?", "Name a colour.", "Say hello in French, please, in one word."]


def test_batched_greedy_equals_one_at_a_time(embedded_backend) -> None:
    requests = [_chat(q) for q in QUESTIONS]
    batched = embedded_backend.generate(requests)
    single = [embedded_backend.generate([r])[0] for r in requests]
    assert [c.texts for c in batched] == [c.texts for c in single]
    assert all(c.ok and c.texts[0] and c.output_tokens > 0 for c in batched)
    assert all(c.prompt_tokens > 10 for c in batched)  # the chat template was applied


def test_seeded_sampling_is_reproducible_and_independent_of_batch(embedded_backend) -> None:
    sampled = [_chat(q, temperature=1.0, n=3, seed=11) for q in QUESTIONS]
    first = embedded_backend.generate(sampled)
    again = embedded_backend.generate(list(reversed(sampled)))[::-1]
    assert [c.texts for c in first] == [c.texts for c in again]
    assert all(len(c.texts) == 3 for c in first)
    other_seed = embedded_backend.generate([dataclasses.replace(
        sampled[1], params=dataclasses.replace(sampled[1].params, seed=12))])[0]
    assert other_seed.texts != first[1].texts


def test_stop_sequences_cut_the_text(embedded_backend) -> None:
    free = embedded_backend.generate([_chat("Count from 1 to 20.", max_tokens=30)])[0]
    assert "\n" in free.texts[0], free.texts
    stopped = embedded_backend.generate([_chat("Count from 1 to 20.",
                                               max_tokens=30, stop=("\n",))])[0]
    assert "\n" not in stopped.texts[0] and stopped.texts[0]
    assert free.texts[0].startswith(stopped.texts[0])
    assert stopped.finish_reasons == ("stop",)
    capped = embedded_backend.generate([_chat("Write a long story about a dragon.",
                                              max_tokens=5)])[0]
    assert capped.finish_reasons == ("length",) and capped.output_tokens == 5


def test_context_length_is_a_typed_error(embedded_backend) -> None:
    too_long = _chat("word " * 9000, max_tokens=4)
    fine = _chat("Hi", max_tokens=2)
    results = embedded_backend.generate([too_long, fine])
    assert results[0].error is not None and results[0].error.kind is ErrorKind.CONTEXT_LENGTH
    assert results[1].ok


def test_loglikelihood_is_batch_independent_and_sensible(embedded_backend) -> None:
    requests = [
        Request(RequestKind.LOGLIKELIHOOD, "m", text="The capital of France is",
                continuations=(" Paris", " a banana")),
        Request(RequestKind.LOGLIKELIHOOD, "m", text="One, two, three,",
                continuations=(" four", " seven hundred")),
        Request(RequestKind.LOGLIKELIHOOD, "m", messages=(Message("user", "Say yes."),),
                continuations=("Yes", "Banana")),
    ]
    together = embedded_backend.loglikelihood(requests)
    alone = [embedded_backend.loglikelihood([r])[0] for r in requests]
    for a, b in zip(together, alone, strict=True):
        assert a.loglikelihoods == pytest.approx(b.loglikelihoods, abs=1e-3)
    for completion in together:
        first, second = completion.loglikelihoods
        assert first > second and first < 0
    assert together[0].greedy_matches[0] is True
    assert together[1].continuation_tokens[1] > together[1].continuation_tokens[0]


def test_trailing_space_moves_to_the_continuation(embedded_backend) -> None:
    spaced = Request(RequestKind.LOGLIKELIHOOD, "m", text="The capital of France is ",
                     continuations=("Paris",))
    plain = Request(RequestKind.LOGLIKELIHOOD, "m", text="The capital of France is",
                    continuations=(" Paris",))
    a, b = embedded_backend.loglikelihood([spaced, plain])
    assert a.loglikelihoods == pytest.approx(b.loglikelihoods, abs=1e-4)


def test_shared_context_scoring_equals_one_row_per_choice(embedded_backend, monkeypatch) -> None:
    """The fast path (context run once, choices on its cache) must not change any number."""
    from harness.backends import hf_scoring
    from harness.runner import plan_run

    requests = [r for _, r in plan_run("hellaswag", "smollm2-135m", limit=4).items]
    requests += [r for _, r in plan_run("mmlu", "smollm2-135m", limit=2).items]
    items_shared = [len(embedded_backend.encode_prompt(r)) >= hf_scoring.MIN_SHARED_CONTEXT
                    for r in requests]
    assert all(items_shared)
    shared = embedded_backend.loglikelihood(requests)
    monkeypatch.setattr(hf_scoring.ScoringItem, "shareable", lambda self, limit: False)
    plain = embedded_backend.loglikelihood(requests)
    for a, b in zip(shared, plain, strict=True):
        assert a.loglikelihoods == pytest.approx(b.loglikelihoods, abs=1e-3)
        assert a.greedy_matches == b.greedy_matches
        assert a.continuation_tokens == b.continuation_tokens
