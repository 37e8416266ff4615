"""Every module of the product imports first, alone: no import order is load-bearing
(a cycle shows up as a partially initialised module).

Each module is imported in its own process that has imported no module of ours.
Starting a fresh interpreter per module would spend most of a minute re-importing
torch, gradio and pandas ~100 times, so one interpreter imports the third-party
packages our modules import at their top, then forks one child per module: every
child starts with none of harness, review_ui, leaderboards or tasks loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "review_ui", "leaderboards", "tasks")
CHILDREN = r"""
import importlib, json, os, sys
ours = set(sys.argv[1].split(","))
for spec in filter(None, sys.argv[2].split(",")):
    name, _, attributes = spec.partition(":")
    try:
        found = importlib.import_module(name)
        for attribute in filter(None, attributes.split("+")):
            getattr(found, attribute, None)  # lazy modules (transformers) load on access
    except Exception:
        pass  # a module that needs it will report the failure itself
assert not [m for m in sys.modules if m.split(".")[0] in ours], "ours imported by a dependency"
running = {}  # pid -> (module, read end of its pipe); two children at a time
def reap():
    pid, _ = os.wait()
    module, read = running.pop(pid)
    with os.fdopen(read, "rb") as pipe:  # the child wrote at most 4 kB: never blocks
        message = pipe.read().decode()
    print(json.dumps({"module": module, "error": message}), flush=True)
for module in sys.stdin.read().split():
    if len(running) == 2:
        reap()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            message = ""
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}"
        os.write(write, message.encode()[:4000])
        os._exit(0)
    os.close(write)
    running[pid] = (module, read)
while running:
    reap()
"""


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__main__":
                continue  # runs the command when imported
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _third_party() -> list[str]:
    """What our modules import at module level from packages that are neither ours nor
    stdlib, as ``module:name+name`` (the names, for packages that load lazily)."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        found.setdefault(alias.name, set())
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.setdefault(node.module, set()).update(a.name for a in node.names)
    skip = set(PACKAGES) | set(sys.stdlib_module_names) | {"__future__"}
    return [f"{module}:{'+'.join(sorted(names))}" for module, names in sorted(found.items())
            if module.split(".")[0] not in skip]


@pytest.mark.slow  # ~100 processes, 30 s: `make lint` runs it too, `make test-fast` does not
def test_every_module_imports_alone() -> None:
    names = _modules()
    result = subprocess.run(
        [sys.executable, "-c", CHILDREN, ",".join(PACKAGES), ",".join(_third_party())],
        input="\n".join(names), capture_output=True, text=True, cwd=REPO, timeout=600,
        check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["module"] for r in reports) == sorted(names)  # every module was tried
    failed = {r["module"]: r["error"] for r in reports if r["error"]}
    assert not failed, failed


def test_a_cycle_would_be_caught(tmp_path: Path) -> None:
    """The check itself can fail: two modules that need each other's names."""
    (tmp_path / "cyc").mkdir()
    (tmp_path / "cyc" / "__init__.py").write_text("")
    (tmp_path / "cyc" / "a.py").write_text("from cyc.b import B\nA = 1\n")
    (tmp_path / "cyc" / "b.py").write_text("from cyc.a import A\nB = 2\n")
    result = subprocess.run([sys.executable, "-c", CHILDREN, "cyc", ""], input="cyc.a\ncyc.b",
                            capture_output=True, text=True, cwd=tmp_path, timeout=60,
                            check=False)
    errors = [json.loads(line)["error"] for line in result.stdout.splitlines()]
    assert len(errors) == 2 and all("partially initialized" in e for e in errors)


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_are_found(package: str) -> None:
    assert any(m.startswith(package) for m in _modules())
