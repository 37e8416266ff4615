"""lm_eval 0.4.13's aime answer rule (``lm_eval/tasks/aime/utils.py``'s
``process_results``) over (response, answer) pairs; run by ``.venv-lmeval``.
Imports nothing from evalarena.

    .venv-lmeval/bin/python benchmarks/aime_reference_driver.py IN.json OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lm_eval.tasks.aime.utils import process_results


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    scores = [process_results({"answer": answer}, [response])["exact_match"]
              for response, answer in cases]
    Path(sys.argv[2]).write_text(json.dumps(scores), encoding="utf-8")


if __name__ == "__main__":
    main()
