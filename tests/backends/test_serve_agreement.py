"""The openai backend against a real ``transformers serve`` of the embedded model.

Same weights, same suite, two paths: transformers in-process (``smollm2-135m``)
and the server over HTTP (``openai:...@<model dir>``). Greedy decoding should
give the same text item by item; when it does not, the difference is in how a
path builds the prompt (chat template, special tokens) or generates (default
max tokens, sampling, stop handling), which is exactly what this test is for.
``pytest -s`` prints the agreement figure.

The server ignores ``logprobs``/``echo``, so a loglikelihood suite through it
must end as a finished run whose every item is an ``unsupported`` error, with
nothing scored, never as made-up numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import ScriptedBackend, ServeProcess, serve_available, start_serve, stop

from harness.backends import load_backend
from harness.backends.base import Backend
from harness.backends.embedded import converted_model_dir
from harness.runner import RunOutcome, execute, plan_run
from harness.store import Store
from harness.types import ErrorKind

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not serve_available(),
                       reason="transformers serve needs the serving extra (fastapi, uvicorn)"),
]

MIN_AGREEMENT = 0.95
# the server answers one request at a time, so a deep queue only turns into
# client-side timeouts on a slow machine; 2 in flight keeps it busy
SERVED_OPTIONS = {"concurrency": 2, "timeout": 600, "backoff": 0.1}


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the in-process model on one CPU thread, then restore the setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One server for the module; killed (whole process group) however the tests end."""
    log = tmp_path_factory.mktemp("serve") / "transformers-serve.log"
    # one thread: the server answers one request at a time anyway, and on a small
    # shared machine two threads that wait for each other at every op stall for
    # whole scheduler slices whenever anything else runs (several times slower)
    server = start_serve(converted_model_dir(), log, threads=1)
    try:
        yield server
    finally:
        stop(server)


def _texts(store: Store, run_id: str) -> dict[str, tuple[str, ...]]:
    samples = store.run_samples(run_id)
    answers = store.completions(s.request_key for s in samples)
    return {s.sample.id: answers[s.request_key].texts for s in samples
            if s.request_key in answers}


def _responses(server: ServeProcess, path: str) -> dict[int, int]:
    """HTTP statuses the server logged for POSTs to ``path``, counted."""
    found: dict[int, int] = {}
    for status in re.findall(rf'"POST {re.escape(path)} HTTP/1\.1" (\d+)', server.log_tail(10**7)):
        found[int(status)] = found.get(int(status), 0) + 1
    return found


def test_greedy_texts_agree_with_in_process(served: ServeProcess, embedded_backend: Backend,
                                            tmp_path: Path) -> None:
    local_plan = plan_run("smoke", "smollm2-135m")
    served_plan = plan_run("smoke", served.spec(**SERVED_OPTIONS))
    assert local_plan.run_id != served_plan.run_id  # two models, two runs
    before = _responses(served, "/v1/chat/completions")
    with Store(tmp_path / "agreement.db") as store:
        with one_torch_thread():  # the server runs on one thread too; see `served`
            # lent, not handed over: the runner's close must not unload the session's model
            lent = ScriptedBackend(inner=embedded_backend, batch_size=embedded_backend.batch_size)
            local: RunOutcome = execute(store, local_plan, lambda: lent)
        remote = execute(store, served_plan, lambda: load_backend(served_plan.model))
        assert (local.generated, local.errors) == (24, 0)
        assert (remote.generated, remote.errors) == (24, 0), store.latest_errors(remote.run_id)
        ours, theirs = _texts(store, local_plan.run_id), _texts(store, served_plan.run_id)
    assert sorted(ours) == sorted(theirs) and len(ours) == 24
    same = [k for k in ours if ours[k] == theirs[k]]
    print(f"\nagreement {len(same)}/{len(ours)} = {100 * len(same) / len(ours):.1f}% "
          f"(smoke, greedy, in-process vs transformers serve)")
    for key in sorted(set(ours) - set(same)):
        print(f"  {key}: in-process {ours[key]!r} | served {theirs[key]!r}")
    assert len(same) / len(ours) >= MIN_AGREEMENT
    # the answers are not all empty or identical: agreement means something
    assert len(set(ours.values())) >= 12
    # every request reached the server once and came back 200 (no retries were needed)
    after = _responses(served, "/v1/chat/completions")
    assert {k: v - before.get(k, 0) for k, v in after.items()} == {200: 24}


def test_loglikelihood_through_serve_is_unsupported(served: ServeProcess,
                                                    tmp_path: Path) -> None:
    plan = plan_run("smoke-mc", served.spec(**SERVED_OPTIONS))
    before = _responses(served, "/v1/completions")
    with Store(tmp_path / "mc.db") as store:
        outcome = execute(store, plan, lambda: load_backend(plan.model))
        errors = store.latest_errors(plan.run_id)
        answers = store.completions(r.key for _, r in plan.items)
        status = store.get_run(plan.run_id).status
        stored = store.metric_summaries(plan.run_id)
    assert (outcome.generated, outcome.errors) == (24, 24)
    assert status == "completed_with_errors"
    assert answers == {}  # no number was made up
    assert len(errors) == 24
    assert {e.kind for e in errors.values()} == {ErrorKind.UNSUPPORTED}
    assert all("no logprobs" in e.message and e.attempts == 1 for e in errors.values())
    # nothing scored, everything counted as an error, in the outcome and in the database;
    # a mean over no samples is no number (NaN or NULL), never 0
    for summaries in (outcome.summaries, stored):
        assert {(m.metric, m.n, m.n_errors) for m in summaries} == {
            ("accuracy", 0, 24), ("acc_norm", 0, 24)}
        assert all(m.value is None or math.isnan(m.value) for m in summaries)
    # one request per choice (4 per item), each answered 200: the server was asked
    # something it accepts (max_tokens=1), it just has no logprobs to give
    after = _responses(served, "/v1/completions")
    assert after.get(200, 0) - before.get(200, 0) == 96
    assert set(after) == {200}


def test_streamed_answers_equal_plain_ones_and_record_time_to_first_token(
        served: ServeProcess, tmp_path: Path) -> None:
    plain_plan = plan_run("smoke", served.spec(**SERVED_OPTIONS), limit=6)
    streamed_plan = plan_run("smoke", served.spec(stream=1, **SERVED_OPTIONS), limit=6)
    assert streamed_plan.run_id == plain_plan.run_id  # streaming changes speed, not answers
    answers = {}
    for name, plan in (("plain", plain_plan), ("streamed", streamed_plan)):
        with Store(tmp_path / f"{name}.db") as store:
            outcome = execute(store, plan, lambda plan=plan: load_backend(plan.model))
            assert (outcome.generated, outcome.errors) == (6, 0)
            answers[name] = store.completions(r.key for _, r in plan.items)
    assert {k: c.texts for k, c in answers["streamed"].items()} == \
        {k: c.texts for k, c in answers["plain"].items()}
    for completion in answers["streamed"].values():
        assert completion.ttft_s is not None and 0 < completion.ttft_s <= completion.latency_s
        assert completion.output_tokens > 0  # usage came with the last chunk
    assert all(c.ttft_s is None for c in answers["plain"].values())
