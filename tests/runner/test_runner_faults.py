"""Whole runs (plan_run + execute + scoring) against a misbehaving server.

The backend tests check one request at a time; these check what the runner
makes of it: transient faults are retried and leave no trace, persistent ones
end as typed errors stored in ``request_errors`` (never in ``completions``),
counted apart from the metric, and a rerun of the same run retries exactly the
errored requests and then scores them.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fault_server import Action, FakeServer, Responder, echo_answer, prompt_of

from harness.backends import load_backend
from harness.runner import RunPlan, execute, plan_run
from harness.store import Store
from harness.types import ErrorKind

# fast retries, a short timeout so a hang costs half a second, 3 attempts at most;
# concurrency 4 gives batches of 16, so the 17-item suite spans two batches
OPTIONS = "backoff=0.01&timeout=0.5&max_retries=2&concurrency=4"
GOOD = [f"q{i:02d}" for i in range(12)]
WRONG = {"q03", "q07", "q08", "q11"}  # the echo server's answer is not the target
# prompts that always fail, and how: (the server's action, the error kind, attempts made)
FAILING: dict[str, tuple[Action, ErrorKind, int]] = {
    "e500": (Action(500, {"error": {"message": "boom"}}), ErrorKind.SERVER_ERROR, 3),
    "e429": (Action(429, {"error": {"message": "slow down"}}), ErrorKind.RATE_LIMITED, 3),
    "e400": (Action(400, {"error": {"message": "bad top_p"}}), ErrorKind.BAD_REQUEST, 1),
    "hang": (Action(json={}, delay=5.0), ErrorKind.TIMEOUT, 3),
    "drop": (Action(drop=True), ErrorKind.CONNECTION, 3),
}
CHAT = "/v1/chat/completions"


def write_suite(directory: Path, prompts: list[str]) -> Path:
    """A chat suite whose target is what the echo server answers, except for WRONG."""
    rows = [{"id": p, "question": p, "answer": "nope" if p in WRONG else f"echo: {p}"}
            for p in prompts]
    (directory / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = directory / "faults.yaml"
    suite.write_text(
        "name: faults\nlicense: test data\nkind: generate\n"
        "data:\n  path: items.jsonl\n  id_field: id\n"
        'prompt:\n  user: "{{ question }}"\n'
        'target: "{{ answer }}"\n'
        "generation:\n  max_tokens: 8\n"
        "metrics: [exact_match]\n"
    )
    return suite


def plan_for(tmp_path: Path, server: FakeServer, prompts: list[str]) -> RunPlan:
    return plan_run(str(write_suite(tmp_path, prompts)), f"openai:{server.url}@m?{OPTIONS}")


def run(store: Store, plan: RunPlan) -> Any:
    return execute(store, plan, lambda: load_backend(plan.model))


def first_attempt_fails(action: Action) -> Responder:
    """Every prompt's first request gets ``action``; its retry gets the answer."""
    tried: set[str] = set()
    lock = threading.Lock()

    def respond(path: str, body: dict[str, Any], nth: int) -> Action:
        with lock:
            first = prompt_of(body) not in tried
            tried.add(prompt_of(body))
        return action if first else echo_answer(path, body)

    return respond


def error_rows(store: Store, run_id: str) -> list[dict[str, Any]]:
    return list(store.db.query(
        "SELECT request_key, kind, attempts FROM request_errors WHERE run_id = ?", [run_id]))


def prompts_seen(server: FakeServer, since: int = 0) -> list[str]:
    return sorted(prompt_of(s.body) for s in server.seen[since:])


@pytest.mark.parametrize("action", [
    Action(429, {"error": {"message": "slow down"}}),
    Action(500, {"error": {"message": "oops"}}),
    Action(503, body=b"<html>upstream down</html>"),
    Action(json={}, delay=5.0),  # hangs past the 0.5 s timeout
    Action(drop=True),
], ids=["429", "500", "503-html", "hang", "drop"])
def test_transient_faults_are_retried(serve: Callable[[Responder], FakeServer], tmp_path: Path,
                                      action: Action) -> None:
    server = serve(first_attempt_fails(action))
    plan = plan_for(tmp_path, server, GOOD)
    with Store(tmp_path / "runs.db") as store:
        outcome = run(store, plan)
        answers = store.completions(r.key for _, r in plan.items)
        assert (outcome.generated, outcome.reused, outcome.errors) == (12, 0, 0)
        assert {k: c.texts for k, c in answers.items()} == {
            r.key: (f"echo: {s.id}",) for s, r in plan.items}
        assert error_rows(store, plan.run_id) == []  # a fault that was retried away leaves none
        assert store.get_run(plan.run_id).status == "completed"
    # every prompt exactly twice: the fault, then the retry
    assert prompts_seen(server) == sorted(GOOD * 2)
    [summary] = outcome.summaries
    assert (summary.metric, summary.n, summary.n_errors) == ("exact_match", 12, 0)
    assert summary.value == pytest.approx(8 / 12)


def test_persistent_faults_are_errors_then_retried_on_rerun(
        serve: Callable[[Responder], FakeServer], tmp_path: Path) -> None:
    def picky(path: str, body: dict[str, Any], nth: int) -> Action:
        prompt = prompt_of(body)
        return FAILING[prompt][0] if prompt in FAILING else echo_answer(path, body)

    server = serve(picky)
    prompts = GOOD + list(FAILING)
    plan = plan_for(tmp_path, server, prompts)
    key_of = {s.id: r.key for s, r in plan.items}
    with Store(tmp_path / "runs.db") as store:
        first = run(store, plan)
        assert (first.generated, first.reused, first.errors) == (17, 0, 5)
        assert store.get_run(plan.run_id).status == "completed_with_errors"
        # each failing sample: one stored error of the right kind, with its attempts ...
        rows = {r["request_key"]: (r["kind"], r["attempts"])
                for r in error_rows(store, plan.run_id)}
        assert rows == {key_of[p]: (kind.value, attempts)
                        for p, (_, kind, attempts) in FAILING.items()}
        assert {k: (e.kind, e.attempts) for k, e in store.latest_errors(plan.run_id).items()} \
            == {key_of[p]: (kind, attempts) for p, (_, kind, attempts) in FAILING.items()}
        # ... and no answer; the good ones all have theirs
        assert set(store.completions(key_of.values())) == {key_of[p] for p in GOOD}
        # scored: only the answered samples; the errors are counted, not scored as wrong
        assert {s.sample_id for s in store.scores(plan.run_id)} == set(GOOD)
        [summary] = first.summaries
        assert (summary.n, summary.n_errors) == (12, 5)
        assert summary.value == pytest.approx(8 / 12)  # 8/17 if errors counted as wrong
        assert store.metric_summaries(plan.run_id) == first.summaries
        seen_first = len(server.seen)
        assert prompts_seen(server) == sorted(
            GOOD + [p for p, (_, _, attempts) in FAILING.items() for _ in range(attempts)])

        # the server recovers; the same command resumes the same run
        server.responder = echo_answer
        second = run(store, plan)
        assert prompts_seen(server, seen_first) == sorted(FAILING)  # exactly the errored ones
        assert (second.run_id, second.generated, second.reused, second.errors) == (
            plan.run_id, 5, 12, 0)
        assert store.latest_errors(plan.run_id) == {}
        assert len(error_rows(store, plan.run_id)) == 5  # the history stays
        assert set(store.completions(key_of.values())) == set(key_of.values())
        assert {s.sample_id for s in store.scores(plan.run_id)} == set(prompts)
        [summary] = second.summaries
        assert (summary.n, summary.n_errors) == (17, 0)
        assert summary.value == pytest.approx(13 / 17)
        assert store.get_run(plan.run_id).status == "completed"

        # a third run has nothing left to ask
        third = run(store, plan)
        assert (third.generated, third.reused, third.errors) == (0, 17, 0)
        assert len(server.seen) == seen_first + 5


def test_run_where_every_request_fails_still_finishes(
        serve: Callable[[Responder], FakeServer], tmp_path: Path) -> None:
    """A server that is down for the whole run: nothing to score, yet a finished
    run with every sample counted as an error, not a crash at scoring time."""
    server = serve(lambda path, body, nth: Action(503, {"error": {"message": "down"}}))
    plan = plan_for(tmp_path, server, GOOD)
    with Store(tmp_path / "runs.db") as store:
        outcome = run(store, plan)
        assert (outcome.generated, outcome.errors) == (12, 12)
        assert store.get_run(plan.run_id).status == "completed_with_errors"
        assert store.completions(r.key for _, r in plan.items) == {}
        assert {r["kind"] for r in error_rows(store, plan.run_id)} == {"server_error"}
        assert store.scores(plan.run_id) == []
        for summaries in (outcome.summaries, store.metric_summaries(plan.run_id)):
            assert [(m.metric, m.n, m.n_errors) for m in summaries] == [("exact_match", 0, 12)]
            # a mean over no samples is no number (NaN or NULL), never 0
            assert all(m.value is None or math.isnan(m.value) for m in summaries)
    assert len(server.seen) == 12 * 3
