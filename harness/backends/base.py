"""The one interface every model backend implements.

Batch-first and order-preserving: a backend gets a list of requests and returns
one Completion per request, in the same order. A backend never raises for a
single bad request: it returns ``Completion.failed(...)`` with a typed error
kind, so the runner can record it and go on. Raising is for the backend as a
whole being unusable (a model that will not load).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence

from harness.types import Completion, Request, RequestKind


class Backend(ABC):
    #: the canonical model spec this backend serves (part of every request key)
    model_id: str
    #: how many requests the runner hands over per call; the runner stores each
    #: call's answers in one transaction, so this also bounds what a crash loses
    batch_size: int = 8

    @abstractmethod
    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Free generation for ``RequestKind.GENERATE`` requests."""

    @abstractmethod
    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        """Log-probability of each continuation after the prompt."""

    def run(self, requests: Sequence[Request]) -> list[Completion]:
        """Dispatch a mixed batch by kind, keeping the order."""
        results: list[Completion | None] = [None] * len(requests)
        for kind, method in (
            (RequestKind.GENERATE, self.generate),
            (RequestKind.LOGLIKELIHOOD, self.loglikelihood),
        ):
            positions = [i for i, r in enumerate(requests) if r.kind is kind]
            if positions:
                for i, completion in zip(
                    positions, method([requests[i] for i in positions]), strict=True
                ):
                    results[i] = completion
        return [c for c in results if c is not None]

    def run_chunks(self, requests: Sequence[Request]) -> Iterator[list[tuple[int, Completion]]]:
        """Answers as they become ready: ``(position in requests, completion)`` pairs,
        in chunks the runner stores one transaction each. Every position comes
        exactly once. The default is one chunk, the whole ``run``; a backend that
        takes a whole run at once (vLLM) yields finished requests as it goes, so a
        crash loses only what was still in flight."""
        yield list(enumerate(_exactly(self.run(requests), len(requests))))

    def run_stream(self, batches: Iterable[Sequence[Request]]
                   ) -> Iterator[tuple[int, list[tuple[int, Completion]]]]:
        """``(batch number, chunk)`` pairs over many batches: ``run_chunks`` of each
        batch in turn. Backends that can work ahead (HTTP, data parallel) override it
        to keep the next batch in flight while the runner stores this one; the batches
        are the runner's, unchanged, so a crash still loses whole chunks only."""
        for number, batch in enumerate(batches):
            for chunk in self.run_chunks(batch):
                yield number, chunk

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (processes, connections, GPU memory)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SharedBackend(Backend):
    """One backend for several runs (``run --suite a --suite b``, benchmarks, tests):
    built on first use, handed to each run, closed once by ``close_shared``.

    The runner closes the backend it was given when a run ends; this wrapper's
    ``close`` keeps the model loaded for the next run instead, so an engine that
    takes 15-100 s to start (vLLM) starts once. Everything else is the inner
    backend's, including ``run_chunks`` and ``run_stream``, so streaming and
    work-ahead behave exactly as they do unshared."""

    def __init__(self, load: Callable[[], Backend] | Backend) -> None:
        self._load = load
        self._inner: Backend | None = load if isinstance(load, Backend) else None

    @property
    def inner(self) -> Backend:
        if self._inner is None:
            assert callable(self._load)
            self._inner = self._load()
        return self._inner

    def loaded(self) -> SharedBackend:
        """Load now (if not yet) and return self: the factory to hand ``execute``, so
        the model's load time is measured as loading, not as generating."""
        _ = self.inner
        return self

    @property
    def model_id(self) -> str:  # type: ignore[override]
        return self.inner.model_id

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        return self.inner.batch_size

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return self.inner.generate(requests)

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        return self.inner.loglikelihood(requests)

    def run(self, requests: Sequence[Request]) -> list[Completion]:
        return self.inner.run(requests)

    def run_chunks(self, requests: Sequence[Request]) -> Iterator[list[tuple[int, Completion]]]:
        return self.inner.run_chunks(requests)

    def run_stream(self, batches: Iterable[Sequence[Request]]
                   ) -> Iterator[tuple[int, list[tuple[int, Completion]]]]:
        return self.inner.run_stream(batches)

    def close(self) -> None:
        """Kept open for the next run; ``close_shared`` releases it."""

    def close_shared(self) -> None:
        if self._inner is not None:
            inner, self._inner = self._inner, None
            inner.close()
            self._load = None  # type: ignore[assignment]  # closed for good


def _exactly(completions: list[Completion], count: int) -> list[Completion]:
    if len(completions) != count:
        raise RuntimeError(f"backend returned {len(completions)} answers for {count} requests")
    return completions


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first stop sequence; report whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
