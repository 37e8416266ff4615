"""Arena-Hard-Auto v2.0 as llm-eval-framework 0.1.0 implements it (``ArenaHardTask`` in
``eval_framework/tasks/arena_hard_task.py``): its judge messages, its verdict reading
and its win rate, over inputs written by ``arena_hard_agreement.py``. Run by
``.venv-lmeval`` (the package's task tree imports ``immutabledict``, ``langdetect`` and
``nltk``, which live there). Imports nothing from evalarena; sends nothing anywhere:
the judge is a recorder that returns a scripted reply.

    .venv-lmeval/bin/python benchmarks/arena_hard_reference_driver.py IN.json OUT.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from eval_framework.tasks.arena_hard_task import (
    DEFAULT_PROMPT_TEMPLATE,
    DEFAULT_REGEX_PATTERNS,
    ArenaHardTask,
)


class Reply:
    def __init__(self, text: str) -> None:
        self.response_text = text


def task() -> Any:
    """The task object with what its judging methods read, and nothing on disk."""
    arena = object.__new__(ArenaHardTask)
    arena.prompt_template = DEFAULT_PROMPT_TEMPLATE
    arena.regex_patterns = DEFAULT_REGEX_PATTERNS
    arena.baseline_model = None
    arena.weight = 3
    return arena


def main() -> None:
    given = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    arena = task()
    messages = []
    for case in given["cases"]:
        seen: list[Any] = []

        def recorder(sent: list[dict[str, str]], seen: list[Any] = seen) -> Reply:
            seen.append(sent)
            return Reply("[[A=B]]")

        question = {"uid": case["uid"], "category": case["category"], "prompt": case["prompt"]}
        arena._judge_one(recorder, question, case["a"], case["b"])
        messages.append([[m["role"], m["content"]] for m in seen[0]])
    scores = [arena._extract_score(reply) for reply in given["probes"]]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "judgments.jsonl"
        path.write_text("".join(json.dumps(
            {"uid": j["uid"], "category": j["category"],
             "games": [{"score": arena._extract_score(r)} for r in j["replies"]]}) + "\n"
            for j in given["judgments"]), encoding="utf-8")
        winrate = arena.aggregate_winrate(str(path))
    Path(sys.argv[2]).write_text(json.dumps({"messages": messages, "scores": scores,
                                             "winrate": winrate}), encoding="utf-8")


if __name__ == "__main__":
    main()
