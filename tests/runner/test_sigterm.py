"""SIGTERM (kill, systemd, a CI runner's timeout) stops `run` as cleanly as Ctrl-C:
the run is marked interrupted, every stored chunk is whole, exit code 143, and the
same command resumes with nothing generated twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fault_server import FakeServer, Responder, delayed
from helpers import stored_request_keys

from harness.store import Store


@pytest.mark.slow  # two runs as processes against a server
def test_sigterm_marks_the_run_interrupted_and_a_rerun_resumes(
        tmp_path: Path, serve: Callable[[Responder], FakeServer]) -> None:
    server = serve(delayed(0.1))
    rows = [{"id": f"q{i:02d}", "question": f"q{i:02d}", "answer": f"echo: q{i:02d}"}
            for i in range(24)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "s.yaml").write_text(
        "name: slow\nlicense: test data\nkind: generate\ndata: {path: items.jsonl}\n"
        'prompt: {user: "{{ question }}"}\ntarget: "{{ answer }}"\n'
        "generation: {max_tokens: 8}\nmetrics: [exact_match]\n")
    db = tmp_path / "t.db"
    command = [sys.executable, "-m", "harness", "run", "--model",
               f"openai:{server.url}@m?concurrency=1", "--suite", "s.yaml", "--db", str(db),
               "--quiet"]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(stored_request_keys(db)) < 4 and time.monotonic() < deadline \
            and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "interrupted: run" in stderr and "Traceback" not in stderr
    stored = stored_request_keys(db)
    assert 4 <= len(stored) < 24
    with Store(db) as store:
        (record,) = store.list_runs()
        assert record.status == "interrupted"
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           check=False)
    assert again.returncode == 0, again.stderr
    assert f"generated {24 - len(stored)}, reused {len(stored)}, errors 0" in again.stdout
