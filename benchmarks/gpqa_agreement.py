"""GPQA Diamond: evalarena's ``gpqa-diamond`` suite against lm_eval 0.4.13's
``gpqa_diamond_zeroshot``, on the embedded model.

Three measurements, all 198 items by default:

1. the prompt: for each item, lm_eval's own ``preprocess`` and ``doc_to_text`` are
   applied to evalarena's order of the choices (``gpqa_reference_driver.py``, in
   ``.venv-lmeval``); identical strings and the same right letter are counted;
2. the scoring: evalarena's prompts and continuations scored by lm_eval as a local
   task (the ``mc_agreement.py`` method): both accuracies, same chosen answer;
3. the order of the choices: lm_eval shuffles them with Python's global generator
   as it walks the data (seeded 0 by ``simple_evaluate``), evalarena per item from the
   suite's seed and the row. lm_eval scores its own prompts, and the difference
   between the two accuracies is reported with a paired bootstrap CI over items.

    .venv/bin/python benchmarks/gpqa_agreement.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from lmeval_common import (
    LMEVAL_PYTHON,
    require_lmeval,
    run_lmeval,
    torch_threads,
    write_lmeval_task,
)

DRIVER = Path(__file__).with_name("gpqa_reference_driver.py")
LISTED = ["Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]
CONTINUATIONS = (" (A)", " (B)", " (C)", " (D)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=None,
                        help="score a seeded subset (lm_eval's own order is still drawn over "
                             "all 198 rows, as its task does)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    require_lmeval()
    torch_threads(args.threads)
    from harness.backends import load_backend
    from harness.backends.embedded import converted_model_dir
    from harness.runner import execute, plan_run
    from harness.store import Store

    everything = plan_run("gpqa-diamond", f"smollm2-135m?batch_size={args.batch_size}")
    plan = plan_run("gpqa-diamond", f"smollm2-135m?batch_size={args.batch_size}",
                    limit=args.items, seed=args.seed)
    rows = everything.suite.rows
    orders = [[[str(row[f]) for f in LISTED].index(c) for c in sample.choices]
              for (sample, _), row in zip(everything.items, rows, strict=True)]
    position = {sample.id: i for i, (sample, _) in enumerate(everything.items)}
    with tempfile.TemporaryDirectory(prefix="evalarena-gpqa-") as tmp:
        work = Path(tmp)
        (work / "in.json").write_text(json.dumps({"rows": rows, "orders": orders}))
        subprocess.run([str(LMEVAL_PYTHON), str(DRIVER), str(work / "in.json"),
                        str(work / "out.json")], check=True)
        drawn = json.loads((work / "out.json").read_text())
        reference = {key: [drawn[key][position[s.id]] for s, _ in plan.items]
                     for key in ("for_our_order", "own")}
        with Store(work / "g.db") as store:
            outcome = execute(store, plan, lambda: load_backend(plan.model))
            answers = store.completions(r.key for _, r in plan.items)
        ours_items = [(s.id, r.text or "", r.continuations, int(s.target or 0))
                      for s, r in plan.items]
        (work / "a").mkdir()
        on_ours = run_lmeval(work / "a", write_lmeval_task(work / "a", ours_items),
                             converted_model_dir(), args.batch_size, args.threads)
        own_items: list[tuple[str, str, tuple[str, ...], int]] = [
            (s.id, d["prompt"], CONTINUATIONS, d["gold"])
                     for (s, _), d in zip(plan.items, reference["own"], strict=True)]
        (work / "b").mkdir()
        on_own = run_lmeval(work / "b", write_lmeval_task(work / "b", own_items),
                            converted_model_dir(), args.batch_size, args.threads)
    n = len(plan.items)
    same_prompt = sum(r.text == d["prompt"] for (_, r), d in
                      zip(plan.items, reference["for_our_order"], strict=True))
    same_gold = sum(s.target == d["gold"] for (s, _), d in
                    zip(plan.items, reference["for_our_order"], strict=True))
    ours = {s.id: list(answers[r.key].loglikelihoods) for s, r in plan.items}
    same_answer = sum(int(np.argmax(ours[i])) == int(np.argmax(on_ours.loglikelihoods[i]))
                      for i, _, _, _ in ours_items)
    largest = max(abs(x - y) for i, _, _, _ in ours_items
                  for x, y in zip(ours[i], on_ours.loglikelihoods[i], strict=True))
    (acc,) = [m.value for m in outcome.summaries if m.metric == "accuracy"]
    right_ours = np.array([int(np.argmax(ours[i])) == gold for i, _, _, gold in ours_items])
    right_own = np.array([int(np.argmax(on_own.loglikelihoods[i])) == gold
                          for i, _, _, gold in own_items])
    rng = np.random.default_rng(0)
    draws = rng.integers(0, n, size=(10_000, n))
    deltas = (right_ours[draws].mean(axis=1) - right_own[draws].mean(axis=1)) * 100
    low, high = np.percentile(deltas, [2.5, 97.5])
    print(f"gpqa-diamond: {n} items (seed {args.seed}), embedded model, float32 CPU, "
          "lm_eval 0.4.13")
    print(f"prompt: lm_eval's doc_to_text on evalarena's choice order identical {same_prompt}/{n},"
          f" same right letter {same_gold}/{n}")
    print(f"scoring, same prompts: accuracy evalarena {100 * acc:.2f}  lm_eval "
          f"{100 * on_ours.acc:.2f}; same chosen answer {same_answer}/{n}; "
          f"max |loglik diff| {largest:.2e}")
    print(f"choice order: lm_eval's own order accuracy {100 * on_own.acc:.2f}; evalarena's "
          f"order minus lm_eval's {100 * (right_ours.mean() - right_own.mean()):+.2f} points "
          f"[{low:+.2f}, {high:+.2f}] (paired bootstrap over items, 95%)")
    ok = same_prompt == n and same_gold == n and same_answer == n
    print(f"result {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
