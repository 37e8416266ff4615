"""Runs lm-evaluation-harness (hf backend) on a local task; executed by ``.venv-lmeval``.

This file is run with the separate lm_eval virtual environment's Python (see
``benchmarks/lmeval_common.py``), so it imports nothing from evalarena: it only
needs ``lm_eval`` and ``torch``. It loads the model once (timed apart), then
times one ``simple_evaluate`` over the task, and writes one JSON file with both
times, lm_eval's accuracy and, per document, the (context, continuation) pairs
lm_eval built and the log-likelihoods it computed, so the caller can check
that both harnesses scored the same strings and compare item by item.

    .venv-lmeval/bin/python benchmarks/lmeval_driver.py --model-dir DIR \
        --include-path TASK_DIR --task NAME --batch-size 8 --threads 1 --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def task_arguments() -> argparse.ArgumentParser:
    """The options every driver takes (``lmeval_generate_driver.py`` too)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--include-path", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--out", required=True)
    return parser


def main() -> None:
    parser = task_arguments()
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    started = time.perf_counter()
    model = HFLM(pretrained=args.model_dir, dtype="float32", device="cpu",
                 batch_size=args.batch_size)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    tasks = TaskManager(include_path=args.include_path)
    index_s = time.perf_counter() - started

    started, cpu_started = time.perf_counter(), time.process_time()
    results = lm_eval.simple_evaluate(model=model, tasks=[args.task], task_manager=tasks,
                                      batch_size=args.batch_size, log_samples=True,
                                      verbosity="ERROR")
    evaluate_s = time.perf_counter() - started
    evaluate_cpu_s = time.process_time() - cpu_started

    assert results is not None
    samples = []
    for sample in results["samples"][args.task]:
        samples.append({
            "id": sample["doc"]["id"],
            "arguments": [list(a) for a in sample["arguments"]],
            "loglikelihoods": [float(r[0][0]) for r in sample["resps"]],
            "acc": float(sample["acc"]),
        })
    out = {
        "lm_eval_version": lm_eval.__version__,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "dtype": str(next(model.model.parameters()).dtype),
        "acc": results["results"][args.task]["acc,none"],
        "load_s": load_s,
        "task_index_s": index_s,
        "evaluate_s": evaluate_s,
        "evaluate_cpu_s": evaluate_cpu_s,
        "samples": samples,
    }
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(out, handle)


if __name__ == "__main__":
    main()
