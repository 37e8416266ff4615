"""Reading what an OpenAI-compatible server answers: classified failures, choices,
usage and echoed logprobs.

Kept apart from the transport (``openai_compat``, ``http_pool``) so the rules for
turning a reply into a ``Completion`` or a typed error can be read in one place.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from harness.types import Completion, ErrorKind

# what reading a well-formed-JSON but wrongly-shaped answer can raise
MALFORMED = (KeyError, IndexError, TypeError, ValueError, AttributeError)

MAX_RETRY_AFTER_S = 60.0  # a server asking for more is treated as asking for this
# how servers word "prompt too long" (vLLM, OpenAI, TGI, llama.cpp)
_CONTEXT_LENGTH = re.compile(
    r"context[ _-]?length|maximum context|context window|too many tokens|prompt is too long"
    r"|exceeds? the (available )?context",
    re.IGNORECASE,
)


class Failure(Exception):
    """One failed attempt, already classified."""

    def __init__(self, kind: ErrorKind, message: str, retry_after: float | None = None,
                 *, refused: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        # nothing accepted the connection: with several endpoints this one is taken out at once
        self.refused = refused
        # only these can go away by waiting; a 4xx or a garbled answer will come back the same
        self.retryable = kind in (ErrorKind.RATE_LIMITED, ErrorKind.SERVER_ERROR,
                                  ErrorKind.TIMEOUT, ErrorKind.CONNECTION)


@dataclass(frozen=True)
class Reply:
    """A parsed JSON answer, or the error that ended the retries."""

    data: dict[str, Any] | None
    attempts: int
    latency_s: float = 0.0  # wall time of the successful attempt
    error: Failure | None = None
    ttft_s: float | None = None  # streamed answers: time to the first generated text


def assemble_stream(events: list[dict[str, Any]], endpoint: str) -> dict[str, Any]:
    """A streamed answer's chunks, put back together in the shape of a plain answer.

    Chat chunks carry ``choices[i].delta.content``, completions chunks
    ``choices[i].text``; the last chunk may carry ``usage`` (when asked with
    ``stream_options.include_usage``). A choice's index says which sample a
    piece belongs to, so n > 1 streams interleaved are reassembled in order.

    A stream that carries an error event (how vLLM reports a failure after the
    answer has started) is a server error, and one that ends before every sample
    has a finish reason was cut off: neither is ever taken for a short answer.
    """
    texts: dict[int, list[str]] = {}
    reasons: dict[int, str | None] = {}
    usage: dict[str, Any] | None = None
    for event in events:
        if not isinstance(event, dict):
            raise Failure(ErrorKind.INVALID_RESPONSE, f"stream event is not an object: {event}"
                          [:300])
        if event.get("error"):
            detail = event["error"]
            message = detail.get("message") if isinstance(detail, dict) else detail
            raise Failure(ErrorKind.SERVER_ERROR, f"error event in the stream: {message}"[:300])
        usage = event.get("usage") or usage
        for choice in event.get("choices") or []:
            index = int(choice.get("index") or 0)
            piece = (choice.get("delta") or {}).get("content") if endpoint == "chat" \
                else choice.get("text")
            texts.setdefault(index, []).append(piece or "")
            if choice.get("finish_reason"):
                reasons[index] = choice["finish_reason"]
    unfinished = sorted(set(texts) - set(reasons))
    if not texts or unfinished:
        raise Failure(ErrorKind.CONNECTION, "the stream ended before a finish reason "
                      f"(samples {unfinished or 'none'})")
    key = "message" if endpoint == "chat" else "text"
    choices = [{"index": i, "finish_reason": reasons.get(i),
                key: {"content": "".join(texts[i])} if key == "message" else "".join(texts[i])}
               for i in sorted(texts)]
    return {"choices": choices, "usage": usage or {}}


def classify_exception(exc: BaseException, base_url: str, timeout: float) -> Failure:
    """What one failed attempt was, as a typed Failure (raises what it cannot place)."""
    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, TimeoutError):  # asyncio's, and aiohttp's read timeouts subclass it
        return Failure(ErrorKind.TIMEOUT, f"no answer within {timeout:g} s from {base_url}")
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return Failure(ErrorKind.CONNECTION, f"{base_url}: {type(exc).__name__}: {exc}",
                       refused=isinstance(exc, aiohttp.ClientConnectorError))
    if isinstance(exc, aiohttp.ClientError):
        return Failure(ErrorKind.INVALID_RESPONSE, f"{type(exc).__name__}: {exc}")
    raise exc


def invalid_completion(exc: Exception, attempts: int) -> Completion:
    """A parse failure as a Completion: our own classified ones keep their kind;
    anything else a malformed answer raised while we read it is INVALID_RESPONSE."""
    if isinstance(exc, Failure):
        return Completion.failed(exc.kind, exc.message, attempts)
    return Completion.failed(ErrorKind.INVALID_RESPONSE, f"malformed answer: {exc!r}", attempts)


def classify_status(status: int, body: str, headers: Mapping[str, str], url: str) -> Failure:
    """An HTTP error answer as a typed Failure."""
    message = f"HTTP {status} from {url}: {body[:500]}"
    if status == 429:
        return Failure(ErrorKind.RATE_LIMITED, message, retry_after_seconds(headers))
    if status >= 500:
        return Failure(ErrorKind.SERVER_ERROR, message)
    if _CONTEXT_LENGTH.search(body[:500]):
        return Failure(ErrorKind.CONTEXT_LENGTH, message)
    return Failure(ErrorKind.BAD_REQUEST, message)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
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


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:  # UnicodeDecodeError included
        raise Failure(ErrorKind.INVALID_RESPONSE, f"not JSON: {_head(body)!r}") from None
    if not isinstance(data, dict):
        raise Failure(ErrorKind.INVALID_RESPONSE, f"expected a JSON object: {_head(body)!r}")
    return data


def _head(body: bytes) -> str:
    return body[:300].decode(errors="replace")


def choices_of(data: dict[str, Any] | None) -> list[dict[str, Any]]:
    choices = (data or {}).get("choices")
    if not isinstance(choices, list) or not choices or not all(isinstance(c, dict)
                                                               for c in choices):
        raise Failure(ErrorKind.INVALID_RESPONSE,
                       f"no choices in the answer: {json.dumps(data)[:300]}")
    return sorted(choices, key=lambda c: c["index"] if isinstance(c.get("index"), int) else 0)


def parse_choices(
    data: dict[str, Any] | None, endpoint: str, n: int
) -> tuple[list[str], list[str]]:
    choices = choices_of(data)
    if len(choices) != n:  # fewer samples than asked would silently skew pass@k
        raise Failure(ErrorKind.INVALID_RESPONSE, f"asked for n={n} samples, the server "
                       f"returned {len(choices)} (does it support `n`?)")
    texts: list[str] = []
    for choice in choices:
        # a null chat content (e.g. all tokens spent on hidden reasoning) is an empty answer
        message = choice.get("message")
        text = (message.get("content") or "" if isinstance(message, dict) else None) \
            if endpoint == "chat" else choice.get("text")
        if not isinstance(text, str):
            raise Failure(ErrorKind.INVALID_RESPONSE, f"choice without text: {choice}"[:300])
        texts.append(text)
    return texts, [str(c.get("finish_reason") or "unknown") for c in choices]


def usage_of(data: dict[str, Any] | None) -> tuple[int, int]:
    usage = (data or {}).get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def score_continuation(data: dict[str, Any] | None, context: str, continuation: str) -> tuple[
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
    tokens, values, offsets, tops = _echoed(data)
    prompt = context + continuation
    start = "".join(tokens).find(prompt)
    if start < 0:
        raise Failure(ErrorKind.INVALID_RESPONSE, "the echoed tokens do not spell the prompt "
                       "(byte-level tokens?), so the continuation cannot be located")
    begin, end = offsets[0] + start + len(context), offsets[0] + start + len(prompt)
    total, count = 0.0, 0
    greedy: bool | None = True
    for token, value, offset, top in zip(tokens, values, offsets, tops, strict=True):
        if offset >= end or offset + len(token) <= begin:
            continue
        if value is None:
            raise Failure(ErrorKind.UNSUPPORTED, "the continuation's first token has no "
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


def _echoed(data: dict[str, Any] | None) -> tuple[list[str], list[float | None], list[int],
                                                 list[Any]]:
    """An echoed prompt's tokens, their log-probabilities (None where the server gave
    none), text offsets and top log-probabilities; a wrongly-shaped field raises one of
    MALFORMED, which the caller reports."""
    logprobs = choices_of(data)[0].get("logprobs")
    if not isinstance(logprobs, dict) or not logprobs.get("token_logprobs"):
        raise Failure(ErrorKind.UNSUPPORTED, "server returned no logprobs for an echoed prompt; "
                       "this needs a server that supports echo + logprobs (e.g. vLLM)")
    tokens = [str(t) for t in logprobs["tokens"]]
    values = [None if v is None else float(v) for v in logprobs["token_logprobs"]]
    offsets = [int(o) for o in logprobs["text_offset"]]
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    if not len(tokens) == len(values) == len(offsets) == len(tops):
        raise Failure(ErrorKind.INVALID_RESPONSE, "logprobs lists differ in length")
    return tokens, values, offsets, tops


def prompt_token_logprobs(data: dict[str, Any] | None, text: str) -> list[float]:
    """The log-probabilities of an echoed prompt's tokens, in order, for membership
    scores. A token the server gave no log-probability (the first, when no BOS token
    precedes it) is left out, and so is the token generated after the prompt."""
    tokens, values, offsets, _ = _echoed(data)
    start = "".join(tokens).find(text)
    if start < 0:
        raise Failure(ErrorKind.INVALID_RESPONSE, "the echoed tokens do not spell the prompt")
    end = offsets[0] + start + len(text)
    return [v for v, offset in zip(values, offsets, strict=True)
            if offset < end and v is not None]
