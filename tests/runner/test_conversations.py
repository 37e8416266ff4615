"""Conversations (``prompt.turns``): each turn is a stored request holding the model's
own earlier answers; a run killed between turns resumes without generating any turn
twice; scores, judge grades and imports work per turn. MT-Bench is the shipped case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import ScriptedBackend

from harness.backends.base import Backend
from harness.errors import SuiteError
from harness.judge.grade import run_judging
from harness.judge.imports import execute_import, plan_import
from harness.judge.plan import build_slots, plan_judging, resolve_contestants
from harness.judge.prompts import resolve_template
from harness.runner import execute, plan_run
from harness.store import Store
from harness.suites.config import load_suite

MT_BENCH = Path(__file__).resolve().parents[2] / "tasks" / "mt-bench.yaml"


def _reply(request) -> str:  # type: ignore[no-untyped-def]
    """An answer that says which turn it answers: the number of user messages so far."""
    turn = sum(m.role == "user" for m in request.messages)
    return f"answer to turn {turn}: {request.messages[-1].content[:12]}"


def _by_sample(store: Store, run_id: str) -> dict[str, tuple[object, tuple[str, ...]]]:
    samples = store.run_samples(run_id)
    answers = store.completions(s.request_key for s in samples)
    return {s.sample.id: (store.get_request(s.request_key), answers[s.request_key].texts)
            for s in samples if s.request_key in answers}


def test_second_turn_carries_the_first_answer_and_resumes_without_regenerating(
        tmp_path: Path) -> None:
    plan = plan_run("mt-bench", "smollm2-135m", limit=5)
    assert [s.id.split("#")[1] for s, _ in plan.items] == ["1"] * 5
    with Store(tmp_path / "whole.db") as ref:
        whole = ScriptedBackend("smollm2-135m", reply=_reply, batch_size=8)
        reference = execute(ref, plan, lambda: whole)
        expected = _by_sample(ref, plan.run_id)
    assert len(whole.seen) == 10 and reference.generated == 10 and len(expected) == 10

    with Store(tmp_path / "killed.db") as store:
        # the first batch (turn 1, all 5 items) is stored; turn 2's first batch crashes
        first = ScriptedBackend("smollm2-135m", reply=_reply, batch_size=8, crash_after=1)
        with pytest.raises(KeyboardInterrupt):
            execute(store, plan, lambda: first)
        assert len(first.seen) == 5 and store.get_run(plan.run_id).status == "interrupted"
        stored = set(store.completed_keys(store.get_request(s.request_key).key
                                          for s in store.run_samples(plan.run_id)))
        assert len(stored) == 5

        second = ScriptedBackend("smollm2-135m", reply=_reply, batch_size=8)
        outcome = execute(store, plan, lambda: second)
        assert len(second.seen) == 5 and not set(second.seen) & stored, \
            "a stored turn was generated again"
        assert outcome.generated == 5 and outcome.reused == 5
        resumed = _by_sample(store, plan.run_id)
        assert {k: (r.key, t) for k, (r, t) in resumed.items()} == \
            {k: (r.key, t) for k, (r, t) in expected.items()}  # type: ignore[attr-defined]
        run = store.get_run(plan.run_id)
        assert run.status == "completed" and run.n_samples == 10

        for sample_id, (request, _) in resumed.items():
            item, turn = sample_id.split("#")
            roles = [m.role for m in request.messages]  # type: ignore[attr-defined]
            if turn == "1":
                assert roles == ["user"]
            else:  # the model's own first answer, then the second question
                assert roles == ["user", "assistant", "user"]
                first_answer = resumed[f"{item}#1"][1][0]
                assert request.messages[1].content == first_answer.strip()  # type: ignore
        docs = {s.sample.id: s.sample.doc for s in store.run_samples(plan.run_id)}
        assert {d["turn"] for d in docs.values()} == {1, 2}
        assert all(d["conversation"] == k.split("#")[0] for k, d in docs.items())
        # positions: each conversation's turns side by side, in suite order
        assert [s.sample.id.split("#")[1] for s in store.run_samples(plan.run_id)] == \
            ["1", "2"] * 5

        def no_backend() -> Backend:
            raise AssertionError("nothing is pending: the model must not be loaded")

        assert execute(store, plan, no_backend).generated == 0


def test_judge_grades_each_turn_with_the_conversation_and_reports_per_turn(
        tmp_path: Path) -> None:
    plan = plan_run("mt-bench", "smollm2-135m", limit=4, where={"category": ["math"]})
    with Store(tmp_path / "j.db") as store:
        execute(store, plan, lambda: ScriptedBackend("smollm2-135m", reply=_reply))
        suite = load_suite("mt-bench")
        contestants = resolve_contestants(store, "mt-bench", ["smollm2-135m"])
        assert contestants[0].docs and contestants[0].answers
        template = resolve_template("mt-bench-package", "single", MT_BENCH, "judge.single")
        judging = plan_judging(suite, "single", template, suite.config.judge,  # type: ignore
                               ["judge-model"], contestants)
        slots = {s.sample_id: s for s in build_slots(judging)}
        assert len(slots) == 8
        refs = {str(r["question_id"]): r for r in judging.references.values()}
        for sample_id, slot in slots.items():
            item, turn = sample_id.split("#")
            _system, user = slot.request.messages  # type: ignore[misc]
            answers = contestants[0].answers
            if turn == "1":
                assert "{" not in user.content and answers[sample_id] in user.content
                assert refs[item]["choices"][0]["turns"][0] in user.content
            else:  # MT-Bench's reference-guided multi-turn prompt, every slot filled
                assert "Conversation with User" in user.content and "{" not in user.content
                assert answers[f"{item}#1"] in user.content and answers[sample_id] in user.content
                for reference in refs[item]["choices"][0]["turns"]:
                    assert reference in user.content

        def grade(request) -> str:  # type: ignore[no-untyped-def]
            return "Rating: [[9]]" if "Conversation with User" in \
                request.messages[-1].content else "Rating: [[3]]"

        run_judging(store, judging, lambda _: ScriptedBackend("judge-model", reply=grade))
        turns = {s.group: s for s in store.slice_summaries(plan.run_id)
                 if s.metric == judging.metric and s.slice == "turn"}
        assert (turns["1"].value, turns["1"].n) == (3.0, 4)
        assert (turns["2"].value, turns["2"].n) == (9.0, 4)
        overall = next(m for m in store.metric_summaries(plan.run_id)
                       if m.metric == judging.metric)
        assert (overall.value, overall.n) == (6.0, 8)


def test_import_takes_both_turns_of_mt_bench_reference_answers(tmp_path: Path) -> None:
    suite = load_suite("mt-bench")
    package = suite.config.judge.reference_data  # type: ignore[union-attr]
    from harness.suites.data import load_rows
    rows = load_rows(package, suite.file, "judge.reference_data")  # type: ignore[arg-type]
    answers = tmp_path / "gpt-4.jsonl"
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = plan_import(answers, suite, None, "question_id", "choices.0.turns", "model_id")
    assert plan.model == "import:gpt-4" and len(plan.items) == 2 * len(rows) == 60
    with Store(tmp_path / "i.db") as store:
        execute_import(store, plan)
        stored = _by_sample(store, plan.run_id)
    assert len(stored) == 60
    first = rows[0]
    request, texts = stored[f"{first['question_id']}#2"]
    assert texts == (first["choices"][0]["turns"][1],)
    assert request.messages[1].content == first["choices"][0]["turns"][0].strip()  # type: ignore

    one_turn = tmp_path / "one.jsonl"
    one_turn.write_text(json.dumps({"question_id": 81, "answer": "only one", "model": "x"}))
    with pytest.raises(Exception, match=r"line 1: answer: .*list of 2 strings"):
        plan_import(one_turn, suite, None, "question_id")


@pytest.mark.parametrize(("change", "field"), [
    ({"kind": "multiple_choice", "choices": {"values": ["a", "b"]}}, "prompt.turns"),
    ({"fewshot": {"n": 1, "answer": "x"}}, "fewshot"),
    ({"judge": {"pairwise": "arena-hard-pair"}}, "judge.pairwise"),
    ({"prompt": {"turns": ["{{ question }}", "{{ nope }}"]}}, "prompt.turns.1"),
    ({"prompt": {"turns": []}}, "prompt.turns"),
])
def test_bad_conversation_suites_are_refused(tmp_path: Path, change: dict[str, object],
                                             field: str) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": 1, "question": "hi"}\n')
    suite = {"name": "chat", "license": "x", "kind": "generate",
             "data": {"path": str(data), "id_field": "id"},
             "prompt": {"turns": ["{{ question }}", "and then?"]}, "metrics": [], **change}
    path = tmp_path / "chat.yaml"
    path.write_text(json.dumps(suite))
    with pytest.raises(SuiteError) as caught:
        load_suite(str(path))
    assert str(caught.value).split(": ")[1].startswith(field), str(caught.value)


def test_a_data_field_called_turn_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": 1, "turn": "x"}\n')
    path = tmp_path / "chat.yaml"
    path.write_text(json.dumps({"name": "c", "license": "x", "kind": "generate",
                                "data": {"path": str(data), "id_field": "id"},
                                "prompt": {"turns": ["a", "b"]}, "metrics": []}))
    with pytest.raises(SuiteError, match="turn"):
        load_suite(str(path))


def test_review_items_show_each_side_its_own_conversation(tmp_path: Path) -> None:
    from review_ui.campaigns import CampaignSpec, create_campaign

    suite = load_suite("mt-bench")
    from harness.suites.data import load_rows
    rows = load_rows(suite.config.judge.reference_data, suite.file,  # type: ignore[union-attr,arg-type]
                     "judge.reference_data")
    answers = tmp_path / "gpt-4.jsonl"
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = plan_run("mt-bench", "smollm2-135m", limit=3, where={"category": ["math"]})
    with Store(tmp_path / "r.db") as store:
        execute(store, plan, lambda: ScriptedBackend("smollm2-135m", reply=_reply))
        execute_import(store, plan_import(answers, suite, None, "question_id",
                                          "choices.0.turns", "model_id"))
        record, n = create_campaign(store, CampaignSpec(
            name="turns", suite="mt-bench", models=("smollm2-135m", "import:gpt-4")))
        items = {i.sample_id: i for i in store.campaign_items(record.id)}
    assert n == 6 == len(items)
    item_id = next(k for k in items if k.endswith("#2")).split("#")[0]
    second, first = items[f"{item_id}#2"], items[f"{item_id}#1"]
    reference = next(r for r in rows if str(r["question_id"]) == item_id)["choices"][0]["turns"]
    assert first.prompt in second.prompt and "turn 2" in second.prompt  # both user turns
    mine = first.output_a if first.model_a == "smollm2-135m" else first.output_b
    theirs_side = second.output_b if second.model_a == "smollm2-135m" else second.output_a
    mine_side = second.output_a if second.model_a == "smollm2-135m" else second.output_b
    assert mine in mine_side and reference[0] in theirs_side and reference[1] in theirs_side
    assert reference[0] not in mine_side  # each side shows its own earlier answer


@pytest.mark.slow
def test_mt_bench_both_turns_on_the_embedded_model_killed_between_turns(
        tmp_path: Path, embedded_backend) -> None:  # type: ignore[no-untyped-def]
    """The acceptance run: 4 conversations answered by the embedded model, killed after
    turn 1, resumed (only turn 2 is sent), then graded by the same model with MT-Bench's
    own judge prompts, per turn and overall. A 135M model rarely writes a readable verdict,
    so its grade is read from its probabilities of the verdict tokens (verdict:
    likelihood, docs/judge.md)."""
    plan = plan_run("mt-bench", "smollm2-135m", limit=4, max_tokens=48)
    with Store(tmp_path / "m.db") as store:
        first = ScriptedBackend(inner=embedded_backend, batch_size=4, crash_after=1)
        with pytest.raises(KeyboardInterrupt):
            execute(store, plan, lambda: first)
        assert len(first.seen) == 4  # turn 1 of each conversation, stored
        second = ScriptedBackend(inner=embedded_backend, batch_size=4)
        outcome = execute(store, plan, lambda: second)
        assert len(second.seen) == 4 and not set(second.seen) & set(first.seen)
        assert outcome.generated == 4 and outcome.reused == 4
        stored = _by_sample(store, plan.run_id)
        assert len(stored) == 8
        for sample_id, (request, _texts) in stored.items():
            item, turn = sample_id.split("#")
            if turn == "2":
                assert request.messages[1].content == stored[f"{item}#1"][1][0].strip()  # type: ignore

        suite = load_suite("mt-bench")
        config = suite.config.judge.model_copy(update={"verdict": "likelihood"})  # type: ignore
        template = resolve_template("mt-bench-package", "single", MT_BENCH, "judge.single")
        judging = plan_judging(suite, "single", template, config, ["smollm2-135m"],
                               resolve_contestants(store, "mt-bench", ["smollm2-135m"]))
        judge = ScriptedBackend(inner=embedded_backend, batch_size=8)
        run_judging(store, judging, lambda _: judge)
        assert len(judge.seen) == 8  # one request per turn
        rows = store.judgments(judging.panel_id)
        assert len(rows) == 8 and all(r.outcome is not None for r in rows)
        turns = {s.group: s for s in store.slice_summaries(plan.run_id)
                 if s.metric == judging.metric and s.slice == "turn"}
        assert set(turns) == {"1", "2"} and all(t.n == 4 for t in turns.values())
        overall = next(m for m in store.metric_summaries(plan.run_id)
                       if m.metric == judging.metric)
        assert overall.n == 8 and 1 <= overall.ci_low <= overall.value <= overall.ci_high <= 10
        assert overall.value == pytest.approx(sum(t.value for t in turns.values()) / 2)
        print("\nMT-Bench, 4 conversations, embedded model judging itself: "
              + ", ".join(f"turn {g}: {t.value:.2f} [{t.ci_low:.2f}, {t.ci_high:.2f}] "
                          f"n={t.n}" for g, t in sorted(turns.items()))
              + f"; overall {overall.value:.2f} [{overall.ci_low:.2f}, {overall.ci_high:.2f}]")
