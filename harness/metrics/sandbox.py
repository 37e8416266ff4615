"""Runs untrusted programs (model-written code) so that they cannot hurt the harness.

Each program runs in its own process tree with a wall-clock timeout, resource
limits (address space, processes, file size, CPU time), a fresh temporary
directory as its working and home directory, and a minimal environment. How
much more it gets depends on what the machine allows, probed once
(``detect_isolation``); docs/code_execution.md says what each level does and
does not isolate:

- ``separate_user`` (the harness runs as root): the program runs as an
  unprivileged user of its own (one uid per parallel slot), so
  ``RLIMIT_NPROC`` bounds a fork bomb and it cannot write or delete files it
  does not own; inside fresh network and PID namespaces, so it has no network
  and everything it starts dies with it.
- ``user_namespace`` (not root, but unprivileged user namespaces work): fresh
  user, network and PID namespaces; files stay writable with the caller's rights.
- ``process_group`` (neither): a new session that is killed as a whole; limits only.

Programs run in parallel from a thread pool; each thread only waits on its
child, so the harness's own memory and processes are never at the program's mercy.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

IsolationLevel = Literal["separate_user", "user_namespace", "process_group"]
Status = Literal["passed", "failed", "timeout"]

# uids for sandboxed programs when running as root: one per parallel slot, so one
# program's fork bomb exhausts only its own slot's process limit
SANDBOX_UID_BASE = int(os.environ.get("EVALARENA_SANDBOX_UID", "61000"))
_OUTPUT_TAIL = 4000  # characters of output kept for the audit trail
# the program runs inside this wrapper: any exception, SystemExit included, is a failure
_WRAPPER = """\
import os, sys, traceback
source = open("program.py", encoding="utf-8").read()
try:
    exec(compile(source, "program.py", "exec"), {"__name__": "__main__"})
except BaseException:
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)
sys.stdout.flush()
os._exit(0)
"""


@dataclass(frozen=True)
class Limits:
    """What one program may use. Memory is address space, per process."""

    timeout_s: float = 10.0
    memory_bytes: int = 1 << 30
    max_processes: int = 32  # enforced for a separate user only (see module docstring)
    max_file_bytes: int = 16 << 20  # largest file it may write (also caps its output)


@dataclass(frozen=True)
class Isolation:
    level: IsolationLevel
    network: bool  # no network (fresh network namespace)
    pid_namespace: bool  # everything it starts dies with it
    separate_user: bool  # cannot touch the caller's files; process limit enforced


@dataclass(frozen=True)
class ExecutionResult:
    status: Status
    returncode: int | None
    output: str  # the tail of stdout and stderr together
    duration_s: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@lru_cache(maxsize=1)
def detect_isolation() -> Isolation:
    """The strongest level that works here (tried with a trivial program)."""
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if sys.platform == "linux" and unshare and setpriv and os.geteuid() == 0:
        if _probe(_command("separate_user", Limits(), SANDBOX_UID_BASE)):
            return Isolation("separate_user", True, True, True)
    if sys.platform == "linux" and unshare:
        if _probe(_command("user_namespace", Limits(), 0)):
            return Isolation("user_namespace", True, True, False)
    return Isolation("process_group", False, False, False)


def _probe(command: list[str]) -> bool:
    try:
        done = subprocess.run([*command[:-1], "-c", "pass"], capture_output=True, timeout=30,
                              check=False, cwd=tempfile.gettempdir())
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _command(level: IsolationLevel, limits: Limits, uid: int) -> list[str]:
    """The argv that runs ``wrapper.py`` in the current directory at ``level``."""
    python = [sys.executable, "-I", "-B"]  # isolated: no PYTHON* variables, no user site
    rlimits = ["prlimit", f"--as={limits.memory_bytes}", f"--fsize={limits.max_file_bytes}",
               f"--cpu={int(limits.timeout_s) + 1}", "--core=0"]
    if level == "separate_user":
        caps = "-all,+dac_read_search"  # may read (the interpreter may live in /root), not write
        return [
            "unshare", "--net", "--pid", "--fork", "--kill-child",
            *rlimits, f"--nproc={limits.max_processes}",
            "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}",
            "--no-new-privs", "--pdeathsig=SIGKILL", *python, "wrapper.py",
        ]
    if level == "user_namespace":
        return ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork",
                "--kill-child", *rlimits, *python, "wrapper.py"]
    return [*rlimits, *python, "wrapper.py"]


class Sandbox:
    """Runs programs in parallel, one isolated process tree each."""

    def __init__(self, limits: Limits | None = None, workers: int | None = None,
                 isolation: Isolation | None = None) -> None:
        self.limits = limits or Limits()
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.isolation = isolation or detect_isolation()
        self._slots: queue.SimpleQueue[int] = queue.SimpleQueue()  # a free uid per worker
        for slot in range(self.workers):
            self._slots.put(slot)

    def run(self, source: str) -> ExecutionResult:
        slot = self._slots.get()  # waits while every slot is busy
        try:
            return self._run_in_slot(source, slot)
        finally:
            self._slots.put(slot)

    def run_many(self, sources: Sequence[str]) -> list[ExecutionResult]:
        if len(sources) <= 1:
            return [self.run(s) for s in sources]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(sources))) as pool:
            return list(pool.map(self.run, sources))

    def _run_in_slot(self, source: str, slot: int) -> ExecutionResult:
        uid = SANDBOX_UID_BASE + slot
        workdir = Path(tempfile.mkdtemp(prefix="evalarena-sandbox-"))
        try:
            (workdir / "program.py").write_text(source, encoding="utf-8")
            (workdir / "wrapper.py").write_text(_WRAPPER, encoding="utf-8")
            if self.isolation.separate_user:
                for path in (workdir, workdir / "program.py", workdir / "wrapper.py"):
                    os.chown(path, uid, uid)
            env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(workdir),
                   "LANG": "C.UTF-8"}
            command = _command(self.isolation.level, self.limits, uid)
            return _execute(command, workdir, env, self.limits.timeout_s)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _execute(command: list[str], workdir: Path, env: dict[str, str],
             timeout_s: float) -> ExecutionResult:
    started = time.monotonic()
    # output goes to an unlinked file, not a pipe: a program that prints forever is
    # stopped by its file-size limit instead of filling the harness's memory
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            returncode: int | None = process.wait(timeout=timeout_s)
            status: Status = "passed" if returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            returncode, status = None, "timeout"
        finally:
            _kill_tree(process)
        output.seek(0, os.SEEK_END)
        output.seek(max(0, output.tell() - _OUTPUT_TAIL))
        text = output.read().decode("utf-8", errors="replace")
    return ExecutionResult(status, returncode, text, time.monotonic() - started)


def _kill_tree(process: subprocess.Popen[bytes]) -> None:
    """Kill the program's session; with a PID namespace, killing its init kills all."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.kill()
    process.wait()
