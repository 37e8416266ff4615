"""MT-Bench judging, evalarena against FastChat's own code, on the same answers.

The reference is the FastChat ``llm_judge`` module shipped in the installed
``nvidia-mtbench-evaluator`` package, run in place. Its judge-prompt builders
(``create_conv_single``, ``run_judge_pair``) and verdict parser
(``process_judgement``) are called directly; its API-client import
(``anthropic``) is stubbed, and the pairwise judge call goes to a recorder instead
of an API: nothing is sent anywhere, only what would be sent is compared.

For all 80 questions, both turns, the script builds evalarena's judge requests
(suite ``mt-bench``, template ``mt-bench-package``, single and pairwise, both
orders) from imported two-turn answers, and FastChat's for the same question,
turn, answers and reference answers (the math, reasoning and coding questions are
reference-guided, as in FastChat's ``gen_judgment``), and counts identical
(system, user) messages. Then both verdict parsers read the same judge replies
and their readings are compared (evalarena's parser is stricter on purpose:
docs/judge.md, "Verdict parsing").

    .venv/bin/python benchmarks/mtbench_agreement.py
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

from harness.judge.imports import execute_import, plan_import
from harness.judge.parse import SCORE10, parse_verdict
from harness.judge.plan import build_slots, plan_judging, resolve_contestants
from harness.judge.prompts import resolve_template
from harness.store import Store
from harness.suites.config import load_suite
from harness.suites.data import load_rows

REFERENCE_CATEGORIES = ("math", "reasoning", "coding")  # FastChat's NEED_REF_CATS here


def fastchat() -> types.ModuleType:
    spec = importlib.util.find_spec("mtbench_evaluator")
    assert spec is not None and spec.submodule_search_locations, "pip install --no-deps " \
        "nvidia-mtbench-evaluator"
    sys.path.insert(0, str(Path(next(iter(spec.submodule_search_locations))) / "fastchat"))
    sys.modules.setdefault("anthropic", types.ModuleType("anthropic"))  # API client, unused
    import fastchat.llm_judge.common as common  # type: ignore[import-not-found]
    return common  # type: ignore[no-any-return]


def answers_for(questions: list[dict[str, Any]], variant: str) -> dict[int, list[str]]:
    """Two answers per question, with the characters prompt formatting can trip on."""
    return {q["question_id"]: [f"{variant} answer to turn {t} of {q['question_id']}:\n"
                               f"- uses {{braces}}, {{0}} and %s\n\n```\nx = {{'k': {t}}}\n```"
                               for t in (1, 2)] for q in questions}


class Recorder:
    """Stands in for FastChat's API client: keeps the messages, returns a reply."""

    backend = "openai"

    def __init__(self) -> None:
        self.sent: list[list[dict[str, str]]] = []

    def generate(self, conv: Any) -> str:
        self.sent.append(conv.to_openai_api_messages())
        return "[[A]]"


def main() -> None:
    common = fastchat()
    suite = load_suite("mt-bench")
    questions = {q["question_id"]: q for q in suite.rows}
    judge_block = suite.config.judge
    assert judge_block is not None and judge_block.reference_data is not None
    refs = {r["question_id"]: r for r in load_rows(judge_block.reference_data, suite.file,
                                                    "judge.reference_data")}
    sets = {"alpha": answers_for(list(questions.values()), "Alpha"),
            "beta": answers_for(list(questions.values()), "Beta")}
    prompts = {name: row for name, row in ((r["name"], r) for r in map(
        json.loads, (Path(common.__file__).parent / "data" / "judge_prompts.jsonl")
        .read_text().splitlines()))}
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "m.db") as store:
        for name, answers in sets.items():
            file = Path(folder) / f"{name}.jsonl"
            file.write_text("".join(json.dumps({"question_id": q, "turns": a, "model": name})
                                    + "\n" for q, a in answers.items()))
            execute_import(store, plan_import(file, suite, None, "question_id", "turns"))
        contestants = resolve_contestants(store, "mt-bench", ["import:alpha", "import:beta"])
        results = {}
        for mode in ("single", "pairwise"):
            template = resolve_template("mt-bench-package", mode, suite.file, f"judge.{mode}")
            plan = plan_judging(suite, mode, template, judge_block, ["judge"],
                                contestants if mode == "pairwise" else contestants[:1])
            ours = {(s.sample_id, s.swapped): [(m.role, m.content) for m in s.request.messages
                                               or ()] for s in build_slots(plan)}
            theirs = reference_messages(common, prompts, mode, questions, refs, sets)
            same = sum(ours.get(k) == v for k, v in theirs.items())
            results[mode] = (same, len(theirs), len(ours))
            print(f"{mode}: identical judge messages {same}/{len(theirs)} "
                  f"(evalarena built {len(ours)})")
            for key in [k for k, v in theirs.items() if ours.get(k) != v][:3]:
                print("  differs:", key)
    verdicts(common)


def reference_messages(common: types.ModuleType, prompts: dict[str, dict[str, Any]], mode: str,
                       questions: dict[int, dict[str, Any]], refs: dict[int, dict[str, Any]],
                       sets: dict[str, dict[int, list[str]]]
                       ) -> dict[tuple[str, bool], list[tuple[str, str]]]:
    found = {}
    for qid, question in questions.items():
        ref = refs.get(qid) if question["category"] in REFERENCE_CATEGORIES else None
        for turn in (1, 2):
            base = ("single-math-v1" if ref else "single-v1") if mode == "single" else \
                ("pair-math-v1" if ref else "pair-v2")
            name = base + ("-multi-turn" if turn == 2 else "")
            judge = common.Judge("gpt-4", prompts[name], ref_based=ref is not None,
                                 multi_turn=turn == 2)
            answer = {name: {"choices": [{"turns": answers[qid]}]}
                      for name, answers in sets.items()}
            if mode == "single":
                conv, _ = common.create_conv_single(question, answer["alpha"], judge, ref,
                                                    multi_turn=turn == 2)
                orders = [(False, conv.to_openai_api_messages())]
            else:
                orders = []
                for swapped, (a, b) in ((False, ("alpha", "beta")), (True, ("beta", "alpha"))):
                    recorder = Recorder()
                    common.run_judge_pair(question, answer[a], answer[b], judge, ref, recorder,
                                          multi_turn=turn == 2)
                    orders.append((swapped, recorder.sent[0]))
            for swapped, messages in orders:
                found[(f"{qid}#{turn}", swapped)] = [(m["role"], m["content"]) for m in messages]
    return found


REPLIES = [
    "Good answer.\nRating: [[7]]", "[[7]]", "The answer is fine. [[8]]", "Rating: [[7.5]]",
    "Rating: [7]", "Rating: 6", "[[3]] at first, but on reflection\n[[9]]", "[[11]]",
    "[[0]]", "No verdict here.", "Verdict [[5]] then more text after it.\nThanks.",
    "Rating: [[10]]\n", "[[ 7 ]]", "Score: [[4]]/10",
]


def verdicts(common: types.ModuleType) -> None:
    judge = types.SimpleNamespace(prompt_template={"output_format": "[[rating]]"})
    same = 0
    for reply in REPLIES:
        theirs, _ = common.process_judgement(reply, judge)
        verdict = parse_verdict(reply, SCORE10)
        ours = float(verdict.outcome) if verdict.outcome is not None else -1
        theirs = float(theirs)
        same += ours == theirs
        if ours != theirs:
            print(f"  reply {reply!r}: FastChat {theirs:g}, evalarena "
                  f"{'no verdict' if ours == -1 else f'{ours:g}'} ({verdict.error or ''})")
    print(f"verdicts: same reading {same}/{len(REPLIES)} replies")


if __name__ == "__main__":
    main()
