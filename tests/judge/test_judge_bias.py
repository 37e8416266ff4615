"""Judging with scripted judges: position bias, policies, retries, juries, reports.

The judges here are Backend subclasses with a fixed behaviour (always answer
"[[A]]", answer garbage, prefer their own model...), which is the point: the
pipeline around them (both orders, parse, retry, store, battles, report) is
the real one, against a real SQLite file, with contestants imported through
the real import path.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import ScriptedBackend

from harness.backends.base import Backend
from harness.judge.grade import JudgeOutcome, run_judging
from harness.judge.imports import execute_import, plan_import
from harness.judge.plan import plan_judging, resolve_contestants
from harness.judge.prompts import resolve_template
from harness.judge.report import cohen_kappa, judge_report
from harness.runner import execute, plan_run, score_run
from harness.store import Store
from harness.store.review import NewItem
from harness.suites.config import load_suite
from harness.types import Request

SUITE = """\
name: tiny-judge
license: test data
kind: generate
data: {path: data.jsonl, id_field: id}
prompt:
  user: "{{ question }}"
target: "{{ answer }}"
metrics: [exact_match]
judge:
  single: mt-bench-single
  pairwise: mt-bench-pair
  reference: "{{ answer }}"
  max_tokens: 32
"""
QUESTIONS = [{"id": f"q{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)}
             for i in range(6)]


def _always(text: str) -> Callable[[Request], str]:
    return lambda request: text


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    (tmp_path / "suite.yaml").write_text(SUITE)
    return tmp_path / "suite.yaml"


def _import(store: Store, tmp_path: Path, suite_file: Path, name: str,
            answer: Callable[[int], str]) -> str:
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "model": name, "answer": answer(i)})
                            + "\n" for i in range(6)))
    outcome = execute_import(store, plan_import(path, load_suite(str(suite_file))))
    return outcome.model


def _judge(store: Store, suite_file: Path, mode: str, judges: dict[str, Backend],
           contestants: list[str], **options: object) -> JudgeOutcome:
    suite = load_suite(str(suite_file))
    config = suite.config.judge
    assert config is not None
    if "policy" in options:
        config = config.model_copy(update={"policy": options.pop("policy")})
    template = resolve_template(config.template_name(mode), mode, suite.file,  # type: ignore[arg-type]
                                f"judge.{mode}")
    plan = plan_judging(suite, mode, template, config, list(judges),  # type: ignore[arg-type]
                        resolve_contestants(store, suite.name, contestants), **options)  # type: ignore[arg-type]
    return run_judging(store, plan, lambda identity: judges[identity])


@pytest.fixture
def store(tmp_path: Path, suite_file: Path) -> Store:
    store = Store(tmp_path / "j.db")
    _import(store, tmp_path, suite_file, "short", lambda i: str(2 * i))
    _import(store, tmp_path, suite_file, "long", lambda i: f"Let me think. {i} + {i} is "
                                                           f"{2 * i}, so the answer is {2 * i}.")
    return store


def test_judge_that_always_prefers_position_a_shows_100_percent_bias(store: Store,
                                                                       suite_file: Path) -> None:
    judge = ScriptedBackend("scripted:always-a", reply=_always("Both fine.\n[[A]]"))
    outcome = _judge(store, suite_file, "pairwise", {judge.model_id: judge},
                     ["import:short", "import:long"])
    assert outcome.pairs[("import:short", "import:long")]["inconsistent"] == 6
    battles = store.battles(f"judge:{outcome.panel}")
    assert len(battles) == 6 and {b["outcome"] for b in battles} == {"tie"}

    [report] = judge_report(store)
    assert report["position_bias_rate"] == 1.0
    assert report["first_position_win_rate"] == 1.0
    assert report["first_position_both_orders"] == 6
    assert report["parse_errors"] == 0 and report["outcomes"] == {"tie": 6}
    # every pair was shown in both orders: 12 requests, none of them twice
    assert len(judge.seen) == len(set(judge.seen)) == 12


def test_drop_policy_keeps_no_battle_for_a_flipping_pair(store: Store, suite_file: Path) -> None:
    judge = ScriptedBackend("scripted:always-a", reply=_always("[[A]]"))
    outcome = _judge(store, suite_file, "pairwise", {judge.model_id: judge},
                     ["import:short", "import:long"], policy="drop")
    assert store.battles(f"judge:{outcome.panel}") == []
    assert outcome.pairs[("import:short", "import:long")]["none"] == 6
    [report] = judge_report(store)
    assert report["policy"] == "drop" and report["position_bias_rate"] == 1.0


def test_consistent_judge_makes_wins_and_rerun_sends_nothing(store: Store,
                                                            suite_file: Path) -> None:
    def prefers_long(request: Request) -> str:
        user = request.messages[-1].content  # type: ignore[index]
        first = user.split("Assistant A's answer (start)\n")[1]
        return "[[A]]" if first.startswith("Let me think") else "[[B]]"

    judge = ScriptedBackend("scripted:likes-long", reply=prefers_long)
    outcome = _judge(store, suite_file, "pairwise", {judge.model_id: judge},
                     ["import:short", "import:long"])
    battles = store.battles(f"judge:{outcome.panel}")
    assert [b["outcome"] for b in battles] == ["b"] * 6  # model_b = import:long won
    [report] = judge_report(store)
    assert report["position_bias_rate"] == 0.0
    assert report["length_bias"]["longer_win_rate"] == 1.0
    assert report["tokens"] == {"requests": 12, "prompt": 1200, "output": 60, "cost": 0.0}

    again = ScriptedBackend("scripted:likes-long", reply=prefers_long)
    second = _judge(store, suite_file, "pairwise", {again.model_id: again},
                    ["import:short", "import:long"])
    assert again.seen == [] and second.judges[0].generated == 0
    assert len(store.battles(f"judge:{outcome.panel}")) == 6  # no duplicates


def test_malformed_verdict_is_retried_once_then_stored_as_parse_error(
        store: Store, suite_file: Path) -> None:
    def recovers(request: Request) -> str:
        retry = "could not be read" in request.messages[-1].content  # type: ignore[index]
        return "[[8]]" if retry else "I would give it an eight."

    judge = ScriptedBackend("scripted:recovers", reply=recovers)
    outcome = _judge(store, suite_file, "single", {judge.model_id: judge}, ["import:short"])
    stats = outcome.judges[0]
    assert (stats.slots, stats.retried, stats.parse_errors, stats.generated) == (6, 6, 0, 12)
    assert outcome.scores["import:short"].value == 8.0

    garbage = ScriptedBackend("scripted:garbage", reply=_always("Rating: eight"))
    bad = _judge(store, suite_file, "single", {garbage.model_id: garbage}, ["import:long"])
    assert bad.judges[0].parse_errors == 6 and bad.scores["import:long"].n == 0
    assert bad.scores["import:long"].n_errors == 6
    rows = store.judgments(bad.panel)
    assert all(r.outcome is None and "no verdict found" in (r.parse_error or "") for r in rows)
    assert all(r.retry_key is not None for r in rows)
    [report] = judge_report(store, panel=bad.panel)
    assert report["parse_errors"] == 6 and report["parse_error_rate"] == 1.0


def test_single_scores_land_in_the_run_and_survive_rescoring(store: Store,
                                                            suite_file: Path) -> None:
    judge = ScriptedBackend("scripted:seven", reply=_always("Fine.\nRating: [[7]]"))
    outcome = _judge(store, suite_file, "single", {judge.model_id: judge},
                     ["import:short", "import:long"])
    run_id = next(r.id for r in store.list_runs() if r.model == "import:short")
    metric = f"judge:{outcome.panel}:score"
    summaries = {s.metric: s for s in store.metric_summaries(run_id)}
    assert summaries[metric].value == 7.0 and summaries[metric].n == 6
    assert "exact_match" in summaries
    score_run(store, run_id)  # `evalarena run` rescoring must keep judge metrics
    assert metric in {s.metric for s in store.metric_summaries(run_id)}
    # the reference is shown for every item here (the suite's reference template)
    request = store.get_request(store.judgments(outcome.panel)[0].request_key)
    assert "### Reference answer" in request.messages[-1].content  # type: ignore[index]


def test_jury_majority_and_self_preference(tmp_path: Path, suite_file: Path) -> None:
    store = Store(tmp_path / "jury.db")
    _import(store, tmp_path, suite_file, "other", lambda i: f"It is {2 * i}.")

    def answers() -> ScriptedBackend:  # the contestant "smollm2-135m" without loading a model
        return ScriptedBackend("smollm2-135m",
                               reply=lambda r: "SELF " + r.messages[-1].content)  # type: ignore[index]

    plan = plan_run(str(suite_file), "smollm2-135m")
    execute(store, plan, answers)

    def self_lover(request: Request) -> str:
        first = request.messages[-1].content.split("Assistant A's answer (start)\n")[1]  # type: ignore[index]
        return "[[A]]" if first.startswith("SELF") else "[[B]]"

    judges = {"smollm2-135m": ScriptedBackend("smollm2-135m", reply=self_lover),
              "scripted:b": ScriptedBackend("scripted:b", reply=_always("[[B]]")),
              "scripted:fair": ScriptedBackend("scripted:fair", reply=self_lover)}
    outcome = _judge(store, suite_file, "pairwise", judges, ["smollm2-135m", "import:other"],
                     combine="majority")
    assert outcome.panel.startswith("jury-")
    battles = store.battles(f"judge:{outcome.panel}")
    # two of three jurors prefer smollm2-135m in both orders; the third flips (tie)
    assert [b["outcome"] for b in battles] == ["a"] * 6
    reports = {r["judge"]: r for r in judge_report(store)}
    jury = reports[outcome.panel]
    assert len(jury["members"]) == 3 and jury["combine"] == "majority"
    own = next(r for r in reports.values()
               if r["members"] == [m for m in jury["members"] if m.startswith("smollm2")])
    assert own["self_preference"]["own_win_rate"] == 1.0
    assert own["self_preference"]["models"] == ["smollm2-135m"]


def test_agreement_with_human_votes(store: Store, suite_file: Path) -> None:
    judge = ScriptedBackend("scripted:always-b", reply=_always("[[B]]"))
    source_outcome = _judge(store, suite_file, "pairwise", {judge.model_id: judge},
                            ["import:short", "import:long"])
    # always B in both orders: a flip, so every pair is a tie under the default policy
    store.add_annotator("ann", "annotator", "x")
    store.add_annotator("bob", "annotator", "x")
    items = [NewItem(f"q{i}", "p", "import:long", "l", "import:short", "s") for i in range(4)]
    campaign = store.create_campaign("c", "pairwise", "tiny-judge", {}, items, 2)
    stored = store.campaign_items(campaign.id)
    for item, outcome in zip(stored, ["tie", "tie", "a", "both_bad"], strict=True):
        store.add_vote(item, "ann", outcome, left_is_a=True)
        store.add_vote(item, "bob", outcome, left_is_a=False)
    [report] = judge_report(store, panel=source_outcome.panel)
    human = report["human_agreement"]
    assert human["n"] == 4 and human["percent"] == 75.0


def test_cohen_kappa_known_values() -> None:
    assert cohen_kappa([("a", "a"), ("b", "b"), ("a", "a"), ("b", "b")]) == 1.0
    # 2x2 table [[20, 5], [10, 15]]: po = 0.7, pe = 0.5, kappa = 0.4
    pairs = [("a", "a")] * 20 + [("a", "b")] * 5 + [("b", "a")] * 10 + [("b", "b")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)


def test_five_way_scale_in_both_orders(store: Store, suite_file: Path) -> None:
    text = suite_file.read_text().replace("pairwise: mt-bench-pair", "pairwise: arena-hard-pair")
    suite_file.write_text(text)

    def strong_for_long(request: Request) -> str:
        first = request.messages[-1].content.split("Assistant A's answer (start)\n")[1]  # type: ignore[index]
        return "Long is better.\n[[A>>B]]" if first.startswith("Let me") else "[[B>A]]"

    judge = ScriptedBackend("scripted:five", reply=strong_for_long)
    outcome = _judge(store, suite_file, "pairwise", {judge.model_id: judge},
                     ["import:short", "import:long"], baseline="import:short")
    rows = store.judgments(outcome.panel)
    # stored from model_a's (import:long's) side, whichever was shown first
    assert {(r.swapped, r.outcome) for r in rows} == {(False, "a>>b"), (True, "a>b")}
    assert [b["outcome"] for b in store.battles(f"judge:{outcome.panel}")] == ["a"] * 6


def test_importing_the_shipped_baselines() -> None:
    arena = load_suite("arena-hard")
    spec = importlib.util.find_spec("eval_framework")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations))) / \
        "tasks/arena_hard/data/arena-hard-v2.0/model_answer"
    plan = plan_import(folder / "o3-mini-2025-01-31.jsonl", arena, id_field="uid",
                       answer_field="messages.-1.content.answer")
    assert plan.model == "import:o3-mini-2025-01-31" and len(plan.items) == 750
    assert all(answer for _, _, answer in plan.items)
    gemini = plan_import(folder / "gemini-2.0-flash-001.jsonl", arena, id_field="uid",
                         answer_field="messages.-1.content.answer")
    assert len(gemini.items) == 748
