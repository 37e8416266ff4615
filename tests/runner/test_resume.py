"""Interrupt a run, rerun it: same results, and nothing stored is generated again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ScriptedBackend, stored_request_keys

from harness.backends.base import Backend
from harness.runner import TRACE_ENV, execute, plan_run
from harness.store import Store

MODEL = "smollm2-135m?batch_size=2"  # batch size is runtime-only: same run identity


def _texts(store: Store, run_id: str) -> dict[str, tuple[str, ...]]:
    samples = store.run_samples(run_id)
    answers = store.completions(s.request_key for s in samples)
    return {s.sample.id: answers[s.request_key].texts for s in samples}


@pytest.mark.slow
def test_interrupted_run_resumes_without_regenerating(tmp_path: Path, embedded_backend) -> None:
    plan = plan_run("smoke", "smollm2-135m", limit=10)
    # reference: one uninterrupted run
    with Store(tmp_path / "ref.db") as ref:
        whole = ScriptedBackend(inner=embedded_backend, batch_size=2)
        reference = execute(ref, plan, lambda: whole)
        expected = _texts(ref, plan.run_id)
    assert len(whole.seen) == 10 and reference.generated == 10

    with Store(tmp_path / "resumed.db") as store:
        first = ScriptedBackend(inner=embedded_backend, batch_size=2, crash_after=2)
        with pytest.raises(KeyboardInterrupt):
            execute(store, plan, lambda: first)
        assert store.get_run(plan.run_id).status == "interrupted"
        stored_before = store.completed_keys(r.key for _, r in plan.items)
        assert len(stored_before) == 4 == len(first.seen)

        second = ScriptedBackend(inner=embedded_backend, batch_size=2)
        outcome = execute(store, plan, lambda: second)
        assert not set(second.seen) & stored_before, "a stored request was generated again"
        assert len(second.seen) == 6 and outcome.generated == 6 and outcome.reused == 4
        assert _texts(store, plan.run_id) == expected
        assert outcome.summaries == reference.summaries
        assert store.get_run(plan.run_id).status == "completed"

        # a third run of the same command generates nothing and loads no model
        def no_backend() -> Backend:
            raise AssertionError("nothing is pending: the model must not be loaded")

        third = execute(store, plan, no_backend)
        assert third.generated == 0 and third.summaries == reference.summaries



@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_gives_identical_results(tmp_path: Path) -> None:
    db, ref_db, trace = tmp_path / "run.db", tmp_path / "ref.db", tmp_path / "trace.txt"
    env = {**os.environ, TRACE_ENV: str(trace), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "harness", "run", "--model", MODEL, "--suite", "smoke",
               "--quiet", "--db"]
    proc = subprocess.Popen([*command, str(db)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(stored_request_keys(db)) < 6:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    stored_at_kill = stored_request_keys(db)
    assert 6 <= len(stored_at_kill) < 24
    first_trace = trace.read_text().split()

    rerun = subprocess.run([*command, str(db)], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=600, check=False)
    assert rerun.returncode == 0, rerun.stderr
    second_trace = trace.read_text().split()[len(first_trace):]
    assert not set(second_trace) & stored_at_kill, "a stored request was generated again"
    assert len(second_trace) == len(set(second_trace)) == 24 - len(stored_at_kill)

    reference = subprocess.run([*command, str(ref_db)], env={**env, TRACE_ENV: ""},
                               cwd=tmp_path, capture_output=True, text=True, timeout=600,
                               check=False)
    assert reference.returncode == 0, reference.stderr
    with Store(db) as resumed, Store(ref_db) as ref:
        run_id = resumed.list_runs()[0].id
        assert ref.list_runs()[0].id == run_id  # same command, same run identity
        assert _texts(resumed, run_id) == _texts(ref, run_id)
        assert resumed.scores(run_id) == ref.scores(run_id)
        assert resumed.metric_summaries(run_id) == ref.metric_summaries(run_id)
