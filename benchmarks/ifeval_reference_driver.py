"""Runs lm_eval 0.4.13's IFEval checker (Google's, ``lm_eval/tasks/ifeval``) over cases
written by ``ifeval_agreement.py``; run by that script with ``.venv-lmeval/bin/python``.

Input: JSONL, one case per line: ``case``, ``prompt``, ``response``,
``instruction_id_list``, ``kwargs``. Output: JSONL, per case ``strict`` and ``loose``,
one verdict per instruction: true, false, or null where the reference cannot run
offline (it raised LookupError for NLTK data that is not installed).

Each instruction is checked on its own (an example holding that one instruction and
its kwargs), so one instruction that cannot run does not hide the others; a prompt
follows all its instructions exactly when each one is followed, which is how the
reference's prompt-level score is defined.

Two settings are made before checking, both stated in docs/parity.md:
- ``langdetect.DetectorFactory.seed = 0``: unseeded, langdetect may name a different
  language for the same short text on another run; evalarena seeds it the same way.
- ``nltk.word_tokenize`` with ``preserve_line=True``: the default first splits
  sentences with the Punkt model (``punkt_tab``), which is not installed and cannot
  be downloaded here; the capital-word count does not depend on sentence ends.
"""

from __future__ import annotations

import functools
import json
import logging
import sys

import langdetect
import nltk

langdetect.DetectorFactory.seed = 0
nltk.word_tokenize = functools.partial(nltk.word_tokenize, preserve_line=True)

from lm_eval.tasks.ifeval import utils  # noqa: E402  (after the settings above)

# "unable to detect language" is logged at ERROR for every such text: an outcome here
logging.getLogger("lm_eval.tasks.ifeval.instructions").setLevel(logging.CRITICAL)


def verdicts(case: dict, loose: bool) -> list[bool | None]:
    test = utils.test_instruction_following_loose if loose else \
        utils.test_instruction_following_strict
    found: list[bool | None] = []
    for instruction, kwargs in zip(case["instruction_id_list"], case["kwargs"], strict=True):
        example = utils.InputExample(key=0, instruction_id_list=[instruction],
                                     prompt=case["prompt"], kwargs=[kwargs or {}])
        try:
            found.append(bool(test(example, case["response"]).follow_instruction_list[0]))
        except LookupError:  # NLTK data that is not installed (Punkt)
            found.append(None)
    return found


def main(source: str, target: str) -> None:
    with open(source, encoding="utf-8") as cases, open(target, "w", encoding="utf-8") as out:
        for line in cases:
            case = json.loads(line)
            out.write(json.dumps({"case": case["case"], "strict": verdicts(case, False),
                                  "loose": verdicts(case, True)}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
