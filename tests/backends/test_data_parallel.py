"""Data parallel over Ray actors gives the answers of a single replica.

Two CPU actors, each loading the embedded model through the transformers
backend, run the smoke suite (greedy) against a single in-process replica. The
runner cuts the same batches either way and each actor gets whole chunks of the
replica's batch size, so the texts and scores must be identical, not just close.
Ray start-up costs seconds, so this is one test; a second one checks that
``--data-parallel`` leaves the model identity alone (stored answers are reused
and Ray never starts).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import CliRun

from harness.backends import load_backend
from harness.backends.data_parallel import DataParallelBackend
from harness.runner import execute, plan_run
from harness.store import Store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                       reason="needs the `scale` extra (ray)"),
]


def _answers(db: Path, run_id: str) -> tuple[dict[str, tuple[str, ...]], list[float]]:
    with Store(db) as store:
        samples = store.run_samples(run_id)
        completions = store.completions(s.request_key for s in samples)
        summaries = store.metric_summaries(run_id)
    return ({k: c.texts for k, c in completions.items()},
            [s.value for s in summaries])


def test_two_ray_replicas_match_one(tmp_path: Path, embedded_backend: object,
                                    monkeypatch: pytest.MonkeyPatch, cli: CliRun) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the actors inherit it: same kernels as here
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    single, parallel = tmp_path / "single.db", tmp_path / "dp.db"
    plan = plan_run("smoke", "smollm2-135m")
    with Store(single) as store:
        one = execute(store, plan, lambda: embedded_backend)  # type: ignore[arg-type,return-value]
    dp_plan = plan_run("smoke", "smollm2-135m?data_parallel=2")
    assert dp_plan.run_id == plan.run_id  # speed option: same run, same request keys
    backends: list[DataParallelBackend] = []

    def start() -> DataParallelBackend:
        backend = load_backend(dp_plan.model)
        assert isinstance(backend, DataParallelBackend)
        backends.append(backend)
        return backend

    with Store(parallel) as store:
        two = execute(store, dp_plan, start)
    assert one.errors == two.errors == 0 and one.generated == two.generated == 24
    assert backends[0].actors == []  # closed: actors killed, Ray shut down
    done = backends[0].chunks_done
    assert sum(done) == 3 and all(done), done  # 24 requests in chunks of 8, both replicas used
    texts_one, scores_one = _answers(single, plan.run_id)
    texts_two, scores_two = _answers(parallel, plan.run_id)
    assert texts_two == texts_one and len(texts_one) == 24
    assert scores_two == scores_one

    # --data-parallel on the CLI keeps the identity: everything is reused, Ray never starts
    result = cli("run", "--model", "smollm2-135m", "--suite", "smoke", "--data-parallel", "2",
                 "--db", str(parallel), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "generated 0, reused 24" in result.stdout
