"""SharedBackend: one loaded backend serves several runs and is closed once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.backends.base import Backend, SharedBackend
from harness.runner import execute, plan_run
from harness.store import Store
from harness.types import Completion, Request


class Counting(Backend):
    """Answers every request with its own key; counts loads and closes."""

    loads = 0

    def __init__(self, model_id: str) -> None:
        Counting.loads += 1
        self.model_id, self.closed = model_id, 0

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return [Completion(texts=(r.key[:4],)) for r in requests]

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        return [Completion(loglikelihoods=tuple(-float(i) for i, _ in enumerate(r.continuations)),
                           greedy_matches=tuple(False for _ in r.continuations),
                           continuation_tokens=tuple(1 for _ in r.continuations))
                for r in requests]

    def close(self) -> None:
        self.closed += 1


def test_one_load_for_several_runs_and_one_close(tmp_path: Path) -> None:
    plans = [plan_run("smoke", "smollm2-135m", limit=3),
             plan_run("smoke-mc", "smollm2-135m", limit=3)]
    Counting.loads = 0
    shared = SharedBackend(lambda: Counting(plans[0].model.identity))
    with Store(tmp_path / "s.db") as store:
        outcomes = [execute(store, plan, lambda: shared) for plan in plans]
    assert [o.generated for o in outcomes] == [3, 3] and Counting.loads == 1
    inner = shared.inner
    assert isinstance(inner, Counting) and inner.closed == 0  # execute's close is deferred
    shared.close_shared()
    shared.close_shared()
    assert inner.closed == 1


def test_nothing_to_generate_loads_nothing(tmp_path: Path) -> None:
    plan = plan_run("smoke", "smollm2-135m", limit=2)
    Counting.loads = 0
    with Store(tmp_path / "s.db") as store:
        execute(store, plan, lambda: SharedBackend(Counting(plan.model.identity)))
        Counting.loads = 0
        lazy = SharedBackend(lambda: Counting(plan.model.identity))
        execute(store, plan, lambda: lazy)
    lazy.close_shared()
    assert Counting.loads == 0
