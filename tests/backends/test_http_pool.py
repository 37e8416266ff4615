"""The openai backend's slot hand-off (``http_pool.EndpointPool``): a freed slot goes
straight to the oldest waiting request, a cancelled request gives back a slot it was
handed, and a stream stopped early leaves the backend usable.

Real HTTP servers on 127.0.0.1 (``fault_server.FakeServer``), except for the one
test that drives the pool directly to cancel a request at an exact moment.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable

import aiohttp
import pytest
from fault_server import (
    FakeServer,
    Responder,
    delayed,
    prompt_of,
)

from harness.backends import load_backend
from harness.backends.http_pool import AdaptiveLimit, Endpoint, EndpointPool
from harness.backends.openai_compat import OpenAIBackend
from harness.types import GenerationParams, Message, Request, RequestKind

FAST = "backoff=0.01&max_retries=2&timeout=5"


def chat(text: str) -> Request:
    return Request(RequestKind.GENERATE, "m", messages=(Message("user", text),),
                   params=GenerationParams(max_tokens=4))


def backend_for(url: str, options: str) -> OpenAIBackend:
    backend = load_backend(f"openai:{url}@m?{options}")
    assert isinstance(backend, OpenAIBackend)
    return backend


def test_waiting_requests_are_sent_in_arrival_order(
        serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(delayed(0.01))
    backend = backend_for(server.url, f"concurrency=1&{FAST}")
    try:
        out = backend.run([chat(f"q{i}") for i in range(12)])
    finally:
        backend.close()
    assert [c.texts for c in out] == [(f"echo: q{i}",) for i in range(12)]
    # one slot, eleven waiting: each freed slot went to the oldest of them
    assert [prompt_of(seen.body) for seen in server.seen] == [f"q{i}" for i in range(12)]
    assert server.max_in_flight == 1


def test_a_stream_stopped_early_leaves_the_backend_usable(
        serve: Callable[[Responder], FakeServer]) -> None:
    """Closing ``run_stream`` cancels the batches in flight, whose requests were
    queued for slots; the next call must still get every slot."""
    server = serve(delayed(0.05))
    backend = backend_for(server.url, f"concurrency=2&{FAST}")
    try:
        batches = [[chat(f"b{b}q{i}") for i in range(6)] for b in range(3)]
        stream = backend.run_stream(batches)
        number, first = next(stream)
        assert number == 0 and [c.texts for _, c in first] == [
            (f"echo: b0q{i}",) for i in range(6)]
        stream.close()  # batch 1 is in flight, part of it still waiting for a slot
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a hang fails, not blocks
            out = pool.submit(backend.run, [chat(f"r{i}") for i in range(8)]).result(timeout=20)
        assert backend._pool is not None
        slots = [(e.limit.in_flight, len(backend._pool._waiters)) for e in backend._pool.endpoints]
    finally:
        backend.close()
    assert [c.texts for c in out] == [(f"echo: r{i}",) for i in range(8)]
    assert slots == [(0, 0)]  # nothing leaked by the cancelled requests


def test_a_request_cancelled_after_the_hand_off_gives_its_slot_back() -> None:
    async def scenario() -> tuple[int, bool]:
        async with aiohttp.ClientSession() as session:
            endpoint = Endpoint("http://127.0.0.1:9/v1", session, AdaptiveLimit(1))
            pool = EndpointPool([endpoint], max_failures=3)
            held = await pool.acquire()
            assert held is endpoint
            waiting = asyncio.ensure_future(pool.acquire())
            await asyncio.sleep(0)  # it queues: the only slot is taken
            pool.release(endpoint, 0.0, None)  # the slot is handed to the waiting request
            waiting.cancel()  # ... which is cancelled before it runs again
            with pytest.raises(asyncio.CancelledError):
                await waiting
            # the slot came back: a new request gets it at once
            again = await asyncio.wait_for(pool.acquire(), 1)
            return endpoint.limit.in_flight, again is endpoint

    assert asyncio.run(scenario()) == (1, True)
