"""Arena-Hard's protocol: its own judge prompts loaded from the package that carries them,
one system prompt per category, and its win rate (each order a game, a clear verdict
counted three times), over the shipped suite and the two shipped baselines' answers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from helpers import CliRun, ScriptedBackend

from harness.errors import SuiteError
from harness.judge.grade import run_judging
from harness.judge.imports import execute_import, plan_import
from harness.judge.packaged import arena_hard_constants
from harness.judge.plan import plan_judging, resolve_contestants
from harness.judge.prompts import resolve_template
from harness.judge.winrate import game_values, win_rates
from harness.store import Store
from harness.store.judgments import JudgmentRow
from harness.suites.config import load_suite
from harness.types import Request

O3, GEMINI = "import:o3-mini-2025-01-31", "import:gemini-2.0-flash-001"


def _row(sample: str, model_a: str, model_b: str, swapped: bool, outcome: str | None
         ) -> JudgmentRow:
    return JudgmentRow("j", "pairwise", "s", sample, model_a, model_b, swapped, "ra", "rb", 1, 1,
                       "k", None, "", outcome, None if outcome else "no verdict")


def test_package_template_is_the_packages_text_with_a_prompt_per_category() -> None:
    constants = arena_hard_constants()
    assert constants is not None
    template = resolve_template("arena-hard-package", "pairwise", Path("s.yaml"), "judge.pairwise")
    assert template.scale.name == "five" and template.group_field == "category"
    creative = constants["JUDGE_SETTINGS"]["creative_writing"]["system_prompt"]
    question, answers = "Write {x} in %s", ("A's {0} answer", "B's }{ answer")
    hard = template.render(question, answers, None, group="hard_prompt")
    poem = template.render(question, answers, None, group="creative_writing")
    assert hard[0].content == constants["OG_ARENA_HARD_PROMPT"] and poem[0].content == creative
    expected = constants["DEFAULT_PROMPT_TEMPLATE"].format(
        QUESTION=question, ANSWER_A=answers[0], ANSWER_B=answers[1])
    assert hard[1].content == poem[1].content == expected
    with pytest.raises(SuiteError, match="pairwise judging only"):
        resolve_template("arena-hard-package", "single", Path("s.yaml"), "judge.single")


def test_a_template_choosing_by_a_field_the_data_lacks_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text(json.dumps({"id": "1", "prompt": "hi"}) + "\n")
    (tmp_path / "s.yaml").write_text(
        "name: no-category\nlicense: test\nkind: generate\ndata: {path: d.jsonl, id_field: id}\n"
        "prompt: {user: '{{ prompt }}'}\nmetrics: []\njudge: {pairwise: arena-hard-package}\n")
    with pytest.raises(SuiteError, match="'category'"):
        load_suite(str(tmp_path / "s.yaml"))


def test_win_rate_weights_clear_verdicts_and_needs_both_orders() -> None:
    assert game_values("a>>b", True, 3) == [1.0, 1.0, 1.0]
    assert game_values("a>>b", False, 3) == [0.0, 0.0, 0.0]
    assert game_values("tie", False, 3) == [0.5] and game_values("b>a", False, 3) == [1.0]
    rows = [
        # q1: the model is model_a; a clear win, then a slight loss -> [1, 1, 1, 0]
        _row("q1", "m", "base", False, "a>>b"), _row("q1", "m", "base", True, "b>a"),
        # q2: the model is model_b; a tie and a clear win for it -> [0.5, 1, 1, 1]
        _row("q2", "base", "m", False, "tie"), _row("q2", "base", "m", True, "b>>a"),
        # q3: one order has no verdict: left out, counted as incomplete
        _row("q3", "m", "base", False, "a>b"), _row("q3", "m", "base", True, None),
        # the same order of q1 stored twice (judged with the contestants listed the other
        # way round): counted once
        _row("q1", "base", "m", True, "b>>a"),
    ]
    (overall,) = win_rates(rows, ["base"], weight=3)
    assert overall.value == pytest.approx(6.5 / 8) and overall.questions == 2
    assert overall.incomplete == 1 and overall.ci_low <= overall.value <= overall.ci_high
    (plain,) = win_rates(rows, ["base"], weight=1)
    assert plain.value == pytest.approx(2.5 / 4)
    groups = {"q1": "c=x", "q2": "c=y", "q3": "c=z"}
    by_group = {r.group: r for r in win_rates(rows, ["base"], groups=groups)}
    assert by_group["c=x"].value == pytest.approx(0.75) and by_group["c=y"].value == 0.875
    # a group whose only question is incomplete still gets its row
    assert by_group["c=z"].questions == 0 and by_group["c=z"].incomplete == 1


def test_win_rate_pools_one_baseline_per_category_and_resamples_conversations() -> None:
    """Arena-Hard v2.0: hard prompts against one baseline, creative writing against
    another, one number; two baselines' games against each other do not count."""
    rows = [_row("h1", "m", "o3", False, "a>b"), _row("h1", "m", "o3", True, "a>b"),
            _row("c1", "m", "gem", False, "b>a"), _row("c1", "m", "gem", True, "tie"),
            _row("h1", "o3", "gem", False, "a>>b"), _row("h1", "o3", "gem", True, "a>>b")]
    (pooled,) = win_rates(rows, ["o3", "gem"])
    assert pooled.value == pytest.approx(2.5 / 4) and pooled.questions == 2
    assert pooled.baseline == "gem, o3"
    turns = [_row(f"{i}#{t}", "m", "b", swapped, outcome) for i in range(6) for t in (1, 2)
             for swapped, outcome in ((False, "a>b" if i % 2 else "b>a"), (True, "a>b"))]
    clusters = {r.sample_id: r.sample_id.split("#")[0] for r in turns}
    (by_turn,) = win_rates(turns, ["b"], seed=1)
    (by_item,) = win_rates(turns, ["b"], clusters=clusters, seed=1)
    assert by_turn.value == by_item.value == 0.75 and by_item.questions == 12
    # turns of one conversation agree here, so resampling conversations widens the interval
    assert by_item.ci_high - by_item.ci_low > by_turn.ci_high - by_turn.ci_low


def _answers_dir() -> Path:
    spec = importlib.util.find_spec("eval_framework")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / \
        "tasks/arena_hard/data/arena-hard-v2.0/model_answer"


def test_judging_the_shipped_baselines_and_scoring_the_win_rate(tmp_path: Path,
                                                                cli: CliRun) -> None:
    """A position-biased scripted judge over 3 hard and 3 creative questions: it favours
    whatever o3-mini wrote slightly when it comes first and gemini's clearly when that
    comes first, so gemini's games are [0] and [1, 1, 1] per question: 0.75."""
    suite = load_suite("arena-hard")
    by_category: dict[str, list[str]] = {}
    for row in suite.rows:
        by_category.setdefault(row["category"], []).append(row["uid"])
    chosen = by_category["hard_prompt"][:3] + by_category["creative_writing"][:3]
    o3_answers = {}
    db = tmp_path / "arena.db"
    with Store(db) as store:
        for name in ("o3-mini-2025-01-31", "gemini-2.0-flash-001"):
            plan = plan_import(_answers_dir() / f"{name}.jsonl", suite, id_field="uid",
                               answer_field="messages.-1.content.answer")
            execute_import(store, plan)
            if name.startswith("o3"):
                o3_answers = {sample.id: answer for sample, _, answer in plan.items}
        systems: dict[str, str] = {}

        def biased(request: Request) -> str:
            system, user = (m.content for m in request.messages)  # type: ignore[union-attr]
            uid = next(u for u in chosen if o3_answers[u] and o3_answers[u][:200] in user)
            systems[uid] = system
            first = user.split("<|The Start of Assistant A's Answer|>\n", 1)[1]
            o3_first = first.startswith(o3_answers[uid][:200])
            return "My final verdict is: " + ("[[A>B]]" if o3_first else "[[A>>B]]")

        judge = ScriptedBackend("scripted:biased", reply=biased)
        config = suite.config.judge
        assert config is not None
        template = resolve_template(config.pairwise or "", "pairwise", suite.file, "judge")
        plan = plan_judging(suite, "pairwise", template, config, [judge.model_id],
                            resolve_contestants(store, suite.name, [GEMINI, O3],
                                                {"uid": chosen}), O3)
        run_judging(store, plan, lambda identity: judge)
    constants = arena_hard_constants()
    assert constants is not None
    creative = constants["JUDGE_SETTINGS"]["creative_writing"]["system_prompt"]
    assert {u: s == creative for u, s in systems.items()} == \
        {u: u in by_category["creative_writing"] for u in chosen}
    shown = cli("winrate", "--suite", "arena-hard", "--baseline", O3, "--by", "category",
                "--format", "json", "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    rates = {r["group"]: r for r in json.loads(shown.stdout)}
    assert set(rates) == {"all", "category=hard_prompt", "category=creative_writing"}
    assert all(r["model"] == GEMINI and r["value"] == pytest.approx(0.75) for r in rates.values())
    assert rates["all"]["questions"] == 6 and rates["category=hard_prompt"]["questions"] == 3
    missing = cli("winrate", "--suite", "arena-hard", "--baseline", "import:nobody",
                  "--db", str(db))
    assert missing.returncode == 2 and "--baseline" in missing.stderr


def test_template_override_that_cannot_grade_later_turns_is_refused(tmp_path: Path,
                                                                    cli: CliRun) -> None:
    for name in ("arena-hard-pair", "arena-hard-package"):
        result = cli("judge", "--suite", "mt-bench", "--mode", "pairwise", "--template", name,
                     "--model", "a", "--model", "b", "--judge", "smollm2-135m",
                     "--db", str(tmp_path / "none.db"))
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert "--template" in lines[0] and "multi-turn" in lines[0], lines[0]
        assert not (tmp_path / "none.db").exists()
