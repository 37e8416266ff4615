"""The optional ``judge:`` block of a suite: which judge templates, what the judge sees.

It lives in the suite because it belongs to the task (what the question is,
which items have a reference answer), but it is left out of the suite's hash:
changing how answers are judged must not turn stored answers into a new run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import jinja2
import jinja2.meta
from pydantic import BaseModel, ConfigDict, Field

from harness.errors import SuiteError
from harness.judge.prompts import JudgeTemplate, Mode, resolve_template
from harness.suites.data import DataSource
from harness.suites.templates import TemplateEnvironment

_ENV = TemplateEnvironment()  # sandboxed: the judge block is part of a shared suite file
_BUILTINS = {"doc", "range", "loop", "true", "false", "none"}


class JudgeConfig(BaseModel):
    """docs/judge.md documents every field."""

    model_config = ConfigDict(extra="forbid")
    single: str | None = None  # template for single-answer grading
    pairwise: str | None = None  # template for pairwise comparison
    question: str | None = None  # Jinja2 over the row; default: the suite's prompt.user / text
    reference: str | None = None  # Jinja2 over the row (and `ref`); empty means no reference
    reference_data: DataSource | None = None  # rows joined to items by id, seen as `ref`
    policy: Literal["tie", "drop"] = "tie"  # a pair whose verdict flips with the order
    max_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    # generate: the judge writes a reply ending in a verdict; likelihood: the verdict
    # tokens are scored and read from the judge's probabilities (harness/judge/likelihood.py)
    verdict: Literal["generate", "likelihood"] = "generate"

    def template_name(self, mode: Mode) -> str | None:
        return self.single if mode == "single" else self.pairwise


def check_judge(config: JudgeConfig, kind: str, suite_file: Path, fields: set[str],
                conversation: bool = False) -> None:
    """Validate a judge block against the suite's data before anything runs; a
    conversation's templates must be able to grade its later turns."""
    source = str(suite_file)
    if kind != "generate":
        raise SuiteError(source, "judge", "only a generate suite can be judged")
    if config.single is None and config.pairwise is None:
        raise SuiteError(source, "judge", "name a template in judge.single or judge.pairwise")
    for mode in ("single", "pairwise"):
        name = config.template_name(mode)
        if name is not None:
            template = resolve_template(name, mode, suite_file, f"judge.{mode}")
            check_template(template, fields, conversation, source, f"judge.{mode}")
    for field, text, extra in (("judge.question", config.question, set()),
                               ("judge.reference", config.reference, {"ref"})):
        if text is None:
            continue
        try:  # compiling also finds unknown filters and tests
            used = jinja2.meta.find_undeclared_variables(_ENV.parse(text))
        except jinja2.TemplateSyntaxError as exc:
            raise SuiteError(source, field, f"template syntax error: {exc.message}") from None
        missing = sorted(used - fields - _BUILTINS - extra)
        if missing:
            raise SuiteError(source, field, f"template uses {missing[0]!r}, which the data "
                             f"does not have (fields: {', '.join(sorted(fields))})")


def check_template(template: JudgeTemplate, fields: set[str], conversation: bool, source: str,
                   field: str) -> None:
    """What a template needs from the suite: multi-turn prompts for a conversation, and
    the data field it picks its system prompt by (the suite's block or `--template`)."""
    if conversation and template.multi_turn is None:
        raise SuiteError(source, field, f"template {template.name!r} cannot grade the later "
                         "turns of a conversation (no multi-turn prompts)")
    if template.group_field is not None and template.group_field not in fields:
        raise SuiteError(source, field, f"template {template.name!r} chooses its system "
                         f"prompt by the field {template.group_field!r}, which the data does "
                         "not have")


def render(source: str, field: str, template: str, context: dict[str, Any],
           sample_id: str) -> str:
    try:
        return _ENV.from_string(template).render(context)
    except jinja2.TemplateError as exc:
        raise SuiteError(source, field, f"item {sample_id}: {exc}") from None
