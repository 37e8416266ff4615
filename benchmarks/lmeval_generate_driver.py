"""Runs an lm_eval ``generate_until`` task (hf backend) and writes, per document, the
generated text and each filter's answer and score; executed by ``.venv-lmeval``.

Like ``lmeval_driver.py`` it imports nothing from evalarena.

    .venv-lmeval/bin/python benchmarks/lmeval_generate_driver.py --model-dir DIR \
        --include-path TASK_DIR --task NAME --batch-size 8 --out result.json
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

from lmeval_driver import task_arguments  # also sets the offline environment


def main() -> None:
    args = task_arguments().parse_args()

    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    model = HFLM(pretrained=args.model_dir, dtype="float32", device="cpu",
                 batch_size=args.batch_size)
    tasks = TaskManager(include_path=args.include_path)
    started = time.perf_counter()
    results = lm_eval.simple_evaluate(model=model, tasks=[args.task], task_manager=tasks,
                                      batch_size=args.batch_size, log_samples=True,
                                      verbosity="ERROR")
    evaluate_s = time.perf_counter() - started
    assert results is not None
    docs: dict[str, dict] = defaultdict(dict)
    for sample in results["samples"][args.task]:
        doc = docs[sample["doc"]["id"]]
        doc["text"] = sample["resps"][0][0]
        doc[sample["filter"]] = {"answer": sample["filtered_resps"][0],
                                 "score": float(sample["exact_match"])}
    scores = {key.split(",")[1]: value for key, value in results["results"][args.task].items()
              if key.startswith("exact_match,")}
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump({"lm_eval_version": lm_eval.__version__, "evaluate_s": evaluate_s,
                   "scores": scores, "docs": docs}, handle)


if __name__ == "__main__":
    main()
