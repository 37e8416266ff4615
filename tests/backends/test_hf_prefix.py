"""Shared-prompt-prefix reuse in the transformers scorer (harness/backends/hf_prefix.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from harness.backends.hf_prefix import PrefixCache


def _states(tokens: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.zeros(1, 2, tokens, 4), torch.zeros(1, 2, tokens, 4)) for _ in range(3)]


def test_lookup_needs_the_first_tokens_and_half_of_the_context() -> None:
    cache = PrefixCache(10**9, min_tokens=8)
    stored = list(range(40))
    cache.store(stored, _states(40))
    assert cache.lookup(list(range(30)) + [99] * 10) == (cache.lookup(stored)[0], 30)  # type: ignore[index]
    assert cache.lookup(list(range(12)) + [99] * 30) is None  # shares 12 of 42: too little
    assert cache.lookup([5, *range(1, 40)]) is None  # differs in its first tokens
    assert cache.lookup(list(range(6))) is None  # shorter than min_tokens


def test_the_best_of_several_entries_with_the_same_first_tokens_wins() -> None:
    cache = PrefixCache(10**9, min_tokens=8)
    cache.store(list(range(10)) + [50] * 30, _states(40))
    cache.store(list(range(35)) + [60] * 5, _states(40))
    entry, shared = cache.lookup([*range(38), 70])  # type: ignore[misc]
    assert shared == 35 and entry.tokens[-1] == 60


def test_store_is_bounded_by_bytes_least_recently_used_first() -> None:
    one = sum(k.nbytes + v.nbytes for k, v in _states(20))
    cache = PrefixCache(2 * one, min_tokens=4)
    contexts = [[n] * 20 for n in range(3)]
    cache.store(contexts[0], _states(20))
    cache.store(contexts[1], _states(20))
    assert cache.lookup(contexts[0]) is not None  # now the most recently used
    cache.store(contexts[2], _states(20))
    assert len(cache) == 2
    assert cache.lookup(contexts[1]) is None and cache.lookup(contexts[0]) is not None
    cache.store([7] * 100, _states(100))  # larger than the whole bound: not kept
    assert len(cache) == 2
    assert PrefixCache(0).enabled is False


def _mmlu_subject_requests(n: int) -> list:  # type: ignore[type-arg]
    from harness.suites.config import load_suite
    from harness.suites.requests import build_requests

    suite = load_suite("mmlu")
    topic = suite.rows[0]["topic"]
    rows = [r for r in suite.rows if r["topic"] == topic][:n]
    subject = dataclasses.replace(suite, rows=rows, fewshot_rows=rows)
    return [r for _, r in build_requests(subject, "m", None, 0)]


@pytest.mark.slow
def test_reused_prefixes_give_the_numbers_of_a_full_pass(embedded_backend, monkeypatch) -> None:
    """5-shot MMLU of one subject (sampler: first): the same numbers with and without reuse.

    One request per call on both sides (so batching noise, ~1e-5 on its own, is not
    measured), then one mixed call with a multi-token continuation on top of a prefix."""
    requests = _mmlu_subject_requests(8)
    requests.append(dataclasses.replace(requests[-1],
                                        continuations=(" A because", " Blue sky", " C", " D.")))
    monkeypatch.setattr(embedded_backend, "prefixes", PrefixCache(0))
    plain = [embedded_backend.loglikelihood([r])[0] for r in requests]
    reuse = PrefixCache(2**30)
    monkeypatch.setattr(embedded_backend, "prefixes", reuse)
    reused = [embedded_backend.loglikelihood([r])[0] for r in requests]
    # items 0-5 have their own example sets (5 of the first 6 rows); 6, 7 and 8 share 5's
    assert reuse.hits >= 3
    for a, b in zip(plain, reused, strict=True):
        assert b.ok
        pairs = zip(a.loglikelihoods, b.loglikelihoods, strict=True)
        assert max(abs(x - y) for x, y in pairs) <= 1e-5
        assert a.greedy_matches == b.greedy_matches
        assert a.continuation_tokens == b.continuation_tokens
        assert a.prompt_tokens == b.prompt_tokens
    hits = reuse.hits
    batched = embedded_backend.loglikelihood(requests[5:])  # all on stored prefixes
    assert reuse.hits == hits + len(requests[5:])
    for a, b in zip(plain[5:], batched, strict=True):
        assert a.loglikelihoods == pytest.approx(b.loglikelihoods, abs=1e-4)
