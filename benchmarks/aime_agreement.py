"""AIME 2025: evalarena's ``aime2025`` suite against lm_eval 0.4.13's ``aime25``, on the
embedded model, and the two answer rules on written edge cases.

1. generation and scoring: evalarena's prompts go to lm_eval as a local task with
   aime25's stop sequences and its own ``process_results`` (the task's rule, imported
   from lm_eval); both generate greedily (``--max-tokens``, 256 by default: aime25 allows
   32,768) on the embedded model. Reported: identical texts (target >= 95%) and, on
   those, identical scores; then each side's accuracy.
2. the answer rule alone: ``aime_exact_match`` and lm_eval's ``process_results`` over
   responses written to probe it (``$...$`` spans, ``\\boxed`` and ``\\fbox``, fractions,
   units, "k = 5", ``\\sqrt``, degrees, percentages) and over lm_eval's own texts.

    .venv/bin/python benchmarks/aime_agreement.py
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

TASK = "evalarena_aime25_same_prompts"
STOPS = ["Question:", "</s>", "<|im_end|>", "<|eot_id|>"]
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


def run_evalarena(db: Path, max_tokens: int, batch_size: int) -> list[dict[str, Any]]:
    from harness.backends import load_backend
    from harness.runner import execute, plan_run
    from harness.store import Store

    plan = plan_run("aime2025", f"smollm2-135m?batch_size={batch_size}", max_tokens=max_tokens)
    with Store(db) as store:
        outcome = execute(store, plan, lambda: load_backend(plan.model))
        scores = {row.sample_id: row.value for row in store.scores(outcome.run_id)}
        answers = store.completions(request.key for _, request in plan.items)
    return [{"id": sample.id, "text": request.text, "answer": str(sample.target),
             "generated": answers[request.key].texts[0], "score": scores[sample.id]}
            for sample, request in plan.items]


def write_task(workdir: Path, ours: list[dict[str, Any]], max_tokens: int) -> Path:
    """aime25's settings and answer rule, over documents carrying evalarena's prompts."""
    task_dir = workdir / "task"
    task_dir.mkdir()
    docs = task_dir / "docs.jsonl"
    docs.write_text("".join(json.dumps({k: item[k] for k in ("id", "text", "answer")}) + "\n"
                            for item in ours), encoding="utf-8")
    (task_dir / "rules.py").write_text("from lm_eval.tasks.aime.utils import process_results"
                                       "  # noqa: F401\n", encoding="utf-8")
    config = {
        "task": TASK, "dataset_path": "json", "test_split": "test",
        "dataset_kwargs": {"data_files": {"test": str(docs)}},
        "output_type": "generate_until", "doc_to_text": "text", "doc_to_target": "answer",
        "num_fewshot": 0, "process_results": "PROCESS",
        "metric_list": [{"metric": "exact_match", "aggregation": "mean",
                         "higher_is_better": True}],
        "generation_kwargs": {"until": STOPS, "do_sample": False, "temperature": 0.0,
                              "max_gen_toks": max_tokens},
    }
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    require_lmeval()
    from harness.metrics.math_answer import answer_of, equivalent

    with tempfile.TemporaryDirectory(prefix="evalarena-aime-") as tmp:
        workdir = Path(tmp)
        ours = run_evalarena(workdir / "aime.db", args.max_tokens, args.batch_size)
        theirs = run_generate(workdir, write_task(workdir, ours, args.max_tokens), TASK,
                              args.batch_size)
        texts = [theirs["docs"][o["id"]]["text"] for o in ours]
        cases = CASES + [(t, o["answer"]) for t, o in zip(texts, ours, strict=True)]
        reference = reference_scores(workdir, cases)
    same_text = [o for o in ours if theirs["docs"][o["id"]]["text"] == o["generated"]]
    same_scores = sum(theirs["docs"][o["id"]]["none"]["score"] == o["score"] for o in same_text)
    mine = [float(equivalent(answer_of(response), answer)) for response, answer in cases]
    agree = sum(a == b for a, b in zip(mine, reference, strict=True))
    n = len(ours)
    print(f"aime2025: {n} problems, 0-shot, greedy, {args.max_tokens} tokens, embedded model; "
          f"lm_eval {theirs['lm_eval_version']}")
    print(f"identical greedy texts       {len(same_text)}/{n} ({len(same_text) / n:.1%}; "
          "target >= 95%)")
    print(f"same scores, identical texts {same_scores}/{len(same_text)}")
    print(f"exact match                  evalarena {sum(o['score'] for o in ours) / n:.4f}  "
          f"lm_eval {theirs['scores']['none']:.4f}")
    print(f"answer rule: same score {agree}/{len(cases)} ({len(CASES)} written cases, "
          f"{n} lm_eval texts)")
    for (response, answer), a, b in zip(cases, mine, reference, strict=True):
        if a != b:
            print(f"  differs: {response!r} vs {answer!r}: evalarena {a:g}, lm_eval {b}")
    ok = len(same_text) >= 0.95 * n and same_scores == len(same_text) and agree == len(cases)
    print("result " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
