"""The openai backend at scale: several endpoints with work stealing and failover,
AIMD back-off on 429, and batches kept in flight across the runner's stores.

Real HTTP servers on 127.0.0.1 (``fault_server.FakeServer``) that are slow,
dead or rate-limiting on purpose; whole runs go through the real runner and a
real SQLite file.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fault_server import Action, FakeServer, Responder, delayed, echo_answer

from harness.backends import load_backend, parse_model_spec
from harness.backends.openai_compat import OpenAIBackend
from harness.errors import ModelSpecError
from harness.runner import execute, plan_run
from harness.store import Store
from harness.types import ErrorKind, GenerationParams, Message, Request, RequestKind

FAST = "backoff=0.01&max_retries=2&timeout=2"


def chat(text: str) -> Request:
    return Request(RequestKind.GENERATE, "m", messages=(Message("user", text),),
                   params=GenerationParams(max_tokens=4))


def closed_port_url() -> str:
    with socket.socket() as sock:  # nothing listens once it is closed
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def backend_for(urls: list[str], options: str) -> OpenAIBackend:
    backend = load_backend(f"openai:{','.join(urls)}@m?{options}")
    assert isinstance(backend, OpenAIBackend)
    return backend


def test_replicas_are_not_part_of_the_identity() -> None:
    one = parse_model_spec("openai:http://a:1/v1@m?concurrency=2&endpoint=chat")
    many = parse_model_spec("openai:http://a:1/v1, http://b:2/v1/@m?concurrency=2&endpoint=chat")
    assert many.identity == one.identity == "openai:http://a:1/v1@m?endpoint=chat"
    assert many.replicas == ("http://b:2/v1",)
    backend = OpenAIBackend.from_spec(parse_model_spec("openai:http://a:1,http://b:2@m"))
    assert backend.base_urls == ("http://a:1/v1", "http://b:2/v1")
    assert backend.batch_size == 4 * 16 * 2  # every endpoint's slots, four times over
    for bad, reason in (("openai:http://a/v1,http://a/v1@m", "twice"),
                        ("openai:http://a/v1,b/v1@m", "http")):
        with pytest.raises(ModelSpecError, match=reason):
            parse_model_spec(bad)


def test_fast_endpoint_takes_more_work(serve: Callable[[Responder], FakeServer]) -> None:
    slow, fast = serve(delayed(0.2)), serve(delayed(0.01))
    backend = backend_for([slow.url, fast.url], f"concurrency=2&{FAST}")
    try:
        out = backend.run([chat(f"q{i}") for i in range(40)])
    finally:
        backend.close()
    assert [c.texts for c in out] == [(f"echo: q{i}",) for i in range(40)]  # request order
    assert slow.count() + fast.count() == 40
    assert fast.count() >= 3 * slow.count() > 0  # work stealing, not round robin
    assert max(slow.max_in_flight, fast.max_in_flight) <= 2


def test_dead_endpoint_is_taken_out(serve: Callable[[Responder], FakeServer]) -> None:
    """A refused endpoint is out after its first failure; one answering 500 after
    max_retries + 1 failures in a row; everything is answered by the good one."""
    broken = serve(lambda path, body, nth: Action(500, {"error": {"message": "boom"}}))
    good = serve(delayed(0.005))
    backend = backend_for([closed_port_url(), broken.url, good.url], f"concurrency=2&{FAST}")
    try:
        out = backend.run([chat(f"q{i}") for i in range(30)])
        served = backend.endpoints_served()
    finally:
        backend.close()
    assert all(c.ok for c in out), [c.error for c in out if not c.ok]
    assert [c.texts for c in out] == [(f"echo: q{i}",) for i in range(30)]
    assert good.count() == 30 and served[good.url] == 30
    # 3 failures in a row take it out; up to 2 more were already in flight then
    assert 3 <= broken.count() <= 5


def test_all_endpoints_failing_are_typed_errors_in_the_store(
        tmp_path: Path, serve: Callable[[Responder], FakeServer]) -> None:
    broken = serve(lambda path, body, nth: Action(503, {"error": {"message": "down"}}))
    rows = [{"id": f"q{i}", "question": f"q{i}", "answer": f"echo: q{i}"} for i in range(6)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\nlicense: test data\nkind: generate\ndata:\n  path: items.jsonl\n"
        '  id_field: id\nprompt:\n  user: "{{ question }}"\ntarget: "{{ answer }}"\n'
        "generation:\n  max_tokens: 8\nmetrics: [exact_match]\n")
    plan = plan_run(str(suite), f"openai:{closed_port_url()},{broken.url}@m?{FAST}")
    with Store(tmp_path / "r.db") as store:
        outcome = execute(store, plan, lambda: load_backend(plan.model))
        errors = store.latest_errors(outcome.run_id)
    assert outcome.errors == 6 and outcome.summaries[0].n == 0
    kinds = {e.kind for e in errors.values()}
    assert kinds <= {ErrorKind.SERVER_ERROR, ErrorKind.CONNECTION} and kinds


def test_429_shrinks_concurrency_then_all_succeed(
        serve: Callable[[Responder], FakeServer]) -> None:
    """A server with room for 2 requests answers 429 to the rest. AIMD halves the
    backend's window on 429s, so it settles near 2 instead of retrying 8 at a time."""
    lock = threading.Lock()
    state = {"busy": 0, "rejected": 0}

    def capacity_two(path: str, body: dict[str, Any], nth: int) -> Action:
        with lock:
            if state["busy"] >= 2:
                state["rejected"] += 1
                return Action(429, {"error": {"message": "over capacity"}})
            state["busy"] += 1
        try:
            time.sleep(0.03)
            return echo_answer(path, body)
        finally:
            with lock:
                state["busy"] -= 1

    server = serve(capacity_two)
    backend = backend_for([server.url], "concurrency=8&backoff=0.01&max_retries=30")
    try:
        out = backend.run([chat(f"q{i}") for i in range(60)])
        window = backend._pool.endpoints[0].limit.limit if backend._pool else 0.0
    finally:
        backend.close()
    assert all(c.ok for c in out)
    # without back-off every retry wave would again send 8 into 2 slots
    assert state["rejected"] < 60, state
    assert window < 8


def test_retry_after_pauses_the_endpoint(serve: Callable[[Responder], FakeServer]) -> None:
    """One 429 with Retry-After: 1 holds back every request to that endpoint."""
    def first_rejected(path: str, body: dict[str, Any], nth: int) -> Action:
        if nth == 0:
            return Action(429, {"error": {"message": "wait"}}, headers={"Retry-After": "1"})
        return echo_answer(path, body)

    server = serve(first_rejected)
    backend = backend_for([server.url], "concurrency=1&backoff=0.01")
    try:
        out = backend.run([chat(f"q{i}") for i in range(3)])
    finally:
        backend.close()
    assert all(c.ok for c in out)
    times = [s.at for s in server.seen]
    assert times[1] - times[0] >= 0.95 and len(times) == 4


def test_next_batch_is_in_flight_while_the_runner_stores(
        serve: Callable[[Responder], FakeServer]) -> None:
    """run_stream: when batch 0 is handed back, batch 1 has already been sent."""
    server = serve(delayed(0.02))
    backend = backend_for([server.url], "concurrency=2")
    batches = [[chat(f"b{b}q{i}") for i in range(backend.batch_size)] for b in range(3)]
    try:
        stream = backend.run_stream(batches)
        number, chunk = next(stream)
        time.sleep(0.1)
        sent_meanwhile = server.count()
        rest = list(stream)
    finally:
        backend.close()
    assert number == 0 and [c.texts for _, c in chunk] == [(f"echo: b0q{i}",) for i in range(8)]
    assert sent_meanwhile > backend.batch_size
    assert [n for n, _ in rest] == [1, 2]
    assert [c.texts[0] for _, c in rest[1][1]] == [f"echo: b2q{i}" for i in range(8)]
