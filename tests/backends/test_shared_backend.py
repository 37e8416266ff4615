"""SharedBackend: one loaded backend serves several runs and is closed once."""

from __future__ import annotations

from pathlib import Path

from helpers import ScriptedBackend

from harness.backends.base import SharedBackend
from harness.runner import execute, plan_run
from harness.store import Store


def _counted(model_id: str, loads: list[ScriptedBackend]) -> ScriptedBackend:
    loads.append(ScriptedBackend(model_id))
    return loads[-1]


def test_one_load_for_several_runs_and_one_close(tmp_path: Path) -> None:
    plans = [plan_run("smoke", "smollm2-135m", limit=3),
             plan_run("smoke-mc", "smollm2-135m", limit=3)]
    loads: list[ScriptedBackend] = []
    shared = SharedBackend(lambda: _counted(plans[0].model.identity, loads))
    with Store(tmp_path / "s.db") as store:
        outcomes = [execute(store, plan, lambda: shared) for plan in plans]
    assert [o.generated for o in outcomes] == [3, 3] and len(loads) == 1
    inner = shared.inner
    assert inner is loads[0] and loads[0].closed == 0  # execute's close is deferred
    shared.close_shared()
    shared.close_shared()
    assert loads[0].closed == 1


def test_nothing_to_generate_loads_nothing(tmp_path: Path) -> None:
    plan = plan_run("smoke", "smollm2-135m", limit=2)
    loads: list[ScriptedBackend] = []
    with Store(tmp_path / "s.db") as store:
        execute(store, plan, lambda: SharedBackend(ScriptedBackend(plan.model.identity)))
        lazy = SharedBackend(lambda: _counted(plan.model.identity, loads))
        execute(store, plan, lambda: lazy)
    lazy.close_shared()
    assert loads == []
