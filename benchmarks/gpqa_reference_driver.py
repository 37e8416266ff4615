"""GPQA prompts as lm_eval 0.4.13's gpqa_diamond_zeroshot builds them; run by ``.venv-lmeval``.

Imports nothing from evalarena. Reads the rows (in the dataset's order) and, per
row, the order in which evalarena shows the four listed choices; writes, per row:

- ``for_our_order``: lm_eval's prompt (its own ``preprocess`` and ``doc_to_text``,
  through its ``apply_template``) and gold label for evalarena's order of choices;
- ``own``: lm_eval's prompt and gold index for its own order, made by its
  ``process_docs`` right after ``random.seed(0)``, as ``simple_evaluate`` seeds
  Python's generator (``random_seed=0``) before it builds the task's documents.

    .venv-lmeval/bin/python benchmarks/gpqa_reference_driver.py IN.json OUT.json
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import datasets
import lm_eval
import yaml
from lm_eval.tasks.gpqa.zeroshot import utils
from lm_eval.utils import apply_template

LISTED = ["Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]


def main() -> None:
    given = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    config = Path(lm_eval.__file__).parent / "tasks" / "gpqa" / "zeroshot" / "_gpqa_zeroshot_yaml"
    text = "\n".join(line for line in config.read_text().splitlines()
                     if not line.startswith("process_docs"))  # a !function tag
    template = yaml.safe_load(text)["doc_to_text"]
    rows = given["rows"]
    for_ours = []
    for row, order in zip(rows, given["orders"], strict=True):
        choices = [utils.preprocess(row[LISTED[i]]) for i in order]
        doc = {**row, **{f"choice{k + 1}": c for k, c in enumerate(choices)}}
        for_ours.append({"prompt": apply_template(template, doc),
                         "gold": order.index(0)})
    random.seed(0)
    docs = utils.process_docs(datasets.Dataset.from_list(rows))
    own = [{"prompt": apply_template(template, d), "gold": "ABCD".index(d["answer"][1])}
           for d in docs]
    Path(sys.argv[2]).write_text(json.dumps({"for_our_order": for_ours, "own": own}),
                                 encoding="utf-8")


if __name__ == "__main__":
    main()
