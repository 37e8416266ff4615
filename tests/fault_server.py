"""A fault-injecting OpenAI-compatible HTTP server on 127.0.0.1, for tests.

A stdlib ThreadingHTTPServer whose ``responder`` decides, per request, what to
answer: JSON, an HTTP error, garbage, a hang, or a dropped connection. It
records every request so a test can assert how many attempts a client really
made. Shared by the backend tests (one request at a time) and the runner tests
(whole runs against a misbehaving server).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Action:
    """What the server does with one request."""

    status: int = 200
    json: Any = None  # answer body as JSON ...
    body: bytes | None = None  # ... or these raw bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (or before dropping)
    drop: bool = False  # close the socket without any response


@dataclass
class Seen:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


Responder = Callable[[str, dict[str, Any], int], Action]  # (path, body, nth request on path)


class FakeServer:
    """An OpenAI-compatible server whose every answer comes from ``responder``."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.stopping = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def count(self, path: str | None = None) -> int:
        with self.lock:
            return sum(1 for s in self.seen if path is None or s.path == path)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"{}")
                with server.lock:
                    nth = sum(1 for s in server.seen if s.path == self.path)
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    server.seen.append(Seen(self.path, body, headers, time.monotonic()))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    action = server.responder(self.path, body, nth)
                    if action.delay:
                        server.stopping.wait(action.delay)
                    if action.drop:
                        self.close_connection = True
                        return
                    data = action.body if action.body is not None else json.dumps(
                        action.json).encode()
                    self.send_response(action.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in action.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up first
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

        return Handler

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()  # wake hanging handlers
        self.httpd.shutdown()
        self.httpd.server_close()


def prompt_of(body: dict[str, Any]) -> str:
    """The last user message of a chat request, or a completions request's prompt."""
    return body["messages"][-1]["content"] if "messages" in body else body["prompt"]


def echo_answer(path: str, body: dict[str, Any], nth: int = 0) -> Action:
    """A well-behaved server: answers "echo: <prompt>" (n choices, suffix #i for i > 0)."""
    prompt = prompt_of(body)
    texts = [f"echo: {prompt}" + (f" #{i}" if i else "") for i in range(body.get("n") or 1)]
    if path.endswith("/chat/completions"):
        choices = [{"index": i, "message": {"role": "assistant", "content": t},
                    "finish_reason": "stop"} for i, t in enumerate(texts)]
    else:
        choices = [{"index": i, "text": t, "finish_reason": "length"}
                   for i, t in enumerate(texts)]
    choices.reverse()  # the backend must order by index, not by position
    return Action(json={"id": "x", "object": "chat.completion", "choices": choices,
                        "usage": {"prompt_tokens": 7, "completion_tokens": 3}})


def fail_first(k: int, action: Action) -> Responder:
    """Answer ``action`` for the first k requests, then like a normal server."""
    return lambda path, body, nth: action if nth < k else echo_answer(path, body)


@contextmanager
def fake_servers() -> Iterator[Callable[[Responder], FakeServer]]:
    """Start servers on demand; stop them all on exit (a test's fixture wraps this)."""
    servers: list[FakeServer] = []

    def start(responder: Responder) -> FakeServer:
        server = FakeServer(responder).__enter__()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.__exit__()


def delayed(seconds: float) -> Responder:
    """A well-behaved server that takes ``seconds`` to answer each request."""
    def respond(path: str, body: dict[str, Any], nth: int) -> Action:
        action = echo_answer(path, body)
        action.delay = seconds
        return action
    return respond
