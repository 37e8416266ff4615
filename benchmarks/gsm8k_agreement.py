"""GSM8K: evalarena's ``gsm8k`` suite against lm_eval 0.4.13's ``gsm8k`` generation and
scoring, on the same prompt strings.

evalarena builds each item's 5-shot prompt (``plan_run``: the product path), generates
greedily on the embedded model (transformers, float32, CPU) and scores with its two
lm_eval filters (``harness/metrics/gsm8k.py``). The same prompt strings go to lm_eval
as a local task (``doc_to_text: text``, no shots of its own) with gsm8k's stop
sequences, filters and exact-match settings, on the same model directory. Reported:
the share of items whose greedy texts are identical (target >= 95%), and, on the
items with identical texts, whether both harnesses give the same strict-match and
flexible-extract scores (target: all). Then each side's two accuracies.

    .venv/bin/python benchmarks/gsm8k_agreement.py --items 50
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lmeval_common import require_lmeval, run_generate  # noqa: E402

TASK = "evalarena_gsm8k_same_prompts"
FILTERS = {"strict-match": "gsm8k_strict_match", "flexible-extract": "gsm8k_flexible_extract"}


def run_evalarena(db: Path, items: int, seed: int, batch_size: int) -> list[dict[str, Any]]:
    from harness.backends import load_backend
    from harness.runner import execute, plan_run
    from harness.store import Store

    plan = plan_run("gsm8k", f"smollm2-135m?batch_size={batch_size}", limit=items, seed=seed)
    with Store(db) as store:
        outcome = execute(store, plan, lambda: load_backend(plan.model))
        scores = {(row.sample_id, row.metric): row for row in store.scores(outcome.run_id)}
        answers = store.completions(request.key for _, request in plan.items)
    return [{"id": sample.id, "text": request.text, "answer": sample.doc["answer"],
             "target": str(sample.target),
             "generated": answers[request.key].texts[0],
             **{metric: scores[(sample.id, metric)].value for metric in FILTERS.values()}}
            for sample, request in plan.items]


def write_task(workdir: Path, ours: list[dict[str, Any]]) -> Path:
    """A copy of lm_eval's gsm8k settings whose documents carry evalarena's prompts."""
    task_dir = workdir / "task"
    task_dir.mkdir()
    docs = task_dir / "docs.jsonl"
    docs.write_text("".join(json.dumps({k: item[k] for k in ("id", "text", "answer")},
                                       ensure_ascii=False) + "\n" for item in ours),
                    encoding="utf-8")
    ignore = [",", "\\$", "(?s).*#### ", "\\.$"]
    config = {
        "task": TASK, "dataset_path": "json", "test_split": "test",
        "dataset_kwargs": {"data_files": {"test": str(docs)}},
        "output_type": "generate_until", "doc_to_text": "text", "doc_to_target": "answer",
        "num_fewshot": 0,
        "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                         "ignore_case": True, "ignore_punctuation": False,
                         "regexes_to_ignore": ignore}],
        "generation_kwargs": {"until": ["Question:", "</s>", "<|im_end|>"], "do_sample": False,
                              "temperature": 0.0, "max_gen_toks": 256},
        "filter_list": [
            {"name": "strict-match", "filter": [
                {"function": "regex", "regex_pattern": "#### (\\-?[0-9\\.\\,]+)"},
                {"function": "take_first"}]},
            {"name": "flexible-extract", "filter": [
                {"function": "regex", "group_select": -1,
                 "regex_pattern": "(-?[$0-9.,]{2,})|(-?[0-9]+)"},
                {"function": "take_first"}]}],
    }
    (task_dir / f"{TASK}.yaml").write_text(yaml.safe_dump(config, sort_keys=False),
                                           encoding="utf-8")
    return task_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    require_lmeval()
    from harness.metrics.gsm8k import cleaned, filtered

    with tempfile.TemporaryDirectory(prefix="evalarena-gsm8k-") as tmp:
        workdir = Path(tmp)
        ours = run_evalarena(workdir / "gsm8k.db", args.items, args.seed, args.batch_size)
        theirs = run_generate(workdir, write_task(workdir, ours), TASK, args.batch_size)
    same_text = [o for o in ours if theirs["docs"][o["id"]]["text"] == o["generated"]]
    same_scores = sum(all(theirs["docs"][o["id"]][name]["score"] == o[metric]
                          for name, metric in FILTERS.items()) for o in same_text)
    # scoring alone: evalarena's filters over lm_eval's own texts, every item
    rescored = sum(all(float(cleaned(filtered(theirs["docs"][o["id"]]["text"],
                                              name == "flexible-extract"))
                             == cleaned(o["target"]))
                       == theirs["docs"][o["id"]][name]["score"] for name in FILTERS)
                   for o in ours)
    print(f"{len(ours)} GSM8K items (seed {args.seed}), 5-shot, greedy, 256 tokens, "
          f"batch size {args.batch_size}; lm_eval {theirs['lm_eval_version']}")
    print(f"identical greedy texts       {len(same_text)}/{len(ours)} "
          f"({len(same_text) / len(ours):.1%}; target >= 95%)")
    print(f"same scores, identical texts {same_scores}/{len(same_text)}")
    print(f"evalarena's filters on lm_eval's texts: same scores {rescored}/{len(ours)}")
    for name, metric in FILTERS.items():
        mine = sum(o[metric] for o in ours) / len(ours)
        print(f"{name:17} evalarena {mine:.4f}  lm_eval {theirs['scores'][name]:.4f}")
    ok = (len(same_text) >= 0.95 * len(ours) and same_scores == len(same_text)
          and rescored == len(ours))
    print("result " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
