"""Start and stop a real ``transformers serve`` process for tests.

The point is to test the openai backend against a real OpenAI-compatible server
rather than our idea of one. The server runs in its own process group (it
spawns threads and may spawn helpers), on 127.0.0.1 and a free port, with the
hub switched off; its output goes to a log file so a failure can be diagnosed
after the fact. ``stop`` kills the whole group, so a failed test never leaves a
server holding a port and a gigabyte of memory.

Naming: with a FORCE_MODEL argument the server loads that model at start-up
and refuses (HTTP 400, "Server is pinned to ...") any request whose ``model``
is not exactly that string, so requests must name the directory exactly as it
was passed on the command line.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

STARTUP_TIMEOUT_S = 180.0  # loading is ~5 s on an idle machine; a busy CI box is slower
STOP_TIMEOUT_S = 10.0
# loaded here, not in the forked child, which should only make the one call
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


class ServeStartError(RuntimeError):
    """The server exited or never became healthy; the message has its log tail."""


@dataclass
class ServeProcess:
    """A running ``transformers serve``: where it listens and what it serves."""

    process: subprocess.Popen[bytes]
    port: int
    model_name: str  # what every request's `model` field must say
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def spec(self, **options: object) -> str:
        """The evalarena model spec that talks to this server."""
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"openai:{self.base_url}@{self.model_name}" + (f"?{query}" if query else "")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def serve_available() -> bool:
    """`transformers serve` needs the `serving` extra (fastapi, uvicorn)."""
    return all(importlib.util.find_spec(m) is not None for m in ("fastapi", "uvicorn"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the test process dies, even by
    SIGKILL, when no fixture teardown runs (Linux only; elsewhere a no-op)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def start_serve(model_dir: Path, log_path: Path, *, timeout: float = STARTUP_TIMEOUT_S,
                attempts: int = 3, threads: int | None = None) -> ServeProcess:
    """Start a server for ``model_dir`` and wait for GET /health.

    Retries on a fresh port when the process dies early: another process can
    take the free port between our probe and the server's bind. ``threads``
    caps the server's CPU threads (OMP_NUM_THREADS).
    """
    transformers_cli = Path(sys.executable).parent / "transformers"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    model_name = str(model_dir)
    last_error = ""
    for attempt in range(attempts):
        port = free_port()
        log = log_path.with_name(f"{log_path.stem}.{attempt}{log_path.suffix}") \
            if attempt else log_path
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [str(transformers_cli), "serve", model_name, "--host", "127.0.0.1",
                 "--port", str(port), "--device", "cpu", "--log-level", "info"],
                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,  # its own process group: stop() kills it whole
                preexec_fn=_die_with_parent,
            )
        server = ServeProcess(process, port, model_name, log)
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if _healthy(port):
                return server
            time.sleep(0.25)
        exited = process.poll() is not None
        stop(server)
        if not exited:
            raise ServeStartError(f"transformers serve not healthy after {timeout:g} s; "
                                  f"log {log}:\n{server.log_tail()}")
        last_error = f"exited with {process.returncode}; log {log}:\n{server.log_tail()}"
    raise ServeStartError(f"transformers serve failed {attempts} times; last {last_error}")


def stop(server: ServeProcess) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left."""
    process = server.process
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # the whole group is gone already
            break
        # after the leader is gone the loop goes on, so a straggler in the group
        # still gets SIGKILL; an empty group ends it with ProcessLookupError
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)
