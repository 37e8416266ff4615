"""Keeping an OpenAI-compatible server (or several) saturated, and backing off when asked.

Three parts, all owned by one backend:

- ``LoopThread``: a private event loop on a daemon thread. The backend's HTTP
  clients live on it for the backend's whole life, so connections are reused
  from one runner batch to the next, and the next batch can be in flight while
  the runner stores the previous one.
- ``AdaptiveLimit``: the in-flight cap of one endpoint, AIMD like TCP's
  congestion window. A 429 halves it (once per round trip: answers to requests
  sent before the last cut do not cut again) and a ``Retry-After`` pauses new
  sends to that endpoint; each success adds ``1/limit`` until it is back at the
  configured ``concurrency``.
- ``EndpointPool``: several base URLs serving the same model. A request takes a
  slot on whichever endpoint has the most room (work stealing: a fast endpoint
  frees slots sooner, so it takes more). An endpoint that refuses connections,
  or fails ``max_retries + 1`` times in a row with 5xx/timeouts/dropped
  connections, is taken out for the rest of the backend's life, and the
  requests that failed there go to the others at once. A lone endpoint is never
  taken out: its requests keep their ordinary retries.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from harness.backends.openai_parse import Failure
from harness.types import ErrorKind

log = logging.getLogger(__name__)
T = TypeVar("T")
# failures that say something about the endpoint rather than about the request
_ENDPOINT_FAILURES = (ErrorKind.SERVER_ERROR, ErrorKind.TIMEOUT, ErrorKind.CONNECTION)


class LoopThread:
    """An asyncio loop on its own daemon thread; ``run`` blocks the caller (which may
    itself be inside an event loop, as in a notebook) until a coroutine is done."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.submit(coro).result()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


@dataclass
class AdaptiveLimit:
    """AIMD cap on one endpoint's requests in flight (see the module docstring)."""

    ceiling: int
    limit: float = 0.0
    in_flight: int = 0
    paused_until: float = 0.0  # time.monotonic() before which nothing new is sent
    last_cut: float = -1.0

    def __post_init__(self) -> None:
        self.limit = float(self.ceiling)

    def has_room(self, now: float) -> bool:
        return now >= self.paused_until and self.in_flight < max(1, int(self.limit))

    def room(self) -> float:
        return (max(1, int(self.limit)) - self.in_flight) / self.ceiling

    def succeeded(self) -> None:
        self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)

    def rate_limited(self, sent_at: float, retry_after: float | None, now: float) -> None:
        if sent_at > self.last_cut:  # one cut per round trip
            self.limit = max(1.0, self.limit / 2)
            self.last_cut = now
        if retry_after:
            self.paused_until = max(self.paused_until, now + retry_after)


@dataclass
class Endpoint:
    url: str
    client: aiohttp.ClientSession
    limit: AdaptiveLimit
    up: bool = True
    failures_in_a_row: int = 0
    served: int = 0  # successful answers, for the report and the tests


@dataclass
class EndpointPool:
    """Slots on several endpoints, handed out fairly (FIFO) to waiting requests.

    Lives on one event loop and is only touched from it, so it needs no lock:
    nothing awaits between checking for room and taking it. A freed slot is
    handed straight to the longest-waiting request (taken on its behalf before it
    wakes), so a woken request never finds its slot gone and queues again: with
    hundreds of requests waiting on a fast server, waking "someone" and letting
    them race cost several wake-ups per request.
    """

    endpoints: Sequence[Endpoint]
    max_failures: int  # in a row, before an endpoint is taken out (when others remain)
    _waiters: collections.deque[asyncio.Future[Endpoint | None]] = field(
        default_factory=collections.deque)

    def live(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e.up]

    async def acquire(self) -> Endpoint | None:
        """A slot on the endpoint with the most room; None once every endpoint is out."""
        if not self._waiters:  # nobody queued ahead of this request
            endpoint = self._take(time.monotonic())
            if endpoint is not None:
                return endpoint
        if not self.live():
            return None
        waiter: asyncio.Future[Endpoint | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake()  # waiters cancelled earlier may hold the queue over a free slot
        try:
            return await waiter
        except asyncio.CancelledError:
            # cancelled after a slot was handed over but before it woke: give it back
            if waiter.done() and not waiter.cancelled() and (slot := waiter.result()):
                self.abandon(slot)
            raise

    def _take(self, now: float) -> Endpoint | None:
        """Take a slot on the live endpoint with the most room, if any has room."""
        best: Endpoint | None = None
        for endpoint in self.endpoints:
            if endpoint.up and endpoint.limit.has_room(now) and (
                    best is None or endpoint.limit.room() > best.limit.room()):
                best = endpoint
        if best is not None:
            best.limit.in_flight += 1
        return best

    def release(self, endpoint: Endpoint, sent_at: float, failure: Failure | None) -> bool:
        """Give the slot back and learn from the outcome. True when this failure took
        the endpoint out of service (the caller then retries elsewhere at once)."""
        now = time.monotonic()
        endpoint.limit.in_flight -= 1
        taken_out = False
        if failure is None:
            endpoint.served += 1
            endpoint.failures_in_a_row = 0
            endpoint.limit.succeeded()
        elif failure.kind is ErrorKind.RATE_LIMITED:
            endpoint.limit.rate_limited(sent_at, failure.retry_after, now)
            if endpoint.limit.paused_until > now:
                asyncio.get_running_loop().call_later(
                    endpoint.limit.paused_until - now + 0.001, self._wake)
        elif failure.kind in _ENDPOINT_FAILURES:
            endpoint.failures_in_a_row += 1
            if len(self.endpoints) > 1 and endpoint.up and (
                    failure.refused or endpoint.failures_in_a_row >= self.max_failures):
                endpoint.up = False
                taken_out = True
                log.warning("endpoint %s taken out after %d failures in a row: %s",
                            endpoint.url, endpoint.failures_in_a_row, failure.message)
        else:  # it answered (a 4xx, a garbled body): alive, whatever the request's fate
            endpoint.failures_in_a_row = 0
        self._wake()
        return taken_out and not endpoint.up

    def abandon(self, endpoint: Endpoint) -> None:
        """Give a slot back without an outcome (the request was cancelled)."""
        endpoint.limit.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        """Hand free slots to waiters, oldest first; once every endpoint is out of
        service, wake them all with None."""
        if not self._waiters:  # the common case when the server keeps up: nothing to do
            return
        now = time.monotonic()
        everyone_out = not self.live()
        while self._waiters:
            if self._waiters[0].done():  # its request was cancelled while waiting
                self._waiters.popleft()
                continue
            endpoint = None if everyone_out else self._take(now)
            if endpoint is None and not everyone_out:
                return
            self._waiters.popleft().set_result(endpoint)

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.client.close()
