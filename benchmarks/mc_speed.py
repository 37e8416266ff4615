"""MMLU multiple choice: evalarena vs lm-evaluation-harness (hf backend), wall time.

Acceptance: on the embedded model, same items, same batch size, same machine,
one run, evalarena is >= 2x faster than lm_eval 0.4.13.

Both sides get the same ``--items`` MMLU questions in the same prompt format
(see ``lm_eval_agreement.py`` and ``lmeval_common.py``: evalarena renders
every prompt, lm_eval receives exactly those strings), the same weights
(float32, CPU), the same batch size and the same number of torch threads. What
each time counts, made the same on both sides:

- evalarena: ``plan_run`` (read and render the suite) + ``execute`` (every
  backend call, storing each batch in a fresh SQLite file, scoring with the
  bootstrap CI);
- lm_eval: ``simple_evaluate`` (load the task's data, build the requests, every
  model call, the metrics);
- neither counts interpreter start, imports or loading the model; lm_eval's
  ``TaskManager`` (an index of its own task catalogue) is also built before
  its clock starts.

The two runs go one after the other in this one invocation. On a machine
other jobs share, wall time moves with their load, so each side's CPU time
is printed too (the process's own CPU seconds over the same span): with one
torch thread it is the steadier measure of the work done.

Where the time goes: MMLU's four continuations (" A" ... " D") are one token
each, so both harnesses run each question's context once (lm_eval 0.4.13 does
too, through its one-token-continuation logits cache). evalarena's edge is in
what it does per pass: it asks the model for the last position's logits only,
where lm_eval computes and log-softmaxes the logits of every position. With
few-shot examples (the shipped suite is 5-shot, ``sampler: first``: every
question of a subject gets the same five examples, as in lm_eval's MMLU),
evalarena also computes each subject's shared prompt prefix once and runs only
the question on its stored key/value states (harness/backends/hf_prefix.py);
lm_eval runs every prompt in full. That needs two or more items per subject:
``--items`` is spread over the 57 subjects, so 114 items = 2 per subject.

    .venv/bin/python benchmarks/mc_speed.py                    # 114 items (2 per subject), 5-shot
    .venv/bin/python benchmarks/mc_speed.py --items 120 --shots 0
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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
    # the shipped suite's format: 5-shot, the same examples for every item of a subject,
    # and two items per subject so that the shared examples are shared
    parser.add_argument("--items", type=int, default=114, help="MMLU items (114: 2/subject)")
    add_common_arguments(parser, shots=5)
    parser.add_argument("--min-ratio", type=float, default=None,
                        help="exit 1 when lm_eval/evalarena wall time is below this")
    args = parser.parse_args(argv)
    check_common_arguments(parser, args)
    require_lmeval()
    threads = torch_threads(args.threads)

    from harness.backends import load_backend
    from harness.backends.embedded import converted_model_dir

    spec = f"{MODEL}?batch_size={args.batch_size}"
    with tempfile.TemporaryDirectory(prefix="evalarena-mcspeed-") as tmp:
        workdir = Path(tmp)
        suite = write_suite(workdir, choose_rows(args.items, args.seed), args.shots)
        backend = load_backend(spec)
        dtype = next(backend.model.parameters()).dtype  # type: ignore[attr-defined]
        print(f"{args.items} MMLU items (seed {args.seed}), {args.shots}-shot, batch size "
              f"{args.batch_size}, torch threads {threads}, {MODEL} {dtype} on CPU", flush=True)
        ours = run_evalarena(suite, spec, backend, workdir)
        print(f"evalarena: {ours.seconds:.1f} s", flush=True)
        del backend
        task_dir = write_lmeval_task(workdir, ours.items)
        theirs = run_lmeval(workdir, task_dir, converted_model_dir(), args.batch_size,
                            args.threads)

    ratio = theirs.evaluate_s / ours.seconds
    cpu_ratio = theirs.evaluate_cpu_s / ours.cpu_seconds
    print()
    print(f"items                 {args.items} ({args.shots}-shot, seed {args.seed}), "
          f"batch size {args.batch_size}, {threads} torch thread(s) each")
    print(f"evalarena             {ours.seconds:8.2f} s wall  {ours.cpu_seconds:8.2f} s CPU  "
          f"(plan_run + execute into SQLite + scoring)")
    print(f"lm_eval 0.4.13 hf     {theirs.evaluate_s:8.2f} s wall  "
          f"{theirs.evaluate_cpu_s:8.2f} s CPU  (simple_evaluate)")
    print(f"not counted           model load: evalarena before its clock; lm_eval "
          f"{theirs.load_s:.1f} s + task index {theirs.task_index_s:.1f} s")
    print(f"accuracy              evalarena {100 * ours.acc:.2f}  lm_eval {100 * theirs.acc:.2f}")
    print(f"speed-up              {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU (target >= 2x wall)")
    if args.min_ratio is not None and ratio < args.min_ratio:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
