"""lm-evaluation-harness's own crows_pairs_english scoring over local documents; run
with ``.venv-lmeval``'s Python by ``crows_agreement.py`` (it imports nothing from
evalarena). The task file it is given names lm_eval's ``utils.doc_to_choice`` and
``utils.process_results`` (the installed ones, linked next to it); this writes, per
document, lm_eval's (context, continuation) pairs, log-likelihoods and both metrics.

    .venv-lmeval/bin/python benchmarks/crows_reference_driver.py --model-dir DIR \
        --include-path TASK_DIR --task NAME --batch-size 8 --out result.json
"""

from __future__ import annotations

import json

from lmeval_driver import task_arguments


def main() -> None:
    args = task_arguments().parse_args()
    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    torch.set_num_threads(1)
    model = HFLM(pretrained=args.model_dir, dtype="float32", device="cpu",
                 batch_size=args.batch_size)
    results = lm_eval.simple_evaluate(
        model=model, tasks=[args.task], task_manager=TaskManager(include_path=args.include_path),
        batch_size=args.batch_size, log_samples=True, verbosity="ERROR")
    assert results is not None
    samples = [{"id": s["doc"]["id"], "arguments": [list(a) for a in s["arguments"]],
                "loglikelihoods": [float(r[0][0]) for r in s["resps"]],
                "pct_stereotype": float(s["pct_stereotype"]),
                "likelihood_diff": float(s["likelihood_diff"])}
               for s in results["samples"][args.task]]
    summary = results["results"][args.task]
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump({"lm_eval_version": lm_eval.__version__,
                   "pct_stereotype": summary["pct_stereotype,none"],
                   "likelihood_diff": summary["likelihood_diff,none"],
                   "samples": samples}, handle)


if __name__ == "__main__":
    main()
