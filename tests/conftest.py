"""Shared fixtures: real SQLite files, the real embedded model, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

# each pytest-xdist worker gets sandbox uids of its own (before harness is imported), so
# the sandbox tests' check that no program outlived its test sees only its own worker's
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
os.environ.setdefault("EVALARENA_SANDBOX_UID", str(61000 + 1000 * _WORKER))

import pytest  # noqa: E402
from fault_server import FakeServer, Responder, fake_servers  # noqa: E402
from helpers import CliRun  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")



@pytest.fixture
def cli(tmp_path: Path) -> CliRun:
    """Run the real `evalarena` command in a subprocess (the way users run it)."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "harness", *args], capture_output=True, text=True,
            env=full_env, timeout=timeout, cwd=cwd or tmp_path, check=False,
        )

    return run


@pytest.fixture
def serve() -> Iterator[Callable[[Responder], FakeServer]]:
    """Start fault-injecting OpenAI-compatible servers on demand (tests/fault_server.py)."""
    with fake_servers() as start:
        yield start


@pytest.fixture(scope="session")
def embedded_backend():  # type: ignore[no-untyped-def]
    """The embedded model, loaded once per test session."""
    from harness.backends import load_backend

    backend = load_backend("smollm2-135m")
    yield backend
    backend.close()
