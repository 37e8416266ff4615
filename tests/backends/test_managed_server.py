"""Managed servers: start, health, run, clean stop, and every way it can go wrong.

The fast tests use small stand-in commands (a server that never becomes
healthy, one that exits at once) to check the lifecycle's error paths. The slow
ones start a real ``transformers serve`` of the embedded model through a
``serve:`` spec, the same code path ``vllm-serve:`` takes with ``vllm serve``:
a clean run, a server killed with SIGKILL mid-run (reported, then resumed by
rerunning the same command), and Ctrl-C. After each, the server's process group
must be gone.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import (
    TRANSFORMERS_SERVE,
    VLLM_MISSING,
    VLLM_TEST_OPTIONS,
    serve_available,
    stored_request_keys,
    vllm_available,
)

from harness.backends import load_backend, parse_model_spec
from harness.backends.managed_server import ManagedServer, ServerStartError
from harness.runner import TRACE_ENV, execute, plan_run
from harness.store import Store

# a "server" that listens but never answers /health with 200, and has a child
# in its process group (the child must die with it); the sleep length marks it
NEVER_HEALTHY = 'sh -c "sleep {marker} & exec {python} -m http.server --bind {{host}} {{port}}"'


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry.name))
    return found


def test_startup_timeout_stops_the_whole_group(tmp_path: Path) -> None:
    marker = "301.25"
    command = NEVER_HEALTHY.format(marker=marker, python=sys.executable)
    server = ManagedServer(shlex.split(command), name="never-healthy", startup_timeout=1.5,
                           log_path=tmp_path / "never.log")
    started = time.monotonic()
    with pytest.raises(ServerStartError, match=r"not healthy .* within 1\.5 s") as error:
        server.start()
    assert time.monotonic() - started < 30
    assert str(tmp_path / "never.log") in str(error.value)
    assert server.pid is not None and _group_gone(server.pid)
    assert _processes_with(f"sleep {marker}") == []  # the child went with the group


def test_server_that_exits_at_once_is_reported_with_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('cannot load weights'); sys.exit(3)",
            "{port}"]
    server = ManagedServer(argv, name="broken", startup_timeout=30, log_path=tmp_path / "b.log",
                           attempts=2)
    with pytest.raises(ServerStartError, match="exited with code 3") as error:
        server.start()
    assert "cannot load weights" in str(error.value)
    assert not server.alive()


def test_serve_spec_errors_are_input_errors(cli, tmp_path: Path) -> None:
    no_cmd = cli("run", "--model", f"serve:{tmp_path}", "--suite", "smoke",
                 "--db", str(tmp_path / "a.db"))
    assert no_cmd.returncode == 2 and "needs cmd=" in no_cmd.stderr
    assert no_cmd.stderr.count("\n") == 1


@pytest.mark.slow  # waits out a server's start-up timeout
def test_cli_startup_timeout_is_one_clear_error_and_no_orphans(cli, tmp_path: Path) -> None:
    marker = "302.75"
    command = NEVER_HEALTHY.format(marker=marker, python=sys.executable)
    spec = f"serve:{tmp_path}?cmd={quote(command)}&startup_timeout=1.5"
    result = cli("run", "--model", spec, "--suite", "smoke", "--quiet",
                 "--db", str(tmp_path / "t.db"), timeout=120)
    assert result.returncode == 1, result.stderr
    assert "evalarena: error:" in result.stderr and "not healthy" in result.stderr
    assert "startup_timeout" in result.stderr  # says which option to raise
    assert _processes_with(f"sleep {marker}") == []


# -- a real server --------------------------------------------------------------
# one request in flight: the runner then hands over batches of 4 (4 x concurrency)
CLIENT = "concurrency=1&timeout=600&max_retries=1&backoff=0.1&startup_timeout=180"


def _serve_spec(server: str = "transformers") -> str:
    """A managed spec of the embedded model: ``transformers serve`` through ``serve:``,
    or vLLM's own server through ``vllm-serve:`` (bf16, eager: a 20 s start on CPU)."""
    from harness.backends.embedded import converted_model_dir

    if server == "vllm":
        return f"vllm-serve:{converted_model_dir()}?{VLLM_TEST_OPTIONS}&{CLIENT}"
    return f"serve:{converted_model_dir()}?cmd={quote(TRANSFORMERS_SERVE)}&{CLIENT}"


def _servers(test):  # type: ignore[no-untyped-def]
    """Run a lifecycle test against both real servers; vLLM's needs vllm installed."""
    params = [pytest.param("transformers", marks=pytest.mark.skipif(
                  not serve_available(), reason="transformers serve needs the serving extra")),
              pytest.param("vllm", marks=pytest.mark.skipif(not vllm_available(),
                                                            reason=VLLM_MISSING))]
    return pytest.mark.parametrize("server", params)(test)


def _server_pid(stderr_path: Path, timeout: float = 240) -> int:
    """The pid evalarena prints when its server is up (the `started ...` line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"started \S+ \(pid (\d+)\)", stderr_path.read_text())
        if found:
            return int(found.group(1))
        time.sleep(0.2)
    raise AssertionError(f"no server started: {stderr_path.read_text()[-2000:]}")



@pytest.mark.slow
@_servers
def test_managed_run_starts_serves_and_stops_clean(server: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the server inherits the environment
    spec = _serve_spec(server)
    plan = plan_run("smoke", spec, limit=4)
    assert "startup_timeout=" not in plan.model.identity
    assert "concurrency=" not in plan.model.identity
    assert ("cmd=" if server == "transformers" else "dtype=float32") in plan.model.identity
    backends = []

    def factory():  # type: ignore[no-untyped-def]
        backends.append(load_backend(plan.model))
        return backends[0]

    with Store(tmp_path / "m.db") as store:
        outcome = execute(store, plan, factory)
        assert (outcome.generated, outcome.errors) == (4, 0), store.latest_errors(plan.run_id)
        assert store.get_run(plan.run_id).status == "completed"
        server = backends[0].server
        assert server.pid is not None and _group_gone(server.pid)  # stopped by execute
        assert "POST /v1/chat/completions" in server.log_tail(10**6)  # it served the run
        again = execute(store, plan_run("smoke", spec, limit=4),
                        lambda: pytest.fail("nothing pending: no server may start"))
        assert again.generated == 0 and again.reused == 4
    assert parse_model_spec(spec.replace("startup_timeout=180", "startup_timeout=9")).identity \
        == plan.model.identity


@pytest.mark.slow
@_servers
def test_killed_server_is_reported_and_rerun_resumes(server: str, tmp_path: Path) -> None:
    db, trace, err = tmp_path / "k.db", tmp_path / "trace.txt", tmp_path / "stderr.txt"
    env = {**os.environ, TRACE_ENV: str(trace), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    # 8 items = a batch of 4, stored, then another 4, killed in flight
    command = [sys.executable, "-m", "harness", "run", "--model", _serve_spec(server),
               "--suite", "smoke", "--limit", "8", "--quiet", "--db", str(db)]
    with err.open("w") as sink:
        proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=sink)
    try:
        server_pid = _server_pid(err)
        deadline = time.monotonic() + 300
        while len(stored_request_keys(db)) < 4:  # the first batch is stored
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.1)
        os.killpg(server_pid, signal.SIGKILL)  # the server crashes mid-run
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    message = err.read_text()
    assert proc.returncode == 1, message
    assert "killed by SIGKILL during the run" in message and "rerun the same command" in message
    stored_at_kill = stored_request_keys(db)
    assert 4 <= len(stored_at_kill) < 8
    with Store(db) as store:
        run = store.list_runs()[0]
        assert run.status == "failed"
        assert {e.kind.value for e in store.latest_errors(run.id).values()} <= {"connection"}
    first_trace = trace.read_text().split()

    rerun = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=600, check=False)
    assert rerun.returncode == 0, rerun.stderr
    second_pid = int(re.search(r"\(pid (\d+)\)", rerun.stderr).group(1))  # type: ignore[union-attr]
    assert second_pid != server_pid and _group_gone(second_pid) and _group_gone(server_pid)
    second_trace = trace.read_text().split()[len(first_trace):]
    assert not set(second_trace) & stored_at_kill, "a stored request was generated again"
    assert len(second_trace) == 8 - len(stored_at_kill)
    assert re.search(r"errors 0", rerun.stdout)
    with Store(db) as store:
        assert store.get_run(run.id).status == "completed"
        assert len(stored_request_keys(db)) == 8


@pytest.mark.slow
@_servers
def test_ctrl_c_stops_the_server(server: str, tmp_path: Path) -> None:
    db, err, trace = tmp_path / "c.db", tmp_path / "stderr.txt", tmp_path / "trace.txt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           TRACE_ENV: str(trace)}
    # long answers: the run cannot end on its own in the moments before Ctrl-C (on a
    # loaded machine a short run once finished while the test slept, and exited 0)
    with err.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "run", "--model", _serve_spec(server), "--suite",
             "smoke", "--max-tokens", "1000", "--quiet", "--db", str(db)],
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=sink)
    try:
        server_pid = _server_pid(err)
        deadline = time.monotonic() + 120
        while not (trace.exists() and trace.read_text().strip()):  # requests are in flight
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, "no request was sent"
            time.sleep(0.1)
        time.sleep(0.5)
        assert proc.poll() is None, err.read_text()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.read_text()
    assert "rerun the same command to resume" in err.read_text()
    assert _group_gone(server_pid)
    with Store(db) as store:
        assert store.list_runs()[0].status == "interrupted"
