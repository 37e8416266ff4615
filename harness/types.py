"""The few value types every stage of the pipeline passes around.

All are frozen dataclasses: a request that could be mutated after its key was
computed would silently break resumption, so nothing here can change once built.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import Any


class RequestKind(StrEnum):
    GENERATE = "generate"
    LOGLIKELIHOOD = "loglikelihood"


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class GenerationParams:
    """Everything that changes what a backend generates for a prompt."""

    max_tokens: int = 256
    temperature: float = 0.0  # 0 means greedy decoding
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    n: int = 1  # samples per prompt
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class Request:
    """One prompt for one model.

    The prompt is either chat ``messages`` or plain ``text``. A loglikelihood
    request scores each of ``continuations`` after the prompt in one request, so
    a backend can share the prompt's computation across the choices of a
    multiple-choice question.
    """

    kind: RequestKind
    model: str  # canonical model spec; part of the key so two models never share answers
    messages: tuple[Message, ...] | None = None
    text: str | None = None
    continuations: tuple[str, ...] = ()
    params: GenerationParams = field(default_factory=GenerationParams)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.text is None):
            raise ValueError("a Request has exactly one of messages or text")
        if self.kind is RequestKind.LOGLIKELIHOOD and not self.continuations:
            raise ValueError("a loglikelihood Request needs continuations")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Request:
        messages = data.get("messages")
        params = dict(data.get("params") or {})
        params["stop"] = tuple(params.get("stop") or ())
        return cls(
            kind=RequestKind(data["kind"]),
            model=data["model"],
            messages=tuple(Message(**m) for m in messages) if messages is not None else None,
            text=data.get("text"),
            continuations=tuple(data.get("continuations") or ()),
            params=GenerationParams(**params),
        )

    @cached_property
    def key(self) -> str:
        """Stable hash of everything that changes the answer.

        Computed once per request and kept (``cached_property`` writes the instance
        ``__dict__`` directly, which a frozen dataclass allows): the runner reads it
        several times per request, and hashing a serialized copy each time was a
        large share of the client's CPU when a fast server answers thousands a second."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class ErrorKind(StrEnum):
    RATE_LIMITED = "rate_limited"  # 429 after all retries
    SERVER_ERROR = "server_error"  # 5xx after all retries
    TIMEOUT = "timeout"  # no answer within the request timeout
    CONNECTION = "connection"  # refused or dropped connection
    BAD_REQUEST = "bad_request"  # 4xx other than 429: retrying will not help
    CONTEXT_LENGTH = "context_length"  # prompt longer than the model accepts
    UNSUPPORTED = "unsupported"  # e.g. logprobs from a server that ignores them
    INVALID_RESPONSE = "invalid_response"  # the server answered something unparseable
    BACKEND_CRASH = "backend_crash"  # an exception inside a local backend


@dataclass(frozen=True)
class BackendError:
    """Why a request has no answer. Stored, counted, never scored."""

    kind: ErrorKind
    message: str
    attempts: int = 1


@dataclass(frozen=True)
class Completion:
    """What a backend returned for one Request (or why it could not)."""

    texts: tuple[str, ...] = ()  # n generated texts
    finish_reasons: tuple[str, ...] = ()  # "stop" | "length" per text
    loglikelihoods: tuple[float, ...] = ()  # one per continuation
    greedy_matches: tuple[bool, ...] = ()  # continuation equals the greedy decode
    continuation_tokens: tuple[int, ...] = ()  # tokens per continuation
    prompt_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    ttft_s: float | None = None  # time to the first generated token, where a backend measures it
    error: BackendError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, kind: ErrorKind, message: str, attempts: int = 1) -> Completion:
        return cls(error=BackendError(kind, message[:2000], attempts))


@dataclass(frozen=True)
class Sample:
    """One item of a suite, ready to score: the data row plus what is right."""

    id: str
    doc: dict[str, Any]
    target: str | int | None  # reference answer, or index of the right choice
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricSummary:
    """An aggregate over a run's samples, always with its uncertainty."""

    metric: str
    value: float
    ci_low: float
    ci_high: float
    n: int  # samples scored
    n_errors: int  # samples with no answer (backend errors), excluded from n


@dataclass(frozen=True)
class SliceSummary:
    """A metric over one group of a run's items, with its CI."""

    metric: str
    slice: str  # the data field, or "length"
    group: str  # the field's value, or the length bucket
    value: float
    ci_low: float
    ci_high: float
    n: int  # items scored
    n_errors: int  # items of the group with no answer


@dataclass(frozen=True)
class Invocation:
    """One invocation's measurements; the counts are filled from what it stored."""

    backend: str
    started_at: str
    finished_at: str
    load_s: float
    generate_s: float
    peak_rss_mb: float | None
    gpu_peak_mb: float | None
    gpu_energy_j: float | None
    answers: int = 0
    errors: int = 0
    prompt_tokens: int = 0  # tokens read: prompts and scored continuations
    output_tokens: int = 0  # tokens generated

    def with_counts(self, answers: int, errors: int, prompt_tokens: int,
                    output_tokens: int) -> Invocation:
        return replace(self, answers=answers, errors=errors, prompt_tokens=prompt_tokens,
                       output_tokens=output_tokens)
