"""Start, watch and stop a local OpenAI-compatible server process.

Used by the ``vllm-serve:`` and ``serve:`` model specs (and by the tests, which
start ``transformers serve`` with it). The contract:

- the server runs in its own session and process group, so Ctrl-C in the
  terminal reaches only evalarena, which then stops the server deliberately,
  and ``stop`` can kill helpers the server spawned (vLLM's engine processes)
  along with it;
- its stdout and stderr go to a log file, named in every error;
- ``start`` waits for the health path to answer 200, with a timeout, and cleans
  up whatever it started if that fails, times out or is interrupted;
- ``stop`` sends SIGTERM to the group, then SIGKILL to what is left;
- nothing outlives evalarena: an ``atexit`` hook stops every live server, a
  SIGTERM to evalarena is turned into KeyboardInterrupt (so the normal cleanup
  runs), and on Linux the server gets SIGTERM from the kernel if evalarena dies
  by SIGKILL (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from harness.errors import EvalarenaError

STOP_TIMEOUT_S = 15.0  # vLLM needs a few seconds to release GPU memory on SIGTERM
POLL_S = 0.25
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


class ServerStartError(EvalarenaError):
    """The server exited during start-up or never became healthy."""


class ServerDiedError(EvalarenaError):
    """The server exited while a run was using it. Rerunning resumes the run."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def default_log_dir() -> Path:
    root = os.environ.get("EVALARENA_CACHE") or Path.home() / ".cache" / "evalarena"
    return Path(root) / "servers"


def resolve_program(argv: Sequence[str]) -> list[str]:
    """Find argv[0] on PATH, else next to this Python (a venv's console scripts
    are there even when the venv is not activated)."""
    program = argv[0]
    if os.sep not in program:
        found = shutil.which(program) or shutil.which(program, path=str(Path(sys.executable)
                                                                        .parent))
        if found:
            program = found
    return [program, *argv[1:]]


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "is still running"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


class ManagedServer:
    """One server process: ``start()``, use ``base_url``, ``stop()``.

    ``argv`` may contain ``{host}``, ``{port}`` and ``{model}`` placeholders.
    With no fixed ``port`` a free one is picked, and start-up is retried on a
    fresh port when the process dies at once (another process can take the
    port between our probe and the server's bind).
    """

    def __init__(self, argv: Sequence[str], *, model: str = "", name: str | None = None,
                 host: str = "127.0.0.1", port: int | None = None,
                 health_path: str = "/health", startup_timeout: float = 600.0,
                 log_path: Path | None = None, env: Mapping[str, str] | None = None,
                 attempts: int = 3) -> None:
        self.argv = list(argv)
        self.model = model
        self.name = name or Path(argv[0]).name
        self.host = host
        self.fixed_port = port
        self.health_path = health_path
        self.startup_timeout = startup_timeout
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.attempts = attempts if port is None else 1
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_path = log_path or default_log_dir() / f"{self.name}-{stamp}-{os.getpid()}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    # -- state -----------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def command_line(self) -> list[str]:
        values = {"host": self.host, "port": str(self.port), "model": self.model}
        return resolve_program([part.format(**values) for part in self.argv])

    # -- lifecycle -------------------------------------------------------
    def start(self) -> ManagedServer:
        """Start the process and wait until it is healthy; raise ServerStartError if not."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        last = ""
        for attempt in range(self.attempts):
            self.port = self.fixed_port or free_port(self.host)
            try:
                self._spawn(append=attempt > 0)
                if self._wait_healthy():
                    return self
            except BaseException:  # Ctrl-C while waiting: leave nothing behind
                self.stop()
                raise
            assert self.process is not None
            returncode = self.process.poll()
            self.stop()
            if returncode is None:
                raise ServerStartError(
                    f"{self.name} was not healthy ({self.base_url}{self.health_path}) within "
                    f"{self.startup_timeout:g} s (option startup_timeout); it was stopped. "
                    f"Log {self.log_path}:\n{self.log_tail()}")
            last = f"{describe_exit(returncode)}"
        raise ServerStartError(
            f"{self.name} {last} during start-up ({self.attempts} attempt(s)); "
            f"log {self.log_path}:\n{self.log_tail()}")

    def _spawn(self, append: bool) -> None:
        argv = self.command_line()
        in_main_thread = threading.current_thread() is threading.main_thread()
        with self.log_path.open("ab" if append else "wb") as sink:
            sink.write(f"$ {' '.join(argv)}\n".encode())
            sink.flush()
            try:
                self.process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                    env=self.env, start_new_session=True,
                    # the death signal follows the *thread* that forked: only the main
                    # thread lives as long as the process
                    preexec_fn=_die_with_parent if in_main_thread else None,
                )
            except OSError as exc:
                hint = " (not on PATH: is it installed in this environment?)" \
                    if isinstance(exc, FileNotFoundError) else ""
                raise ServerStartError(f"cannot start {argv[0]!r}{hint}: {exc}") from None
        _register(self)

    def _wait_healthy(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.base_url}{self.health_path}"
        assert self.process is not None
        while self.process.poll() is None and time.monotonic() < deadline:
            if _answers_200(url):
                return True
            time.sleep(POLL_S)
        return False

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL what is left. Idempotent."""
        process = self.process
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:  # the whole group is gone
                break
            except PermissionError:  # pid reused by someone else's process: not ours
                break
            # the loop goes on after the leader exits, so a straggler in the group
            # still gets SIGKILL; an empty group ends it with ProcessLookupError
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline and _group_exists(process.pid):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(POLL_S)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT_S)  # reap the leader
        _unregister(self)

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when evalarena dies, even by SIGKILL."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


# -- process-wide safety net ----------------------------------------------
_LIVE: set[ManagedServer] = set()
_LOCK = threading.Lock()
_PREVIOUS_SIGTERM: Any = None


def _register(server: ManagedServer) -> None:
    global _PREVIOUS_SIGTERM
    with _LOCK:
        first = not _LIVE
        _LIVE.add(server)
    if first and threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        _PREVIOUS_SIGTERM = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


def _unregister(server: ManagedServer) -> None:
    global _PREVIOUS_SIGTERM
    with _LOCK:
        _LIVE.discard(server)
        last = not _LIVE
    if last and _PREVIOUS_SIGTERM is not None \
            and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _PREVIOUS_SIGTERM)
        _PREVIOUS_SIGTERM = None


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM while a server runs: unwind like Ctrl-C, so the run is marked
    interrupted and every ``finally`` (which stops the server) runs."""
    raise KeyboardInterrupt


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()
