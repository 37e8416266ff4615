"""What each documented deviation from a reference protocol does to the score.

docs/parity.md lists, per suite, what differs from the reference because the
installed data does not allow it. Each study here runs the shipped suite and a
variant that undoes one deviation as far as the data allows, on the same items and
the embedded model (transformers, float32 on CPU; GSM8K's generations on vLLM), and
prints both scores with their 95% intervals, the paired difference (bootstrap
interval, exact McNemar p) and how many items changed their score:

- ``truthfulqa-preamble``: the shipped 0-shot "Q:/A:" prompt against lm_eval's own
  ``truthfulqa_mc1`` prompt (its six-question QA preamble), read at run time from
  the lm_eval installed in ``.venv-lmeval`` (not shipped here);
- ``hellaswag-cleaning``: the shipped prompts against lm_eval's cleaning, done by
  lm_eval's own ``preprocess`` (run in ``.venv-lmeval``) on the context and the
  endings; the fixture merged ``ctx_a`` and ``ctx_b``, so ``ctx_b`` (which lm_eval
  capitalises) is taken as the words after the context's last full stop;
- ``mmlu-shots``: MMLU has no dev split here, so the 5 examples come from the test
  split. lm_eval's dev examples are one fixed draw of 5 per subject; this measures
  how far the score moves between such draws: the shipped choice (the first 5
  other rows of the subject) against ``--draws`` other fixed draws per subject;
- ``gsm8k-shots``: the same question for GSM8K's 5 examples (lm_eval draws them
  from train, which no installed package ships): the shipped draw (seed 1234)
  against ``--draws`` other seeds.

    .venv/bin/python benchmarks/protocol_effects.py truthfulqa-preamble
    .venv/bin/python benchmarks/protocol_effects.py hellaswag-cleaning
    .venv/bin/python benchmarks/protocol_effects.py mmlu-shots --items 114 --draws 4
    .venv/bin/python benchmarks/protocol_effects.py gsm8k-shots --items 50 --draws 3
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from lmeval_common import LMEVAL_PYTHON, choose_rows, require_lmeval, torch_threads, write_suite

VLLM = "vllm:smollm2-135m?enforce_eager=true"
STUDIES = ("truthfulqa-preamble", "hellaswag-cleaning", "mmlu-shots", "gsm8k-shots")
METRIC = {"truthfulqa-preamble": "accuracy", "hellaswag-cleaning": "accuracy",
          "mmlu-shots": "accuracy", "gsm8k-shots": "gsm8k_flexible_extract"}


def shipped_raw(name: str) -> dict[str, Any]:
    from harness.suites.config import find_suite_file

    return yaml.safe_load(find_suite_file(name).read_text(encoding="utf-8"))


def write_yaml(work: Path, raw: dict[str, Any]) -> Path:
    path = work / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def lmeval_tasks_dir() -> Path:
    out = subprocess.run([str(LMEVAL_PYTHON), "-c",
                          "import lm_eval, os; print(os.path.dirname(lm_eval.__file__))"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return Path(out) / "tasks"


def truthfulqa_variants(work: Path, args: argparse.Namespace) -> list[tuple[str, Path]]:
    shipped = shipped_raw("truthfulqa-mc1")
    reference = yaml.safe_load((lmeval_tasks_dir() / "truthfulqa" / "truthfulqa_mc1.yaml")
                               .read_text(encoding="utf-8"))
    variant = {**shipped, "name": "truthfulqa-mc1-lmeval-prompt",
               "prompt": {"text": reference["doc_to_text"]}}
    return [("shipped (0-shot Q:/A:)", write_yaml(work, {**shipped, "name": "tqa-shipped"})),
            ("lm_eval's prompt (QA preamble)", write_yaml(work, variant))]


def split_context(ctx: str) -> tuple[str, str]:
    """(ctx_a, ctx_b) from HellaSwag's merged context: ``ctx_b`` is the unfinished
    sentence after the last full stop (empty when the context ends with one)."""
    cut = ctx.rfind(". ")
    if cut < 0 or ctx.rstrip().endswith("."):
        return ctx, ""
    return ctx[:cut + 1], ctx[cut + 2:]


def lmeval_preprocess(texts: list[str]) -> list[str]:
    code = ("import json, sys\nfrom lm_eval.tasks.hellaswag.utils import preprocess\n"
            "print(json.dumps([preprocess(t) for t in json.load(sys.stdin)]))")
    done = subprocess.run([str(LMEVAL_PYTHON), "-c", code], input=json.dumps(texts),
                          check=True, capture_output=True, text=True)
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def hellaswag_variants(work: Path, args: argparse.Namespace) -> list[tuple[str, Path]]:
    from harness.suites.config import load_suite

    shipped = shipped_raw("hellaswag")
    rows = load_suite("hellaswag").rows
    queries, endings = [], []
    for row in rows:
        ctx_a, ctx_b = split_context(row["ctx"])
        queries.append(f"{row['activity_label']}: {ctx_a} {ctx_b.capitalize()}")
        endings.extend(row["endings"])
    cleaned_queries, cleaned_endings = lmeval_preprocess(queries), lmeval_preprocess(endings)
    data = work / "hellaswag-cleaned.jsonl"
    with data.open("w", encoding="utf-8") as out:
        for i, row in enumerate(rows):
            out.write(json.dumps({"id": row["id"], "query": cleaned_queries[i],
                                  "endings": cleaned_endings[4 * i:4 * i + 4],
                                  "expected_index": row["expected_index"]}) + "\n")
    changed = sum(q != f"{r['activity_label']}: {r['ctx']}" or e != r["endings"]
                  for q, r, e in zip(cleaned_queries, rows,
                                     (cleaned_endings[4 * i:4 * i + 4] for i in range(len(rows))),
                                     strict=True))
    print(f"lm_eval's cleaning changes the prompt or an ending of {changed}/{len(rows)} items")
    variant = {**shipped, "name": "hellaswag-lmeval-cleaned",
               "data": {"path": str(data), "id_field": "id"},
               "prompt": {"text": "{{ query }}"}}
    variant.pop("robustness", None)
    return [("shipped (uncleaned)", write_yaml(work, {**shipped, "name": "hs-shipped"})),
            ("lm_eval's cleaning", write_yaml(work, variant))]


def mmlu_variants(work: Path, args: argparse.Namespace) -> list[tuple[str, Path]]:
    from harness.suites.config import load_suite

    chosen = choose_rows(args.items, args.seed)
    base = write_suite(work, chosen, 5)
    variants = [("shipped draw (first 5 of the subject)", base)]
    rows = load_suite("mmlu").rows
    picked = set(chosen)
    raw = yaml.safe_load(base.read_text(encoding="utf-8"))
    for draw in range(1, args.draws + 1):
        by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for i, row in enumerate(rows):
            if i not in picked:
                by_subject[row["topic"]].append(row)
        rng = random.Random(draw)
        pool = work / f"pool-{draw}.jsonl"
        with pool.open("w", encoding="utf-8") as out:
            for subject in sorted(by_subject):
                members = by_subject[subject]
                rng.shuffle(members)
                out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in members)
        variant = {**raw, "name": f"mmlu-draw-{draw}",
                   "fewshot": {**raw["fewshot"], "data": {"path": str(pool)}}}
        variants.append((f"draw {draw} (5 other test rows per subject)", write_yaml(work, variant)))
    return variants


def gsm8k_variants(work: Path, args: argparse.Namespace) -> list[tuple[str, Path]]:
    shipped = shipped_raw("gsm8k")
    variants = [("shipped draw (seed 1234)", write_yaml(work, {**shipped, "name": "g-shipped"}))]
    for draw in range(1, args.draws + 1):
        variant = {**shipped, "name": f"gsm8k-draw-{draw}",
                   "fewshot": {**shipped["fewshot"], "seed": draw}}
        variants.append((f"draw seed {draw}", write_yaml(work, variant)))
    return variants


def run_variant(suite: Path, model: str, work: Path, limit: int | None, seed: int,
                metric: str) -> tuple[dict[str, float], Any, float]:
    """One variant's whole run into a fresh database, on a freshly loaded model (a run
    closes its backend when it ends)."""
    from harness.backends import load_backend
    from harness.runner import execute, plan_run
    from harness.store import Store

    started = time.perf_counter()
    plan = plan_run(str(suite), model, limit, seed)
    with Store(work / f"{suite.stem}.db") as store:
        outcome = execute(store, plan, lambda: load_backend(plan.model))
        scores = {s.sample_id: s.value for s in store.scores(outcome.run_id) if s.metric == metric}
    if outcome.errors:
        sys.exit(f"{suite.stem}: {outcome.errors} requests failed; nothing to compare")
    (summary,) = [s for s in outcome.summaries if s.metric == metric]
    return scores, summary, time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", choices=STUDIES)
    parser.add_argument("--items", type=int, default=None,
                        help="items (mmlu-shots: 114, 2 per subject; gsm8k-shots: 50)")
    parser.add_argument("--draws", type=int, default=None, help="other shot draws (4 / 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=None, help="model spec (default: the embedded "
                        "model on transformers; gsm8k-shots: on vLLM, eager)")
    args = parser.parse_args(argv)
    if args.study == "mmlu-shots":
        args.items, args.draws = args.items or 114, args.draws or 4
    elif args.study == "gsm8k-shots":
        args.items, args.draws = args.items or 50, args.draws or 3
    if args.study in ("truthfulqa-preamble", "hellaswag-cleaning"):
        require_lmeval()
    torch_threads(args.threads)
    from harness.stats.paired import compare_metric

    metric = METRIC[args.study]
    builders = {"truthfulqa-preamble": truthfulqa_variants,
                "hellaswag-cleaning": hellaswag_variants,
                "mmlu-shots": mmlu_variants, "gsm8k-shots": gsm8k_variants}
    with tempfile.TemporaryDirectory(prefix="evalarena-effects-") as tmp:
        work = Path(tmp)
        variants = builders[args.study](work, args)
        model = args.model or (VLLM if args.study == "gsm8k-shots"
                               else f"smollm2-135m?batch_size={args.batch_size}")
        # mmlu's items are already the chosen rows; gsm8k's are a seeded subset
        limit = args.items if args.study == "gsm8k-shots" else None
        results = [(label, *run_variant(path, model, work, limit, args.seed, metric))
                   for label, path in variants]
    base_label, base_scores, base_summary, _ = results[0]
    ids = sorted(base_scores)
    print(f"{args.study}: {len(ids)} items, metric {metric}, model {model}")
    print(f"  {base_label}: {base_summary.value:.4f} [{base_summary.ci_low:.4f}, "
          f"{base_summary.ci_high:.4f}]")
    values = [base_summary.value]
    for label, scores, summary, seconds in results[1:]:
        if sorted(scores) != ids:
            sys.exit(f"{label}: scored other items than the shipped suite")
        paired = compare_metric(metric, [base_scores[i] for i in ids], [scores[i] for i in ids])
        changed = sum(base_scores[i] != scores[i] for i in ids)
        values.append(summary.value)
        print(f"  {label}: {summary.value:.4f} [{summary.ci_low:.4f}, {summary.ci_high:.4f}]; "
              f"minus shipped {paired.diff:+.4f} [{paired.ci_low:+.4f}, {paired.ci_high:+.4f}] "
              f"p={paired.p:.3g}; items whose score changed {changed}/{len(ids)} "
              f"({seconds:.0f} s)")
    if len(values) > 2:
        print(f"  range over the {len(values)} draws: {min(values):.4f} .. {max(values):.4f} "
              f"(spread {max(values) - min(values):.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
