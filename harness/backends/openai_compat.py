"""Any OpenAI-compatible HTTP server (vLLM, TGI, llama.cpp, transformers serve, OpenAI).

The SDK's own retries are switched off (``max_retries=0``): we retry here so we
can classify every failure into an ``ErrorKind``, count attempts, and never let
an error reach the scorer as if it were an answer. ``generate`` and
``loglikelihood`` are synchronous to the caller; inside, one asyncio loop per
call keeps up to ``concurrency`` requests in flight and returns answers in
request order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import json
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI

from harness.backends import ModelSpec
from harness.backends.base import Backend, truncate_at_stop
from harness.errors import ModelSpecError
from harness.types import Completion, ErrorKind, Request

log = logging.getLogger(__name__)
T = TypeVar("T")
# what reading a well-formed-JSON but wrongly-shaped answer can raise
_MALFORMED = (KeyError, IndexError, TypeError, ValueError, AttributeError)

ENDPOINTS = ("auto", "chat", "completions")
MAX_BACKOFF_S = 20.0
MAX_RETRY_AFTER_S = 60.0  # a server asking for more is treated as asking for this
# how servers word "prompt too long" (vLLM, OpenAI, TGI, llama.cpp)
_CONTEXT_LENGTH = re.compile(
    r"context[ _-]?length|maximum context|context window|too many tokens|prompt is too long"
    r"|exceeds? the (available )?context",
    re.IGNORECASE,
)


class _Failure(Exception):
    """One failed attempt, already classified."""

    def __init__(self, kind: ErrorKind, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        # only these can go away by waiting; a 4xx or a garbled answer will come back the same
        self.retryable = kind in (ErrorKind.RATE_LIMITED, ErrorKind.SERVER_ERROR,
                                  ErrorKind.TIMEOUT, ErrorKind.CONNECTION)


@dataclass(frozen=True)
class _Reply:
    """A parsed JSON answer, or the error that ended the retries."""

    data: dict[str, Any] | None
    attempts: int
    latency_s: float = 0.0  # wall time of the successful attempt
    error: _Failure | None = None


class OpenAIBackend(Backend):
    """Talks to ``<base url>/chat/completions`` and ``<base url>/completions``."""

    def __init__(
        self, model_id: str, base_url: str, model_name: str, *, concurrency: int = 16,
        timeout: float = 120.0, max_retries: int = 4, backoff: float = 0.5,
        endpoint: str = "auto", api_key: str | None = None,
    ) -> None:
        self.model_id = model_id
        self.base_url = base_url
        self.model_name = model_name
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.endpoint = endpoint
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") \
            or os.environ.get("EVALARENA_API_KEY") or "EMPTY"  # local servers need none
        # enough to keep every slot busy between the runner's store transactions
        self.batch_size = 4 * concurrency

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
        base_url = spec.target
        if urlsplit(base_url).path in ("", "/"):  # vLLM & co. serve the API under /v1
            base_url = base_url.rstrip("/") + "/v1"
        return cls(
            spec.identity, base_url, spec.model_name or "", concurrency=concurrency,
            timeout=timeout, max_retries=max_retries, backoff=backoff, endpoint=endpoint,
        )

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return self._run_batch(requests, self._generate_one)

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        return self._run_batch(requests, self._loglikelihood_one)

    def _run_batch(
        self, requests: Sequence[Request],
        one: Callable[[AsyncOpenAI, asyncio.Semaphore, Request], Awaitable[Completion]],
    ) -> list[Completion]:
        if not requests:
            return []

        async def run_all() -> list[Completion]:
            # the client and semaphore belong to this call's event loop, so both live here
            semaphore = asyncio.Semaphore(self.concurrency)
            client = AsyncOpenAI(
                api_key=self.api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout,
            )
            try:
                return list(await asyncio.gather(*(one(client, semaphore, r) for r in requests)))
            finally:
                await client.close()

        return _run_sync(run_all())

    async def _post(
        self, client: AsyncOpenAI, semaphore: asyncio.Semaphore, endpoint: str,
        payload: dict[str, Any],
    ) -> _Reply:
        """Send with retries. The slot is held through backoff so an overloaded
        server sees fewer requests, not the same number re-sent sooner."""
        resource = client.with_raw_response.chat.completions if endpoint == "chat" \
            else client.with_raw_response.completions
        attempts = 0
        async with semaphore:
            while True:
                attempts += 1
                start = time.perf_counter()
                try:
                    raw = await asyncio.wait_for(resource.create(**payload), self.timeout)
                    latency = time.perf_counter() - start
                    return _Reply(_parse_json(raw.text), attempts, latency)
                except _Failure as failure:
                    error = failure
                except (TimeoutError, openai.APITimeoutError):
                    error = _Failure(ErrorKind.TIMEOUT, f"no answer within {self.timeout:g} s "
                                     f"from {self.base_url}")
                except openai.APIConnectionError as exc:
                    cause = exc.__cause__ or exc
                    error = _Failure(ErrorKind.CONNECTION,
                                     f"{self.base_url}: {type(cause).__name__}: {cause}")
                except openai.APIStatusError as exc:
                    error = _classify_status(exc)
                except openai.OpenAIError as exc:
                    error = _Failure(ErrorKind.INVALID_RESPONSE, f"{type(exc).__name__}: {exc}")
                if not error.retryable or attempts > self.max_retries:
                    return _Reply(None, attempts, error=error)
                delay = error.retry_after if error.retry_after is not None \
                    else min(MAX_BACKOFF_S, self.backoff * 2 ** (attempts - 1)) \
                    * random.uniform(0.5, 1.0)
                log.debug("attempt %d failed (%s), retrying in %.2f s", attempts, error, delay)
                await asyncio.sleep(delay)

    async def _generate_one(
        self, client: AsyncOpenAI, semaphore: asyncio.Semaphore, request: Request
    ) -> Completion:
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
        reply = await self._post(client, semaphore, endpoint, payload)
        if reply.error is not None:
            return Completion.failed(reply.error.kind, reply.error.message, reply.attempts)
        try:
            texts, reasons = _parse_choices(reply.data, endpoint, params.n)
            usage = _usage(reply.data)
        except (_Failure, *_MALFORMED) as exc:
            return _invalid(exc, reply.attempts)
        cut = [truncate_at_stop(t, params.stop) for t in texts]  # some servers ignore `stop`
        return Completion(
            texts=tuple(t for t, _ in cut),
            finish_reasons=tuple("stop" if found else r for (_, found), r in zip(cut, reasons,
                                                                                  strict=True)),
            prompt_tokens=usage[0], output_tokens=usage[1], latency_s=reply.latency_s,
        )

    async def _loglikelihood_one(
        self, client: AsyncOpenAI, semaphore: asyncio.Semaphore, request: Request
    ) -> Completion:
        if request.text is None:
            return Completion.failed(
                ErrorKind.UNSUPPORTED, "loglikelihood on the openai backend needs a text prompt: "
                "it scores with the completions endpoint (echo + logprobs), which cannot apply "
                "the server's chat template to chat messages",
            )
        context = request.text
        # max_tokens=1, not 0: several servers reject 0 (transformers serve answers 500),
        # and _score ignores the one generated token that follows the echoed prompt
        replies = await asyncio.gather(*(
            self._post(client, semaphore, "completions", {
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
                scores.append(_score(reply.data, context, cont))
                prompt_tokens += _usage(reply.data)[0]
            except (_Failure, *_MALFORMED) as exc:
                return _invalid(exc, reply.attempts)
        greedy = [g for _, g, _ in scores]
        return Completion(
            loglikelihoods=tuple(s for s, _, _ in scores),
            # all or nothing: a partial tuple would misalign with the continuations
            greedy_matches=() if None in greedy else tuple(bool(g) for g in greedy),
            continuation_tokens=tuple(n for _, _, n in scores),
            prompt_tokens=prompt_tokens,
            latency_s=max(r.latency_s for r in replies),  # they ran side by side
        )


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, also from code already inside an event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _invalid(exc: Exception, attempts: int) -> Completion:
    """A parse failure as a Completion: our own classified ones keep their kind;
    anything else a malformed answer raised while we read it is INVALID_RESPONSE."""
    if isinstance(exc, _Failure):
        return Completion.failed(exc.kind, exc.message, attempts)
    return Completion.failed(ErrorKind.INVALID_RESPONSE, f"malformed answer: {exc!r}", attempts)


def _classify_status(exc: openai.APIStatusError) -> _Failure:
    status = exc.status_code
    body = exc.response.text[:500]
    message = f"HTTP {status} from {exc.response.url}: {body or exc.message}"
    if status == 429:
        return _Failure(ErrorKind.RATE_LIMITED, message, _retry_after(exc.response.headers))
    if status >= 500:
        return _Failure(ErrorKind.SERVER_ERROR, message)
    if _CONTEXT_LENGTH.search(body or exc.message):
        return _Failure(ErrorKind.CONTEXT_LENGTH, message)
    return _Failure(ErrorKind.BAD_REQUEST, message)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a 429 asks us to wait: ``retry-after-ms``, or ``Retry-After`` as
    seconds or an HTTP date. None when absent or unreadable."""
    seconds: float | None = None
    try:
        if ms := headers.get("retry-after-ms"):
            seconds = float(ms) / 1000
        elif value := headers.get("retry-after"):
            try:
                seconds = float(value)
            except ValueError:
                when = email.utils.parsedate_to_datetime(value)
                seconds = when.timestamp() - time.time()
    except (ValueError, TypeError):
        return None
    return None if seconds is None else min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _parse_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise _Failure(ErrorKind.INVALID_RESPONSE, f"not JSON: {text[:300]!r}") from None
    if not isinstance(data, dict):
        raise _Failure(ErrorKind.INVALID_RESPONSE, f"expected a JSON object: {text[:300]!r}")
    return data


def _choices(data: dict[str, Any] | None) -> list[dict[str, Any]]:
    choices = (data or {}).get("choices")
    if not isinstance(choices, list) or not choices or not all(isinstance(c, dict)
                                                               for c in choices):
        raise _Failure(ErrorKind.INVALID_RESPONSE,
                       f"no choices in the answer: {json.dumps(data)[:300]}")
    return sorted(choices, key=lambda c: c["index"] if isinstance(c.get("index"), int) else 0)


def _parse_choices(
    data: dict[str, Any] | None, endpoint: str, n: int
) -> tuple[list[str], list[str]]:
    choices = _choices(data)
    if len(choices) != n:  # fewer samples than asked would silently skew pass@k
        raise _Failure(ErrorKind.INVALID_RESPONSE, f"asked for n={n} samples, the server "
                       f"returned {len(choices)} (does it support `n`?)")
    texts: list[str] = []
    for choice in choices:
        # a null chat content (e.g. all tokens spent on hidden reasoning) is an empty answer
        message = choice.get("message")
        text = (message.get("content") or "" if isinstance(message, dict) else None) \
            if endpoint == "chat" else choice.get("text")
        if not isinstance(text, str):
            raise _Failure(ErrorKind.INVALID_RESPONSE, f"choice without text: {choice}"[:300])
        texts.append(text)
    return texts, [str(c.get("finish_reason") or "unknown") for c in choices]


def _usage(data: dict[str, Any] | None) -> tuple[int, int]:
    usage = (data or {}).get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def _score(data: dict[str, Any] | None, context: str, continuation: str) -> tuple[
    float, bool | None, int
]:
    """Sum the continuation's token logprobs from an echoed prompt.

    A token counts toward the continuation when its span ends after the context,
    so a token straddling the boundary (context "is " + "Paris" tokenized as
    " Paris") is scored rather than silently dropped. Offsets are taken relative
    to where the prompt starts in the echoed tokens, because vLLM echoes a BOS
    token ("<s>") that shifts every ``text_offset``. Returns (sum, greedy or
    None when the server gave no top logprobs, token count).
    """
    logprobs = _choices(data)[0].get("logprobs")
    if not isinstance(logprobs, dict) or not logprobs.get("token_logprobs"):
        raise _Failure(ErrorKind.UNSUPPORTED, "server returned no logprobs for an echoed prompt; "
                       "loglikelihood needs a server that supports echo + logprobs (e.g. vLLM)")
    # a wrongly-shaped field raises one of _MALFORMED, which the caller reports
    tokens = [str(t) for t in logprobs["tokens"]]
    values = [None if v is None else float(v) for v in logprobs["token_logprobs"]]
    offsets = [int(o) for o in logprobs["text_offset"]]
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    if not len(tokens) == len(values) == len(offsets) == len(tops):
        raise _Failure(ErrorKind.INVALID_RESPONSE, "logprobs lists differ in length")
    prompt = context + continuation
    start = "".join(tokens).find(prompt)
    if start < 0:
        raise _Failure(ErrorKind.INVALID_RESPONSE, "the echoed tokens do not spell the prompt "
                       "(byte-level tokens?), so the continuation cannot be located")
    begin, end = offsets[0] + start + len(context), offsets[0] + start + len(prompt)
    total, greedy, count = 0.0, True, 0
    for token, value, offset, top in zip(tokens, values, offsets, tops, strict=True):
        if offset >= end or offset + len(token) <= begin:
            continue
        if value is None:
            raise _Failure(ErrorKind.UNSUPPORTED, "the continuation's first token has no "
                           "logprob (empty context?); loglikelihood needs a non-empty context")
        total += value
        count += 1
        if greedy is not None:
            if isinstance(top, dict) and top:
                greedy = greedy and float(top.get(token, -float("inf"))) >= max(
                    float(v) for v in top.values())
            else:
                greedy = None
    return total, greedy, count
