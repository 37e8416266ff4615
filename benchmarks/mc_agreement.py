"""Any shipped multiple-choice suite: evalarena's log-likelihood scoring against lm_eval
0.4.13's (hf backend) on the same items and the same prompt strings.

evalarena builds a seeded subset of the suite's requests (``plan_run``, the product
path) and scores them on the embedded model; lm_eval receives exactly those contexts
and continuations as a local task and scores them on the same model directory
(float32 on CPU both). Printed: both accuracies, how many items pick the same answer,
the largest log-likelihood difference, and whether lm_eval saw the same strings.
This measures the scoring; whether the suite's prompt is the one lm_eval's own task
builds is a question about templates, answered per suite in docs/parity.md.

    .venv/bin/python benchmarks/mc_agreement.py --suite piqa --items 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lmeval_common import require_lmeval, run_lmeval, torch_threads, write_lmeval_task


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", required=True)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=0.5, help="points (0.5)")
    args = parser.parse_args(argv)
    require_lmeval()
    torch_threads(args.threads)
    from harness.backends import load_backend
    from harness.backends.embedded import converted_model_dir
    from harness.runner import execute, plan_run
    from harness.store import Store

    plan = plan_run(args.suite, f"smollm2-135m?batch_size={args.batch_size}", args.items,
                    args.seed)
    if plan.suite.config.kind != "multiple_choice":
        parser.error(f"{args.suite} is not a multiple-choice suite")
    with tempfile.TemporaryDirectory(prefix="evalarena-mc-") as tmp:
        workdir = Path(tmp)
        with Store(workdir / "mc.db") as store:
            outcome = execute(store, plan, lambda: load_backend(plan.model))
            answers = store.completions(r.key for _, r in plan.items)
        items = [(s.id, r.text or "", r.continuations, int(s.target or 0))
                 for s, r in plan.items]
        theirs = run_lmeval(workdir, write_lmeval_task(workdir, items), converted_model_dir(),
                            args.batch_size, args.threads)
    ours = {s.id: list(answers[r.key].loglikelihoods) for s, r in plan.items}
    (acc,) = [m.value for m in outcome.summaries if m.metric == "accuracy"]
    same_prompts = sum(theirs.arguments.get(i) == [(t, c) for c in conts]
                       for i, t, conts, _ in items)
    same_answer = sum(ours[i].index(max(ours[i])) ==
                      theirs.loglikelihoods[i].index(max(theirs.loglikelihoods[i]))
                      for i, _, _, _ in items)
    largest = max(abs(x - y) for i, _, _, _ in items
                  for x, y in zip(ours[i], theirs.loglikelihoods[i], strict=True))
    gap = 100 * (acc - theirs.acc)
    n = len(items)
    print(f"suite {args.suite}: {n} items (seed {args.seed}), lm_eval 0.4.13 hf, float32 CPU")
    print(f"accuracy           evalarena {100 * acc:.2f}  lm_eval {100 * theirs.acc:.2f}  "
          f"({gap:+.2f} points, tolerance {args.tolerance})")
    print(f"same prompt strings {same_prompts}/{n}, same chosen answer {same_answer}/{n}, "
          f"max |loglik diff| {largest:.2e}")
    ok = abs(gap) <= args.tolerance and same_prompts == n
    print(f"result {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
