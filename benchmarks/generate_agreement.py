"""Generation suites against lm_eval 0.4.13 on the embedded model: ``aime2025`` against
``aime25``, ``nq-open`` against ``nq_open`` and ``mmlu-gen`` against ``mmlu_generative``.

1. generation and scoring: evalarena's prompts go to lm_eval as a local task with the
   reference task's stop sequences, filters and scoring (for aime25 its own
   ``process_results``, imported from lm_eval; for nq_open its ``exact_match`` options
   over every reference); both generate greedily on the embedded model. Reported:
   identical texts (target >= 95%) and, on those, identical scores; each side's score.
2. for aime2025, the answer rule alone: ``aime_exact_match`` and lm_eval's
   ``process_results`` over responses written to probe it (``$...$`` spans, ``\\boxed``
   and ``\\fbox``, fractions, units, "k = 5", ``\\sqrt``, degrees, percentages) and
   over lm_eval's own texts.

    .venv/bin/python benchmarks/generate_agreement.py --suite aime2025 --max-tokens 256
    .venv/bin/python benchmarks/generate_agreement.py --suite nq-open --items 100
    .venv/bin/python benchmarks/generate_agreement.py --suite mmlu-gen --items 100
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lmeval_common import LMEVAL_PYTHON, require_lmeval, run_generate  # noqa: E402

TASK = "evalarena_same_prompts"
# per suite: our metric, lm_eval's stops, filters and metric settings, its filter's name
SETTINGS: dict[str, dict[str, Any]] = {
    "aime2025": {
        "metric": "aime_exact_match", "filter": "none",
        "until": ["Question:", "</s>", "<|im_end|>", "<|eot_id|>"],
        "process_results": True,
        "metric_list": [{"metric": "exact_match", "aggregation": "mean",
                         "higher_is_better": True}],
    },
    "mmlu-gen": {
        "metric": "exact_match", "filter": "get_response", "until": ["</s>", "\n"],
        "filter_list": [{"name": "get_response", "filter": [
            {"function": "regex", "regex_pattern": "^(.*?)(?=\\n|$)"},
            {"function": "remove_whitespace"},
            {"function": "regex", "regex_pattern": "^(.*?)\\s*$"},
            {"function": "take_first"}]}],
        "metric_list": [{"metric": "exact_match", "aggregation": "mean",
                         "higher_is_better": True, "ignore_punctuation": True,
                         "ignore_case": True}],
    },
    "nq-open": {
        "metric": "nq_open_exact_match", "filter": "remove_whitespace",
        "until": ["\n", ".", ","],
        "filter_list": [{"name": "remove_whitespace", "filter": [
            {"function": "remove_whitespace"}, {"function": "take_first"}]}],
        "metric_list": [{"metric": "exact_match", "aggregation": "mean",
                         "higher_is_better": True, "ignore_case": True,
                         "ignore_punctuation": True,
                         "regexes_to_ignore": ["\\b(?:The |the |An |A |The |a |an )"]}],
    },
}
CASES = [
    ("The answer is $70$.", "70"), ("$\\boxed{70}$", "70"), ("\\boxed{070}", "70"),
    ("so \\boxed 70$ done", "70"), ("\\fbox{70}", "70"), ("Answer: 70", "70"), ("70", "70"),
    ("$x = 70$", "70"), ("$k=70$", "70"), ("$abc = 70$", "70"), ("\\boxed{\\frac12}", "0.5"),
    ("\\boxed{1/2}", "\\frac{1}{2}"), ("\\boxed{0.5}", "\\frac{1}{2}"), ("$.5$", "0.5"),
    ("\\boxed{\\dfrac{3}{4}}", "\\frac34"), ("\\boxed{a/b}", "a/b"), ("\\boxed{3/x}", "3/x"),
    ("\\boxed{90^\\circ}", "90"), ("\\boxed{50\\%}", "50"), ("\\boxed{5 \\text{ cm}}", "5"),
    ("\\boxed{5\\text{ a}\\text{ b}}", "5"), ("\\boxed{\\sqrt3}", "\\sqrt{3}"),
    ("\\boxed{2\\sqrt}", "2\\sqrt"), ("\\boxed{\\frac}", "\\frac"), ("\\boxed{\\frac1}", "1"),
    ("$1$ then $2$", "1$ then $2"), ("\\boxed{1} and \\boxed{2}", "2"), ("\\boxed{7", "7"),
    ("\\boxed{\\left(3\\right)}", "(3)"), ("\\boxed{1\\!000}", "1000"), ("\\boxed{ 4 2 }", "42"),
    ("", "0"), ("\\boxed{}", ""), ("$", "70"), ("\\boxed{\\$5}", "5"), ("\\boxed{{5}}", "{5}"),
]


def run_evalarena(db: Path, suite: str, items: int | None, max_tokens: int | None,
                  batch_size: int) -> tuple[list[dict[str, Any]], int]:
    from harness.backends import load_backend
    from harness.runner import execute, plan_run
    from harness.store import Store

    plan = plan_run(suite, f"smollm2-135m?batch_size={batch_size}", limit=items,
                    max_tokens=max_tokens)
    metric = SETTINGS[suite]["metric"]
    with Store(db) as store:
        outcome = execute(store, plan, lambda: load_backend(plan.model))
        scores = {row.sample_id: row.value for row in store.scores(outcome.run_id)
                  if row.metric == metric}
        answers = store.completions(request.key for _, request in plan.items)
    answer = json.loads if suite == "nq-open" else str
    return [{"id": sample.id, "text": request.text, "answer": answer(str(sample.target)),
             "generated": answers[request.key].texts[0], "score": scores[sample.id]}
            for sample, request in plan.items], plan.suite.config.generation.max_tokens


def write_task(workdir: Path, suite: str, ours: list[dict[str, Any]], max_tokens: int) -> Path:
    """The reference task's settings and scoring, over documents carrying our prompts."""
    settings = SETTINGS[suite]
    task_dir = workdir / "task"
    task_dir.mkdir()
    docs = task_dir / "docs.jsonl"
    docs.write_text("".join(json.dumps({k: item[k] for k in ("id", "text", "answer")}) + "\n"
                            for item in ours), encoding="utf-8")
    config: dict[str, Any] = {
        "task": TASK, "dataset_path": "json", "test_split": "test",
        "dataset_kwargs": {"data_files": {"test": str(docs)}},
        "output_type": "generate_until", "doc_to_text": "text", "doc_to_target": "answer",
        "num_fewshot": 0, "metric_list": settings["metric_list"],
        "generation_kwargs": {"until": settings["until"], "do_sample": False,
                              "temperature": 0.0, "max_gen_toks": max_tokens},
    }
    if "filter_list" in settings:
        config["filter_list"] = settings["filter_list"]
    if settings.get("process_results"):
        config["process_results"] = "PROCESS"
        (task_dir / "rules.py").write_text("from lm_eval.tasks.aime.utils import "
                                           "process_results  # noqa: F401\n", encoding="utf-8")
    text = yaml.safe_dump(config, sort_keys=False).replace(
        "PROCESS", "!function rules.process_results")
    (task_dir / f"{TASK}.yaml").write_text(text, encoding="utf-8")
    return task_dir


def reference_scores(workdir: Path, cases: list[tuple[str, str]]) -> list[int]:
    (workdir / "cases.json").write_text(json.dumps(cases), encoding="utf-8")
    subprocess.run([str(LMEVAL_PYTHON), str(HERE / "aime_reference_driver.py"),
                    str(workdir / "cases.json"), str(workdir / "scores.json")], check=True)
    scores: list[int] = json.loads((workdir / "scores.json").read_text(encoding="utf-8"))
    return scores


def answer_rule(workdir: Path, ours: list[dict[str, Any]], theirs: dict[str, Any]
                ) -> tuple[int, int]:
    """Both AIME answer rules over the written cases and lm_eval's own texts."""
    from harness.metrics.math_answer import answer_of, equivalent

    cases = CASES + [(theirs["docs"][o["id"]]["text"], o["answer"]) for o in ours]
    reference = reference_scores(workdir, cases)
    mine = [float(equivalent(answer_of(response), answer)) for response, answer in cases]
    agree = sum(a == b for a, b in zip(mine, reference, strict=True))
    print(f"answer rule: same score {agree}/{len(cases)} ({len(CASES)} written cases, "
          f"{len(ours)} lm_eval texts)")
    for (response, answer), a, b in zip(cases, mine, reference, strict=True):
        if a != b:
            print(f"  differs: {response!r} vs {answer!r}: evalarena {a:g}, lm_eval {b}")
    return agree, len(cases)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=sorted(SETTINGS), required=True)
    parser.add_argument("--items", type=int, default=None, help="a seeded subset")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="override the suite's limit (aime2025 allows 32,768)")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    require_lmeval()
    name = SETTINGS[args.suite]["filter"]
    with tempfile.TemporaryDirectory(prefix="evalarena-generate-") as tmp:
        workdir = Path(tmp)
        ours, limit = run_evalarena(workdir / "g.db", args.suite, args.items, args.max_tokens,
                                    args.batch_size)
        theirs = run_generate(workdir, write_task(workdir, args.suite, ours, limit), TASK,
                              args.batch_size)
        agree = checked = 0
        if args.suite == "aime2025":
            agree, checked = answer_rule(workdir, ours, theirs)
    same_text = [o for o in ours if theirs["docs"][o["id"]]["text"] == o["generated"]]
    same_scores = sum(theirs["docs"][o["id"]][name]["score"] == o["score"] for o in same_text)
    n = len(ours)
    print(f"{args.suite}: {n} items, greedy, {limit} tokens, embedded model (float32 CPU); "
          f"lm_eval {theirs['lm_eval_version']}")
    print(f"identical greedy texts       {len(same_text)}/{n} ({len(same_text) / n:.1%}; "
          "target >= 95%)")
    print(f"same scores, identical texts {same_scores}/{len(same_text)}")
    print(f"exact match                  evalarena {sum(o['score'] for o in ours) / n:.4f}  "
          f"lm_eval {theirs['scores'][name]:.4f}")
    ok = len(same_text) >= 0.95 * n and same_scores == len(same_text) and agree == checked
    print("result " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
