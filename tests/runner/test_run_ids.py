"""Run ids are what users hold on to (databases, CI gates, links): they must not move.

The values were computed on main before the layout change (commit bb610b3) and are
pinned here: a refactor that changes a suite's hash, a model's identity or the run
id formula fails this test instead of silently turning stored answers into new runs.
"""

from __future__ import annotations

import pytest

from harness.runner import plan_run

PINNED = [
    ("smoke", "smollm2-135m", None, 0, "smollm2-135m", "7972c0522f2b"),
    # batch_size is speed only: left out of the identity
    ("smoke", "smollm2-135m?dtype=bfloat16&batch_size=4", None, 0, "smollm2-135m?dtype=bfloat16",
     "0039df761dcd"),
    ("smoke", "vllm:smollm2-135m?enforce_eager=true&max_num_seqs=8", None, 0,
     "vllm:smollm2-135m?enforce_eager=true", "9b2ab5615db4"),
    ("smoke", "openai:http://127.0.0.1:8000/v1@m?endpoint=chat&concurrency=4", None, 0,
     "openai:http://127.0.0.1:8000/v1@m?endpoint=chat", "166ee8c6a12e"),
    ("smoke-mc", "smollm2-135m", 10, 3, "smollm2-135m", "e6387a587bd7"),
]


@pytest.mark.parametrize(("suite", "model", "limit", "seed", "identity", "run_id"), PINNED)
def test_run_ids_and_identities_are_pinned(suite: str, model: str, limit: int | None, seed: int,
                                           identity: str, run_id: str) -> None:
    plan = plan_run(suite, model, limit=limit, seed=seed)
    assert plan.model.identity == identity
    assert plan.run_id == run_id
