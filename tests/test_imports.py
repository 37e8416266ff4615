"""Every module of the product imports first, alone, in a fresh interpreter: no import
order is load-bearing (a cycle shows up as a partially initialised module)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "review_ui", "leaderboards", "tasks")


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__main__":
                continue  # runs the command when imported
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_imports_alone() -> None:
    """One fresh interpreter per module, a few at a time."""
    failed: dict[str, list[str]] = {}
    names = _modules()
    for start in range(0, len(names), 6):
        procs = {name: subprocess.Popen([sys.executable, "-c", f"import {name}"], cwd=REPO,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for name in names[start:start + 6]}
        for name, proc in procs.items():
            _, stderr = proc.communicate(timeout=300)
            if proc.returncode != 0:
                failed[name] = stderr.decode(errors="replace").strip().splitlines()[-1:]
    assert not failed, failed


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_are_found(package: str) -> None:
    assert any(m.startswith(package) for m in _modules())
