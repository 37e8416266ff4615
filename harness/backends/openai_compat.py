"""Any OpenAI-compatible HTTP server (vLLM, TGI, llama.cpp, transformers serve, OpenAI),
or several replicas of one.

Requests are plain JSON POSTs over aiohttp, not the ``openai`` SDK: on a small
machine the SDK's per-request cost capped a client at a sixth of what aiohttp
sends (benchmarks/http_saturation.py). Retries are ours, so every failure is
classified into an ``ErrorKind`` with its attempts counted, and no error ever
reaches the scorer as if it were an answer. ``generate``, ``loglikelihood``
and ``run`` are synchronous to the caller; inside, the backend's own event loop
(``http_pool.LoopThread``) keeps up to ``concurrency`` requests in flight per
endpoint and returns answers in request order. ``run_stream`` keeps the next
runner batch in flight while the caller stores the previous one, so the server
never idles between batches. How slots, 429 back-off and several endpoints work:
``harness/backends/http_pool.py``; reading replies: ``openai_parse.py``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import logging
import os
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from harness.backends.base import Backend, truncate_at_stop
from harness.backends.http_pool import AdaptiveLimit, Endpoint, EndpointPool, LoopThread
from harness.backends.openai_parse import (
    MALFORMED,
    Failure,
    Reply,
    assemble_stream,
    classify_exception,
    classify_status,
    invalid_completion,
    parse_choices,
    parse_json,
    prompt_token_logprobs,
    score_continuation,
    usage_of,
)
from harness.backends.spec import ModelSpec
from harness.errors import ModelSpecError
from harness.types import BackendError, Completion, ErrorKind, Request, RequestKind

log = logging.getLogger(__name__)

ENDPOINTS = ("auto", "chat", "completions")
MAX_BACKOFF_S = 20.0
BATCHES_IN_FLIGHT = 2  # run_stream: the batch being finished and the next one


class OpenAIBackend(Backend):
    """Talks to ``<base url>/chat/completions`` and ``<base url>/completions``."""

    def __init__(
        self, model_id: str, base_url: str, model_name: str, *, concurrency: int = 16,
        timeout: float = 120.0, max_retries: int = 4, backoff: float = 0.5,
        endpoint: str = "auto", api_key: str | None = None, replicas: Sequence[str] = (),
        stream: bool = False,
    ) -> None:
        self.model_id = model_id
        self.base_url = base_url
        # the first URL names the model; replicas are assumed to serve the same weights
        self.base_urls = (base_url, *replicas)
        self.model_name = model_name
        self.concurrency = concurrency  # per endpoint
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.endpoint = endpoint
        self.stream = stream  # generate with SSE streaming: measures time to first token
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") \
            or os.environ.get("EVALARENA_API_KEY") or "EMPTY"  # local servers need none
        # enough to keep every slot busy between the runner's store transactions
        self.batch_size = 4 * concurrency * len(self.base_urls)
        self._loop: LoopThread | None = None
        self._pool: EndpointPool | None = None

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> OpenAIBackend:
        endpoint = spec.options.get("endpoint", "auto")
        if endpoint not in ENDPOINTS:
            raise ModelSpecError(spec.raw, f"endpoint={endpoint!r}; expected one of {ENDPOINTS}")
        concurrency = spec.int_option("concurrency", 16)
        timeout = spec.float_option("timeout", 120.0)
        max_retries = spec.int_option("max_retries", 4)
        backoff = spec.float_option("backoff", 0.5)
        for name, value, low in (("concurrency", concurrency, 1), ("max_retries", max_retries, 0),
                                 ("backoff", backoff, 0)):
            if value < low:
                raise ModelSpecError(spec.raw, f"option {name}={value} must be >= {low}")
        if timeout <= 0:
            raise ModelSpecError(spec.raw, f"option timeout={timeout} must be > 0")
        stream = spec.options.get("stream", "0")
        if stream not in ("0", "1"):
            raise ModelSpecError(spec.raw, f"option stream={stream!r}; expected 0 or 1")
        base_url, *replicas = (_api_root(url) for url in (spec.target, *spec.replicas))
        return cls(
            spec.identity, base_url, spec.model_name or "", concurrency=concurrency,
            timeout=timeout, max_retries=max_retries, backoff=backoff, endpoint=endpoint,
            replicas=replicas, stream=stream == "1",
        )

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return self.run(requests)

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        return self.run(requests)

    def run(self, requests: Sequence[Request]) -> list[Completion]:
        return self._started().run(self._run_async(list(requests))) if requests else []

    def run_stream(self, batches: Iterable[Sequence[Request]]
                   ) -> Iterator[tuple[int, list[tuple[int, Completion]]]]:
        """Each batch whole, in order, with the next batch already in flight (its
        requests queue behind this one's, first come first served)."""
        loop = self._started()
        pending: collections.deque[concurrent.futures.Future[list[Completion]]] = \
            collections.deque()
        upcoming = iter(batches)
        number = 0
        try:
            while True:
                while len(pending) < BATCHES_IN_FLIGHT and (
                        batch := next(upcoming, None)) is not None:
                    pending.append(loop.submit(self._run_async(list(batch))))
                if not pending:
                    return
                yield number, list(enumerate(pending.popleft().result()))
                number += 1
        finally:
            for future in pending:  # the caller stopped early (interrupt, error)
                future.cancel()

    def token_logprobs(self, texts: Sequence[str]) -> list[list[float] | BackendError]:
        """Each text's token log-probabilities (echo + logprobs), or why not: what a
        membership score (Min-K%) reads from a server."""
        return self._started().run(self._token_logprobs_all(list(texts))) if texts else []

    async def _token_logprobs_all(self, texts: list[str]) -> list[list[float] | BackendError]:
        return list(await asyncio.gather(*(self._token_logprobs_one(t) for t in texts)))

    async def _token_logprobs_one(self, text: str) -> list[float] | BackendError:
        reply = await self._post("completions", {"model": self.model_name, "prompt": text,
                                                 "echo": True, "logprobs": 1, "max_tokens": 1})
        if reply.error is not None:
            return BackendError(reply.error.kind, reply.error.message, reply.attempts)
        try:
            return prompt_token_logprobs(reply.data, text)
        except (Failure, *MALFORMED) as exc:
            failed = invalid_completion(exc, reply.attempts).error
            assert failed is not None
            return failed

    def endpoints_served(self) -> dict[str, int]:
        """Answers per endpoint so far (which replica did the work)."""
        return {e.url: e.served for e in self._pool.endpoints} if self._pool else {}

    def close(self) -> None:
        if self._loop is not None:
            if self._pool is not None:
                self._loop.run(self._pool.aclose())
            self._loop.close()
            self._loop = self._pool = None

    def _started(self) -> LoopThread:
        if self._loop is None:
            self._loop = LoopThread(f"openai:{self.model_name}")
            self._pool = self._loop.run(self._make_pool())
        return self._loop

    async def _make_pool(self) -> EndpointPool:
        # keep-alive for every slot: a connection closed after each answer costs a handshake.
        # The total timeout covers one whole attempt (connect, send, headers, body); headers
        # are the session's, so nothing is merged per request
        endpoints = [Endpoint(url, aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"Authorization": f"Bearer {self.api_key}",
                     "Content-Type": "application/json"},
        ), AdaptiveLimit(self.concurrency)) for url in self.base_urls]
        return EndpointPool(endpoints, max_failures=self.max_retries + 1)

    async def _run_async(self, requests: list[Request]) -> list[Completion]:
        return list(await asyncio.gather(*(
            self._generate_one(r) if r.kind is RequestKind.GENERATE
            else self._loglikelihood_one(r) for r in requests)))

    async def _post(self, endpoint_kind: str, payload: dict[str, Any],
                    stream: bool = False) -> Reply:
        """Send with retries, each attempt on whichever endpoint has room. A failure that
        took its endpoint out of service is retried elsewhere at once, without using up
        a retry; other retryable failures wait the backoff (a 429's Retry-After pauses
        that endpoint instead)."""
        assert self._pool is not None
        body = json.dumps(payload).encode()
        attempts = retries = 0
        error: Failure | None = None
        while True:
            endpoint = await self._pool.acquire()
            if endpoint is None:  # every endpoint is out of service
                error = error or Failure(ErrorKind.CONNECTION, "no endpoint left in service")
                return Reply(None, attempts, error=error)
            attempts += 1
            path = "chat/completions" if endpoint_kind == "chat" else "completions"
            url = f"{endpoint.url}/{path}"
            start = time.monotonic()
            try:  # the session's total timeout bounds the attempt, body included
                if stream:
                    data, ttft = await self._send_streamed(endpoint, url, body, endpoint_kind,
                                                           start)
                else:
                    data, ttft = await self._send(endpoint, url, body), None
            except (Failure, TimeoutError, aiohttp.ClientError) as exc:
                error = classify_exception(exc, endpoint.url, self.timeout)
            except BaseException:  # cancelled (the caller stopped): the slot is not lost
                self._pool.abandon(endpoint)
                raise
            else:
                self._pool.release(endpoint, start, None)
                return Reply(data, attempts, time.monotonic() - start, ttft_s=ttft)
            taken_out = self._pool.release(endpoint, start, error)
            if not error.retryable:
                return Reply(None, attempts, error=error)
            if taken_out and self._pool.live():
                continue
            retries += 1
            if retries > self.max_retries:
                return Reply(None, attempts, error=error)
            if error.kind is ErrorKind.RATE_LIMITED and error.retry_after is not None:
                continue  # the endpoint is paused until then; another may take it sooner
            delay = min(MAX_BACKOFF_S, self.backoff * 2 ** (retries - 1)) \
                * random.uniform(0.5, 1.0)
            log.debug("attempt %d failed (%s), retrying in %.2f s", attempts, error, delay)
            await asyncio.sleep(delay)

    @staticmethod
    async def _send(endpoint: Endpoint, url: str, body: bytes) -> dict[str, Any]:
        """One POST; an HTTP error status becomes a classified Failure."""
        async with endpoint.client.post(url, data=body) as answer:
            raw = await answer.read()  # JSON is UTF-8: json.loads reads the bytes as they are
            if answer.status >= 400:
                raise classify_status(answer.status, raw.decode(errors="replace"),
                                      answer.headers, url)
            return parse_json(raw)

    @staticmethod
    async def _send_streamed(endpoint: Endpoint, url: str, body: bytes, endpoint_kind: str,
                             start: float) -> tuple[dict[str, Any], float | None]:
        """One streamed POST (server-sent events): the assembled answer and the time from
        sending to the first chunk that carries text."""
        events: list[dict[str, Any]] = []
        ttft = None
        async with endpoint.client.post(url, data=body) as answer:
            if answer.status >= 400:
                raw = await answer.read()
                raise classify_status(answer.status, raw.decode(errors="replace"),
                                      answer.headers, url)
            async for line in answer.content:
                if not line.startswith(b"data:"):
                    continue  # blank separators, comments, event names
                chunk = line[5:].strip()
                if chunk == b"[DONE]":
                    break
                event = parse_json(chunk)
                if ttft is None and any(
                        (c.get("delta") or {}).get("content") or c.get("text")
                        for c in event.get("choices") or [] if isinstance(c, dict)):
                    ttft = time.monotonic() - start
                events.append(event)
        return assemble_stream(events, endpoint_kind), ttft

    async def _generate_one(self, request: Request) -> Completion:
        params = request.params
        payload: dict[str, Any] = {
            "model": self.model_name, "max_tokens": params.max_tokens,
            "temperature": params.temperature, "top_p": params.top_p, "n": params.n,
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        if params.seed is not None:
            payload["seed"] = params.seed
        endpoint = self.endpoint
        if endpoint == "auto":
            endpoint = "chat" if request.messages is not None else "completions"
        if endpoint == "chat":
            messages = request.messages if request.messages is not None else ()
            payload["messages"] = [{"role": m.role, "content": m.content} for m in messages] \
                or [{"role": "user", "content": request.text or ""}]
        elif request.messages is not None:
            return Completion.failed(
                ErrorKind.UNSUPPORTED, "endpoint=completions needs a text prompt, and this "
                "request has chat messages (only the chat endpoint applies the chat template)",
            )
        else:
            payload["prompt"] = request.text
        if self.stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        reply = await self._post(endpoint, payload, self.stream)
        if reply.error is not None:
            return Completion.failed(reply.error.kind, reply.error.message, reply.attempts)
        try:
            texts, reasons = parse_choices(reply.data, endpoint, params.n)
            usage = usage_of(reply.data)
        except (Failure, *MALFORMED) as exc:
            return invalid_completion(exc, reply.attempts)
        cut = [truncate_at_stop(t, params.stop) for t in texts]  # some servers ignore `stop`
        return Completion(
            texts=tuple(t for t, _ in cut),
            finish_reasons=tuple("stop" if found else r for (_, found), r in zip(cut, reasons,
                                                                                  strict=True)),
            prompt_tokens=usage[0], output_tokens=usage[1], latency_s=reply.latency_s,
            ttft_s=reply.ttft_s,
        )

    async def _loglikelihood_one(self, request: Request) -> Completion:
        if request.text is None:
            return Completion.failed(
                ErrorKind.UNSUPPORTED, "loglikelihood on the openai backend needs a text prompt: "
                "it scores with the completions endpoint (echo + logprobs), which cannot apply "
                "the server's chat template to chat messages",
            )
        context = request.text
        if not context.strip(" "):
            return Completion.failed(
                ErrorKind.UNSUPPORTED, "a continuation with an empty context (scored whole, "
                "as CrowS-Pairs is) needs a BOS token before it, which a completions endpoint "
                "may or may not add: run it on the hf or vllm backend")
        # max_tokens=1, not 0: several servers reject 0 (transformers serve answers 500),
        # and _score ignores the one generated token that follows the echoed prompt
        replies = await asyncio.gather(*(
            self._post("completions", {
                "model": self.model_name, "prompt": context + cont, "echo": True,
                "logprobs": 1, "max_tokens": 1,
            }) for cont in request.continuations
        ))
        scores: list[tuple[float, bool | None, int]] = []
        prompt_tokens = 0
        for cont, reply in zip(request.continuations, replies, strict=True):
            if reply.error is not None:
                return Completion.failed(reply.error.kind, reply.error.message, reply.attempts)
            try:
                scores.append(score_continuation(reply.data, context, cont))
                prompt_tokens += usage_of(reply.data)[0]
            except (Failure, *MALFORMED) as exc:
                return invalid_completion(exc, reply.attempts)
        greedy = [g for _, g, _ in scores]
        return Completion(
            loglikelihoods=tuple(s for s, _, _ in scores),
            # all or nothing: a partial tuple would misalign with the continuations
            greedy_matches=() if None in greedy else tuple(bool(g) for g in greedy),
            continuation_tokens=tuple(n for _, _, n in scores),
            prompt_tokens=prompt_tokens,
            latency_s=max(r.latency_s for r in replies),  # they ran side by side
        )




def _api_root(url: str) -> str:
    """vLLM & co. serve the API under /v1: a URL with no path gets it."""
    return url.rstrip("/") + "/v1" if urlsplit(url).path in ("", "/") else url

