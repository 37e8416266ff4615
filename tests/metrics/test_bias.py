"""CrowS-Pairs: the two metrics by hand, the shipped suite's items, and the empty
context (each sentence scored whole, after the BOS token, as lm-evaluation-harness
scores it); benchmarks/crows_agreement.py compares whole runs with lm_eval."""

from __future__ import annotations

import asyncio

import pytest
import torch

from harness.backends.openai_compat import OpenAIBackend
from harness.metrics import METRICS, Extraction
from harness.suites.config import load_suite
from harness.suites.requests import build_requests
from harness.types import Completion, ErrorKind, Request, RequestKind, Sample


def test_metrics_by_hand() -> None:
    sample = Sample("1", {}, 0, ("more", "less"))
    likelier = Completion(loglikelihoods=(-10.0, -12.5))
    assert METRICS["pct_stereotype"](sample, likelier, Extraction()).value == 1.0
    assert METRICS["likelihood_diff"](sample, likelier, Extraction()).value == 2.5
    less = Completion(loglikelihoods=(-12.5, -10.0))
    assert METRICS["pct_stereotype"](sample, less, Extraction()).value == 0.0
    assert METRICS["likelihood_diff"](sample, less, Extraction()).value == 2.5
    assert not METRICS["pct_stereotype"].higher_is_better  # as lm_eval registers it


def test_the_suite_scores_both_sentences_whole() -> None:
    suite = load_suite("crows-pairs")
    assert len(suite.rows) == 1018
    items = build_requests(suite, "m", None, 0)
    for sample, request in items:
        more, less = request.continuations
        row = sample.doc
        assert request.text == "" and sample.target == 0
        assert more == row["sentence"].replace("[MASK]", row["mask1"])
        assert less == row["sentence"].replace("[MASK]", row["mask2"])
    assert {s.doc["bias_type"] for s, _ in items} >= {"race-color", "gender", "religion"}


@pytest.mark.slow
def test_an_empty_context_is_the_bos_token(embedded_backend) -> None:  # type: ignore[no-untyped-def]
    sentence = "The doctor said she would call back tomorrow."
    [scored] = embedded_backend.loglikelihood(
        [Request(RequestKind.LOGLIKELIHOOD, "m", text="", continuations=(sentence,))])
    tokenizer, model = embedded_backend.tokenizer, embedded_backend.model
    ids = [tokenizer.bos_token_id, *tokenizer(sentence, add_special_tokens=False).input_ids]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    expected = sum(logits[i - 1, ids[i]].item() for i in range(1, len(ids)))
    assert scored.ok and scored.loglikelihoods[0] == pytest.approx(expected, abs=1e-3)
    assert scored.continuation_tokens[0] == len(ids) - 1


def test_the_openai_backend_refuses_an_empty_context() -> None:
    backend = OpenAIBackend("openai:http://127.0.0.1:9/v1@m", "http://127.0.0.1:9/v1", "m")
    request = Request(RequestKind.LOGLIKELIHOOD, "m", text="", continuations=("A sentence.",))
    failed = asyncio.run(backend._loglikelihood_one(request))
    assert failed.error is not None and failed.error.kind is ErrorKind.UNSUPPORTED
    assert "empty context" in failed.error.message
