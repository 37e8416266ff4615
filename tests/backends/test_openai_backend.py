"""OpenAIBackend against real HTTP servers on 127.0.0.1 that misbehave on purpose.

Each test starts a small OpenAI-compatible server (``fault_server.FakeServer``)
whose ``responder`` decides, per request, what to answer: JSON, an HTTP error,
garbage, a hang, or a dropped connection. The server records every request so
the tests can assert how many attempts the backend really made.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from fault_server import Action, FakeServer, Responder, echo_answer, fail_first

from harness.backends import load_backend, parse_model_spec
from harness.backends.openai_compat import OpenAIBackend
from harness.errors import ModelSpecError
from harness.types import (
    Completion,
    ErrorKind,
    GenerationParams,
    Message,
    Request,
    RequestKind,
)


def backend_for(url: str, **options: object) -> OpenAIBackend:
    query = "&".join(f"{k}={v}" for k, v in {"backoff": 0.01, **options}.items())
    backend = load_backend(f"openai:{url}@test-model?{query}")
    assert isinstance(backend, OpenAIBackend)
    return backend


def chat(text: str, **params: Any) -> Request:
    return Request(RequestKind.GENERATE, "m", messages=(Message("user", text),),
                   params=GenerationParams(**params))


def plain(text: str, **params: Any) -> Request:
    return Request(RequestKind.GENERATE, "m", text=text, params=GenerationParams(**params))


def one(backend: OpenAIBackend, request: Request) -> Completion:
    [completion] = backend.generate([request])
    return completion


CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


# -- spec and construction --------------------------------------------------------------------


def test_spec_options_and_identity() -> None:
    spec = parse_model_spec(
        "openai:http://h:8000/v1@llama?concurrency=3&timeout=7.5&max_retries=2&backoff=0.1"
        "&endpoint=chat"
    )
    backend = OpenAIBackend.from_spec(spec)
    assert (backend.concurrency, backend.timeout, backend.max_retries, backend.backoff) == (
        3, 7.5, 2, 0.1)
    assert backend.batch_size == 12
    assert backend.endpoint == "chat"
    assert backend.model_name == "llama"
    # speed options are not part of the identity; the endpoint changes answers, so it is
    assert backend.model_id == "openai:http://h:8000/v1@llama?endpoint=chat"
    defaults = OpenAIBackend.from_spec(parse_model_spec("openai:http://h:8000@llama"))
    assert (defaults.concurrency, defaults.timeout, defaults.max_retries, defaults.backoff,
            defaults.endpoint, defaults.batch_size) == (16, 120.0, 4, 0.5, "auto", 64)
    assert defaults.base_url == "http://h:8000/v1"  # a bare host gets the usual /v1
    with pytest.raises(ModelSpecError, match="endpoint"):
        OpenAIBackend.from_spec(parse_model_spec("openai:http://h@m?endpoint=responses"))
    with pytest.raises(ModelSpecError, match="concurrency"):
        OpenAIBackend.from_spec(parse_model_spec("openai:http://h@m?concurrency=0"))


def test_api_key_from_environment(serve: Callable[[Responder], FakeServer],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(echo_answer)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("EVALARENA_API_KEY", raising=False)
    one(backend_for(server.url), chat("a"))
    monkeypatch.setenv("EVALARENA_API_KEY", "ea-key")
    one(backend_for(server.url), chat("b"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-key")
    one(backend_for(server.url), chat("c"))
    assert [s.headers["authorization"] for s in server.seen] == [
        "Bearer EMPTY", "Bearer ea-key", "Bearer sk-key"]


# -- answers ----------------------------------------------------------------------------------


def test_order_preserved_under_concurrency(serve: Callable[[Responder], FakeServer]) -> None:
    rng = random.Random(0)
    delays = [rng.uniform(0.0, 0.15) for _ in range(24)]

    def slow(path: str, body: dict[str, Any], nth: int) -> Action:
        prompt = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        action = echo_answer(path, body)
        action.delay = delays[int(prompt.split()[-1])]
        return action

    server = serve(slow)
    backend = backend_for(server.url, concurrency=4)
    requests = [chat(f"q {i}") if i % 2 else plain(f"q {i}") for i in range(24)]
    out = backend.generate(requests)
    assert [c.texts for c in out] == [(f"echo: q {i}",) for i in range(24)]
    assert [c.finish_reasons for c in out] == [("stop",) if i % 2 else ("length",)
                                              for i in range(24)]
    assert all(c.ok and c.prompt_tokens == 7 and c.output_tokens == 3 for c in out)
    assert all(c.latency_s > 0 for c in out)
    assert server.count(CHAT) == 12 and server.count(COMPLETIONS) == 12
    assert 2 <= server.max_in_flight <= 4  # concurrent, but bounded by `concurrency`


def test_params_are_sent(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(echo_answer)
    backend = backend_for(server.url)
    backend.generate([
        chat("x", max_tokens=5, temperature=0.7, top_p=0.9, stop=("\n", "END"), seed=11),
        plain("y"),
    ])
    first, second = (s.body for s in server.seen) if server.seen[0].path == CHAT else (
        s.body for s in reversed(server.seen))
    assert first == {"model": "test-model", "messages": [{"role": "user", "content": "x"}],
                     "max_tokens": 5, "temperature": 0.7, "top_p": 0.9, "n": 1,
                     "stop": ["\n", "END"], "seed": 11}
    assert second == {"model": "test-model", "prompt": "y", "max_tokens": 256,
                      "temperature": 0.0, "top_p": 1.0, "n": 1}  # no stop, no seed


def test_n_samples(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(echo_answer)
    out = one(backend_for(server.url), chat("s", n=3, temperature=1.0))
    assert out.texts == ("echo: s", "echo: s #1", "echo: s #2")
    assert out.finish_reasons == ("stop", "stop", "stop")
    assert server.seen[0].body["n"] == 3


def test_server_ignoring_n_is_an_error(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(lambda path, body, nth: echo_answer(path, {**body, "n": 1}))
    out = one(backend_for(server.url), chat("s", n=2, temperature=1.0))
    assert out.error is not None and out.error.kind is ErrorKind.INVALID_RESPONSE
    assert out.texts == ()
    assert "n=2" in out.error.message


def test_stop_applied_when_server_ignores_it(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(echo_answer)  # echoes the prompt, stop sequence included
    out = one(backend_for(server.url), plain("answer 42\nQuestion: next", stop=("\nQuestion",)))
    assert out.texts == ("echo: answer 42",)
    assert out.finish_reasons == ("stop",)


def test_forced_endpoints(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(echo_answer)
    out = one(backend_for(server.url, endpoint="chat"), plain("t"))
    assert out.texts == ("echo: t",)
    assert server.seen[0].path == CHAT
    assert server.seen[0].body["messages"] == [{"role": "user", "content": "t"}]
    refused = one(backend_for(server.url, endpoint="completions"), chat("c"))
    assert refused.error is not None and refused.error.kind is ErrorKind.UNSUPPORTED
    assert server.count() == 1


def test_works_inside_a_running_event_loop(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(echo_answer)
    backend = backend_for(server.url)

    async def caller() -> list[Completion]:
        return backend.generate([chat("loop")])

    assert asyncio.run(caller())[0].texts == ("echo: loop",)


# -- retries and errors -----------------------------------------------------------------------


def test_429_twice_then_success(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(fail_first(2, Action(429, {"error": {"message": "slow down"}})))
    out = one(backend_for(server.url, max_retries=4), chat("r"))
    assert out.ok and out.texts == ("echo: r",)
    assert server.count(CHAT) == 3


def test_429_persistent_is_rate_limited(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(lambda path, body, nth: Action(429, {"error": {"message": "slow down"}}))
    out = one(backend_for(server.url, max_retries=2), chat("r"))
    assert out.error is not None and out.error.kind is ErrorKind.RATE_LIMITED
    assert out.error.attempts == 3 and server.count() == 3
    assert out.texts == ()


def test_retry_after_is_honoured(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(fail_first(1, Action(429, {"error": {"message": "wait"}},
                                        headers={"Retry-After": "1"})))
    out = one(backend_for(server.url, backoff=0.01), chat("r"))
    assert out.ok
    first, second = (s.at for s in server.seen)
    assert second - first >= 0.95  # backoff alone would have waited ~0.01 s


def test_500_persistent_is_server_error(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(lambda path, body, nth: Action(500, {"error": {"message": "boom"}}))
    out = one(backend_for(server.url, max_retries=3), plain("p"))
    assert out.error is not None and out.error.kind is ErrorKind.SERVER_ERROR
    assert out.error.attempts == 4 and server.count(COMPLETIONS) == 4
    assert "HTTP 500" in out.error.message and "boom" in out.error.message


def test_hanging_server_times_out_quickly(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(lambda path, body, nth: Action(json={}, delay=10.0))
    start = time.monotonic()
    out = one(backend_for(server.url, timeout=0.5, max_retries=1), chat("h"))
    elapsed = time.monotonic() - start
    assert out.error is not None and out.error.kind is ErrorKind.TIMEOUT
    assert out.error.attempts == 2 and server.count() == 2
    assert elapsed < 2.5


def test_dropped_connection_persistent(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(lambda path, body, nth: Action(drop=True))
    out = one(backend_for(server.url, max_retries=2), chat("d"))
    assert out.error is not None and out.error.kind is ErrorKind.CONNECTION
    assert out.error.attempts == 3 and server.count() == 3


def test_dropped_connection_recovers(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(fail_first(1, Action(drop=True)))
    out = one(backend_for(server.url, max_retries=2), chat("d"))
    assert out.ok and out.texts == ("echo: d",)
    assert server.count() == 2


def test_connection_refused() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = one(backend_for(f"http://127.0.0.1:{port}/v1", max_retries=1), chat("x"))
    assert out.error is not None and out.error.kind is ErrorKind.CONNECTION
    assert out.error.attempts == 2


def test_400_context_length_not_retried(serve: Callable[[Responder], FakeServer]) -> None:
    message = ("This model's maximum context length is 2048 tokens. However, you requested "
               "4000 tokens (3900 in the messages, 100 in the completion).")
    server = serve(lambda path, body, nth: Action(400, {"error": {"message": message}}))
    out = one(backend_for(server.url, max_retries=3), chat("long"))
    assert out.error is not None and out.error.kind is ErrorKind.CONTEXT_LENGTH
    assert out.error.attempts == 1 and server.count() == 1


def test_400_other_is_bad_request(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(lambda path, body, nth: Action(400, {"error": {"message": "bad top_p"}}))
    out = one(backend_for(server.url, max_retries=3), chat("x"))
    assert out.error is not None and out.error.kind is ErrorKind.BAD_REQUEST
    assert out.error.attempts == 1 and server.count() == 1
    assert "bad top_p" in out.error.message


@pytest.mark.parametrize("answer", [b"{not json", b"", b"[1, 2]", b'{"choices": []}',
                                    b'{"choices": [{"index": 0, "finish_reason": "stop"}]}',
                                    b'{"choices": [{"index": "0", "message": 5}]}',
                                    b'{"choices": [{"index": 0, "message": {"content": "a"}}],'
                                    b' "usage": {"prompt_tokens": "many"}}'])
def test_garbage_is_invalid_response(serve: Callable[[Responder], FakeServer],
                                     answer: bytes) -> None:
    server = serve(lambda path, body, nth: Action(body=answer))
    out = one(backend_for(server.url, max_retries=3), chat("g"))
    assert out.error is not None and out.error.kind is ErrorKind.INVALID_RESPONSE
    assert out.error.attempts == 1 and server.count() == 1
    assert out.texts == ()


def test_mixed_batch_keeps_errors_in_place(serve: Callable[[Responder], FakeServer]) -> None:
    def picky(path: str, body: dict[str, Any], nth: int) -> Action:
        if "bad" in body["messages"][-1]["content"]:
            return Action(400, {"error": {"message": "no"}})
        return echo_answer(path, body)

    server = serve(picky)
    out = backend_for(server.url).generate([chat("ok 1"), chat("bad"), chat("ok 2")])
    assert [c.texts for c in out] == [("echo: ok 1",), (), ("echo: ok 2",)]
    assert [c.error.kind if c.error else None for c in out] == [
        None, ErrorKind.BAD_REQUEST, None]


# -- loglikelihood ----------------------------------------------------------------------------

TOKEN_LOGPROBS = {" Paris": -0.25, " London": -2.0, " town": -1.5}


def logprob_answer(bos: str = "") -> Responder:
    """Echo the prompt as whitespace-led tokens, then ``max_tokens`` generated
    " Paris" tokens (as vLLM does; scoring must skip them). Every token's logprob
    comes from TOKEN_LOGPROBS (else -1.0); " Paris" is always the top-1 alternative."""

    def answer(path: str, body: dict[str, Any], nth: int) -> Action:
        assert path == COMPLETIONS
        tokens = ([bos] if bos else []) + re.findall(r"\s*\S+", body["prompt"])
        n_prompt = len(tokens)
        generated = [" Paris"] * int(body.get("max_tokens") or 0)  # echoed after the prompt
        tokens += generated
        offsets = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
        values: list[float | None] = [TOKEN_LOGPROBS.get(t, -1.0) for t in tokens]
        values[0] = None  # nothing predicts the first token
        tops = [None if v is None else {t: v, " Paris": -0.25}
                for t, v in zip(tokens, values, strict=True)]
        choice = {"index": 0, "text": body["prompt"] + "".join(generated),
                  "finish_reason": "length",
                  "logprobs": {"tokens": tokens, "token_logprobs": values,
                               "text_offset": offsets, "top_logprobs": tops}}
        return Action(json={"choices": [choice], "usage": {
            "prompt_tokens": n_prompt, "completion_tokens": len(generated)}})

    return answer


def scoring(context: str, *continuations: str) -> Request:
    return Request(RequestKind.LOGLIKELIHOOD, "m", text=context, continuations=continuations)


@pytest.mark.parametrize("bos", ["", "<s>"])  # vLLM echoes a BOS token that shifts offsets
def test_loglikelihood_from_echoed_logprobs(serve: Callable[[Responder], FakeServer],
                                            bos: str) -> None:
    server = serve(logprob_answer(bos))
    backend = backend_for(server.url)
    [out] = backend.loglikelihood([scoring("The capital of France is", " Paris", " London town")])
    assert out.ok
    assert out.loglikelihoods == (-0.25, -3.5)
    assert out.greedy_matches == (True, False)
    assert out.continuation_tokens == (1, 2)
    assert out.prompt_tokens == (6 + 7) + (2 if bos else 0)
    bodies = sorted((s.body for s in server.seen), key=lambda b: b["prompt"])
    assert bodies == [
        {"model": "test-model", "prompt": "The capital of France is London town", "echo": True,
         "logprobs": 1, "max_tokens": 1},
        {"model": "test-model", "prompt": "The capital of France is Paris", "echo": True,
         "logprobs": 1, "max_tokens": 1},
    ]


def test_loglikelihood_token_straddling_the_boundary(
        serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(logprob_answer())
    # the context ends in the space that the " Paris" token starts with
    [out] = backend_for(server.url).loglikelihood([scoring("France is ", "Paris", "Paris is")])
    assert out.loglikelihoods == (-0.25, -1.25)
    assert out.continuation_tokens == (1, 2)
    assert out.greedy_matches == (True, False)


def test_loglikelihood_without_top_logprobs(serve: Callable[[Responder], FakeServer]) -> None:
    def no_tops(path: str, body: dict[str, Any], nth: int) -> Action:
        action = logprob_answer()(path, body, nth)
        action.json["choices"][0]["logprobs"]["top_logprobs"] = None
        return action

    [out] = backend_for(serve(no_tops).url).loglikelihood([scoring("A is", " Paris")])
    assert out.loglikelihoods == (-0.25,)
    assert out.greedy_matches == ()  # unknown, not guessed


def test_loglikelihood_malformed_logprobs(serve: Callable[[Responder], FakeServer]) -> None:
    def broken(path: str, body: dict[str, Any], nth: int) -> Action:
        action = logprob_answer()(path, body, nth)
        action.json["choices"][0]["logprobs"]["text_offset"] = ["a"] * 3
        return action

    [out] = backend_for(serve(broken).url).loglikelihood([scoring("A is", " Paris")])
    assert out.error is not None and out.error.kind is ErrorKind.INVALID_RESPONSE
    assert out.loglikelihoods == ()


def test_loglikelihood_chat_prompt_unsupported(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(logprob_answer())
    request = Request(RequestKind.LOGLIKELIHOOD, "m", messages=(Message("user", "q"),),
                      continuations=(" a",))
    [out] = backend_for(server.url).loglikelihood([request])
    assert out.error is not None and out.error.kind is ErrorKind.UNSUPPORTED
    assert "text prompt" in out.error.message
    assert out.loglikelihoods == () and server.count() == 0


def test_loglikelihood_server_without_logprobs(serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(echo_answer)  # like `transformers serve`: ignores echo and logprobs
    [out, also] = backend_for(server.url).loglikelihood(
        [scoring("Q:", " yes", " no"), scoring("R:", " x")])
    for completion in (out, also):
        assert completion.error is not None
        assert completion.error.kind is ErrorKind.UNSUPPORTED
        assert "no logprobs" in completion.error.message
        assert completion.loglikelihoods == ()
    assert server.count() == 3


def test_loglikelihood_error_fails_the_request(serve: Callable[[Responder], FakeServer]) -> None:
    def half(path: str, body: dict[str, Any], nth: int) -> Action:
        if body["prompt"].endswith("London"):
            return Action(500, {"error": {"message": "oom"}})
        return logprob_answer()(path, body, nth)

    server = serve(half)
    [out] = backend_for(server.url, max_retries=1).loglikelihood(
        [scoring("It is", " Paris", " London")])
    assert out.error is not None and out.error.kind is ErrorKind.SERVER_ERROR
    assert out.error.attempts == 2
    assert out.loglikelihoods == ()


# -- streaming (stream=1): time to first token ------------------------------------------------


def _sse(events: list[object]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + \
        b"data: [DONE]\n\n"


def streamed_answer(path: str, body: dict[str, Any], nth: int = 0) -> Action:
    """Two samples' pieces interleaved, a keep-alive comment, usage in the last chunk."""
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    chat_path = path.endswith("/chat/completions")

    def piece(index: int, text: str, reason: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": index, "finish_reason": reason}
        choice.update({"delta": {"content": text}} if chat_path else {"text": text})
        return {"choices": [choice]}

    events = [piece(1, "Bon"), piece(0, "Hel"), piece(0, "lo"), piece(1, "jour", "stop"),
              piece(0, "", "length"), {"choices": [], "usage": {"prompt_tokens": 5,
                                                                "completion_tokens": 4}}]
    return Action(body=b": keep-alive\n\n" + _sse(events),
                  headers={"Content-Type": "text/event-stream"})


@pytest.mark.parametrize("request_of", [chat, plain])
def test_streamed_answers_are_reassembled_with_time_to_first_token(
        serve: Callable[[Responder], FakeServer], request_of: Callable[..., Request]) -> None:
    server = serve(streamed_answer)
    backend = backend_for(server.url, stream=1)
    try:
        completion = one(backend, request_of("hi", n=2, temperature=0.5))
    finally:
        backend.close()
    assert completion.ok, completion.error
    assert completion.texts == ("Hello", "Bonjour")
    assert completion.finish_reasons == ("length", "stop")
    assert (completion.prompt_tokens, completion.output_tokens) == (5, 4)
    assert completion.ttft_s is not None and 0 < completion.ttft_s <= completion.latency_s


def test_streaming_is_speed_only_and_its_errors_are_typed(
        serve: Callable[[Responder], FakeServer]) -> None:
    assert parse_model_spec("openai:http://h/v1@m?stream=1").identity == \
        parse_model_spec("openai:http://h/v1@m").identity
    with pytest.raises(ModelSpecError):
        load_backend("openai:http://h/v1@m?stream=2")
    server = serve(fail_first(1, Action(status=500, json={"error": "boom"})))
    backend = backend_for(server.url, stream=1, max_retries=0)
    try:
        completion = one(backend, chat("hi"))
    finally:
        backend.close()
    assert completion.error is not None and completion.error.kind is ErrorKind.SERVER_ERROR


def _stream_of(events: list[object], done: bool = True) -> Responder:
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return lambda path, request, nth: Action(body=body + (b"data: [DONE]\n\n" if done else b""),
                                             headers={"Content-Type": "text/event-stream"})


STREAM_FAULTS = {
    # vLLM's way of reporting a failure after the answer started, then [DONE]
    "error-event": ([{"choices": [{"index": 0, "delta": {"content": "Par"}}]},
                     {"error": {"message": "engine dead", "code": 500}}], True,
                    ErrorKind.SERVER_ERROR, "engine dead"),
    "no-finish-reason": ([{"choices": [{"index": 0, "delta": {"content": "Par"}}]}], True,
                         ErrorKind.CONNECTION, "before a finish reason"),
    "cut-without-done": ([{"choices": [{"index": 0, "delta": {"content": "Par"}}]}], False,
                         ErrorKind.CONNECTION, "before a finish reason"),
    "nothing-at-all": ([], True, ErrorKind.CONNECTION, "before a finish reason"),
}


@pytest.mark.parametrize(("events", "done", "kind", "says"), list(STREAM_FAULTS.values()),
                         ids=list(STREAM_FAULTS))
def test_a_broken_stream_is_a_typed_error_not_a_short_answer(
        serve: Callable[[Responder], FakeServer], events: list[object], done: bool,
        kind: ErrorKind, says: str) -> None:
    server = serve(_stream_of(events, done))
    backend = backend_for(server.url, stream=1, max_retries=1, backoff=0.01)
    try:
        completion = one(backend, chat("hi"))
    finally:
        backend.close()
    assert not completion.ok and completion.texts == ()
    assert completion.error is not None and completion.error.kind is kind
    assert says in completion.error.message and completion.error.attempts == 2  # retried
