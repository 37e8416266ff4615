"""Runs untrusted programs (model-written code) so that they cannot hurt the harness.

Each program runs in its own process tree with a wall-clock timeout, resource
limits (address space, processes, file size, CPU time), a fresh temporary
directory as its working and home directory, and a minimal environment. How
much more it gets depends on what the machine allows, probed once
(``detect_isolation``); docs/code_execution.md says what each level does and
does not isolate:

- ``bubblewrap`` (``bwrap`` installed and able to make namespaces): a private mount
  namespace in which the system directories and the interpreter are read-only,
  /tmp, /proc and /dev are the sandbox's own, and nothing else exists (no home,
  no databases, no checkout); fresh PID, network, IPC and UTS namespaces; an empty
  environment; as root, an unprivileged uid of its own (process limit enforced).
- ``separate_user`` (the harness runs as root): the program runs as an
  unprivileged user of its own (one uid per parallel slot), so
  ``RLIMIT_NPROC`` bounds a fork bomb and it cannot write or delete files it
  does not own; inside fresh network and PID namespaces, so it has no network
  and everything it starts dies with it. It can read every file.
- ``user_namespace`` (not root, but unprivileged user namespaces work): fresh
  user, network and PID namespaces; files stay writable with the caller's rights.
- ``process_group`` (neither): a new session that is killed as a whole; limits only.

Only ``bubblewrap`` counts as full isolation: a weaker level logs a warning naming
what it leaves open, and with ``EVALARENA_SANDBOX=strict`` building a sandbox
below full isolation raises ``SandboxUnavailableError`` instead.

Programs run in parallel from a thread pool; each thread only waits on its
child, so the harness's own memory and processes are never at the program's mercy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from harness.errors import EvalarenaError

IsolationLevel = Literal["bubblewrap", "separate_user", "user_namespace", "process_group"]
Status = Literal["passed", "failed", "timeout"]

log = logging.getLogger(__name__)

# uids for sandboxed programs when running as root: one per parallel slot, so one
# program's fork bomb exhausts only its own slot's process limit
SANDBOX_UID_BASE = int(os.environ.get("EVALARENA_SANDBOX_UID", "61000"))
POLICY_ENV = "EVALARENA_SANDBOX"  # "strict": refuse to run code without full isolation
BWRAP_ENV = "EVALARENA_BWRAP"  # the bubblewrap executable (default: bwrap on PATH)
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
# what each level below full isolation leaves open (docs/code_execution.md)
_LEFT_OPEN: dict[IsolationLevel, str] = {
    "separate_user": "the program can read every file on the machine (databases, tokens) "
                     "and write world-writable places such as /tmp",
    "user_namespace": "the program can read, change and delete the caller's files",
    "process_group": "the program has the network and the caller's files, and a child "
                     "that calls setsid() escapes the kill",
}


class SandboxUnavailableError(EvalarenaError):
    """Strict mode, and this machine cannot isolate generated code fully."""

    exit_code = 2


@dataclass(frozen=True)
class Limits:
    """What one program may use. Memory is address space, per process."""

    timeout_s: float = 10.0
    memory_bytes: int = 1 << 30
    max_processes: int = 32  # enforced with a separate uid only (see module docstring)
    max_file_bytes: int = 16 << 20  # largest file it may write (also caps its output)


@dataclass(frozen=True)
class Isolation:
    level: IsolationLevel
    network: bool  # no network (fresh network namespace)
    pid_namespace: bool  # everything it starts dies with it
    separate_user: bool  # cannot touch the caller's files; process limit enforced
    filesystem: bool = False  # private mount namespace: no home, databases, host /tmp
    fallback: str | None = None  # why no stronger level is in use
    bwrap: str | None = None  # the bubblewrap executable, at the bubblewrap level

    @property
    def full(self) -> bool:
        return self.level == "bubblewrap"

    def record(self) -> dict[str, Any]:
        """What the run manifest stores (and `show` prints)."""
        return {**asdict(self), "full": self.full, "strict": strict_policy()}

    def warning(self) -> str | None:
        if self.full:
            return None
        return (f"generated code runs at sandbox level '{self.level}', not full isolation: "
                f"{_LEFT_OPEN[self.level]}; because {self.fallback}. Install bubblewrap "
                f"(apt-get install bubblewrap) or set {POLICY_ENV}=strict to refuse "
                "(docs/code_execution.md)")


@dataclass(frozen=True)
class ExecutionResult:
    status: Status
    returncode: int | None
    output: str  # the tail of stdout and stderr together
    duration_s: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def strict_policy() -> bool:
    return os.environ.get(POLICY_ENV, "").strip().lower() == "strict"


def require_policy(isolation: Isolation) -> None:
    """Raise in strict mode below full isolation; otherwise warn (once per level)."""
    if isolation.full:
        return
    if strict_policy():
        raise SandboxUnavailableError(
            f"{POLICY_ENV}=strict: generated code needs the bubblewrap sandbox, but "
            f"{isolation.fallback} (best here: '{isolation.level}')")
    _warn_once(isolation.warning() or "")


@lru_cache(maxsize=8)
def _warn_once(message: str) -> None:
    log.warning(message)


@lru_cache(maxsize=1)
def detect_isolation() -> Isolation:
    """The strongest level that works here (tried with a trivial program)."""
    root = os.geteuid() == 0
    bwrap = _bwrap()
    if sys.platform != "linux":
        return Isolation("process_group", False, False, False, fallback="this is not Linux")
    if bwrap is None:
        why = "bubblewrap (bwrap) is not installed"
    else:
        problem = _probe("bubblewrap", bwrap)
        if problem is None:
            return Isolation("bubblewrap", True, True, root, filesystem=True, bwrap=bwrap)
        why = f"bubblewrap cannot make its namespaces here ({problem})"
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if unshare and setpriv and root and _probe("separate_user") is None:
        return Isolation("separate_user", True, True, True, fallback=why)
    if unshare and _probe("user_namespace") is None:
        return Isolation("user_namespace", True, True, False, fallback=why)
    return Isolation("process_group", False, False, False,
                     fallback=why + "; unshare cannot make namespaces either")


def _probe(level: IsolationLevel, bwrap: str | None = None) -> str | None:
    """None if a trivial program runs at ``level``, else the first line of what failed."""
    workdir = Path(tempfile.mkdtemp(prefix="evalarena-sandbox-"))
    try:
        (workdir / "wrapper.py").write_text("pass\n", encoding="utf-8")
        if level in ("bubblewrap", "separate_user") and os.geteuid() == 0:
            os.chown(workdir, SANDBOX_UID_BASE, SANDBOX_UID_BASE)
            os.chown(workdir / "wrapper.py", SANDBOX_UID_BASE, SANDBOX_UID_BASE)
        command = _command(level, Limits(), SANDBOX_UID_BASE, workdir, bwrap)
        done = subprocess.run(command, capture_output=True, timeout=30, check=False,
                              cwd=workdir, env=_environment(workdir), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).decode("utf-8", "replace").strip().splitlines()
    return lines[0] if lines else f"exit status {done.returncode}"


def _environment(workdir: Path) -> dict[str, str]:
    """All the program's environment: nothing of the harness's (API keys stay out)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(workdir),
           "LANG": "C.UTF-8"}
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):  # libpython beside the interpreter
        env["LD_LIBRARY_PATH"] = str(sysconfig.get_config_var("LIBDIR"))
    return env


def _command(level: IsolationLevel, limits: Limits, uid: int, workdir: Path,
             bwrap: str | None = None) -> list[str]:
    """The argv that runs ``wrapper.py`` in ``workdir`` at ``level``."""
    python = [sys.executable, "-I", "-B"]  # isolated: no PYTHON* variables, no user site
    rlimits = ["prlimit", f"--as={limits.memory_bytes}", f"--fsize={limits.max_file_bytes}",
               f"--cpu={int(limits.timeout_s) + 1}", "--core=0"]
    drop_to = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
               "--no-new-privs", "--pdeathsig=SIGKILL"]
    if level == "bubblewrap":
        if os.geteuid() == 0:  # bwrap without a user namespace; then an unprivileged uid
            inner = [*rlimits, f"--nproc={limits.max_processes}", *drop_to,
                     "--inh-caps=-all", "--bounding-set=-all"]
        else:  # the caller's uid inside a user namespace: NPROC would count the caller
            inner = rlimits
        return [*_bubblewrap(bwrap or "bwrap", workdir), "--", *inner, *python, "wrapper.py"]
    if level == "separate_user":
        caps = "-all,+dac_read_search"  # may read (the interpreter may live in /root), not write
        return [
            "unshare", "--net", "--pid", "--fork", "--kill-child",
            *rlimits, f"--nproc={limits.max_processes}", *drop_to,
            f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}",
            *python, "wrapper.py",
        ]
    if level == "user_namespace":
        return ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork",
                "--kill-child", *rlimits, *python, "wrapper.py"]
    return [*rlimits, *python, "wrapper.py"]


def _bubblewrap(bwrap: str, workdir: Path) -> list[str]:
    """bwrap's options: a root of its own holding only the system directories and the
    interpreter (read-only), fresh /proc, /dev and /tmp, and the program's directory."""
    argv = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv"]
    if os.geteuid() != 0:
        argv.append("--unshare-user")
    for name, value in _environment(workdir).items():
        argv += ["--setenv", name, value]
    # the sandbox's own /proc, /dev and /tmp first: a tree bound later under one of them
    # (a checkout in /tmp with its venv) stays visible instead of being covered
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm",
             "--perms", "1777", "--tmpfs", "/tmp", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):  # merged /usr: keep the link, not a second mount
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    argv += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    made = {"/tmp", "/dev", "/dev/shm", "/proc", "/usr", "/etc"}  # exist, modes set above
    for tree in _interpreter_trees():
        # bwrap would copy the modes of the host's parents (/root is 0700), hiding the
        # tree from the sandbox's uid: make them searchable first
        for parent in reversed(Path(tree).parents[:-1]):
            if str(parent) not in made:
                made.add(str(parent))
                argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", tree, tree]
    argv += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
    return argv


@lru_cache(maxsize=1)
def _interpreter_trees() -> tuple[str, ...]:
    """Directories the interpreter needs outside /usr: its installation and the virtual
    environment (read-only: installed packages import but cannot be changed). The venv's
    bin/python is a link into the installation, so both must exist inside."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}
    real = {os.path.realpath(path) for path in paths}
    return tuple(sorted(path for path in real if path != "/usr" and not path.startswith("/usr/")))


def _bwrap() -> str | None:
    return shutil.which(os.environ.get(BWRAP_ENV) or "bwrap")


class Sandbox:
    """Runs programs in parallel, one isolated process tree each."""

    def __init__(self, limits: Limits | None = None, workers: int | None = None,
                 isolation: Isolation | None = None) -> None:
        self.limits = limits or Limits()
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.isolation = isolation or detect_isolation()
        require_policy(self.isolation)  # strict: refuse; otherwise warn below full isolation
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
            command = _command(self.isolation.level, self.limits, uid, workdir,
                               self.isolation.bwrap)
            return _execute(command, workdir, _environment(workdir), self.limits.timeout_s)
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
