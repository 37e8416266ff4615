"""Cheap, real fixtures for the review tests: runs written through the Store API.

The completions are text we choose instead of a model's, but everything else
(runs, requests, samples, completions) is the same SQLite rows the pipeline
writes, so campaigns are built exactly as they are from real runs.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from harness.store import RunRecord, Store, utc_now
from harness.types import Completion, GenerationParams, Message, Request, RequestKind, Sample
from review_ui.auth import hash_password

FAST_HASH = {"n": 2**10, "r": 8, "p": 1}  # test accounts only: a cheaper scrypt cost


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(db: Path, *, undo_window: float = 60.0,
                   timeout: float = 120.0) -> Iterator[str]:
    """`evalarena review` in a subprocess on a free port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = (db.parent / f"server-{port}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "review", "--db", str(db), "--port", str(port),
         "--undo-window", str(undo_window)], stdout=log, stderr=subprocess.STDOUT, env=env)
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
