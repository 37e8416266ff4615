"""A judge template: what one judgment asks, rendered from an item's question and answers.

Shipped templates, template files and package prompts (``prompts``, ``packaged``) all
become a ``JudgeTemplate``: a system message and a user message with the variables
``question``, ``reference`` and ``answer`` (single) or ``answer_a``/``answer_b``
(pairwise), in Jinja2 (sandboxed, strict undefined) or, for package prompts, Python's
``str.format`` over plain fields. A template may choose its system message by a field
of the item (Arena-Hard judges creative writing with its own prompt): ``group_field``
names the field, ``system_by_group`` maps its values to system messages.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import jinja2

from harness.errors import SuiteError
from harness.judge.parse import Scale
from harness.suites.templates import TemplateEnvironment, format_plain
from harness.types import Message

Mode = Literal["single", "pairwise"]
ENV = TemplateEnvironment(keep_trailing_newline=True)  # sandboxed: template files are shared


@dataclass(frozen=True)
class TurnPrompts:
    """The prompts that grade a later turn of a conversation, which the judge sees whole."""

    system: str
    user: str
    user_with_reference: str | None = None
    system_with_reference: str | None = None


@dataclass(frozen=True)
class Turn:
    """One turn of a conversation as the judge is shown it: the user's message, the
    answer (single) or the two answers in the order shown (pairwise), the reference."""

    question: str
    answers: tuple[str, ...]
    reference: str | None = None


@dataclass(frozen=True)
class JudgeTemplate:
    name: str
    mode: Mode
    scale: Scale
    system: str
    user: str
    user_with_reference: str | None = None
    system_with_reference: str | None = None
    syntax: Literal["jinja", "format"] = "jinja"  # format: Python str.format (package prompts)
    multi_turn: TurnPrompts | None = None  # for turns after the first of a conversation
    group_field: str | None = None  # the item field whose value picks the system message
    system_by_group: tuple[tuple[str, str], ...] = ()  # (value, system); others: ``system``

    def __post_init__(self) -> None:
        if self.system_by_group and (self.multi_turn is not None or self.system_with_reference):
            # those prompts carry their own system message, which the group could not reach
            raise ValueError(f"judge template {self.name}: a system prompt chosen by a field "
                             "cannot be combined with multi-turn or reference prompts")

    @property
    def hash(self) -> str:
        """What changes single-turn verdicts (``multi_turn_hash`` covers later turns, and
        is kept apart so judge ids of single-turn suites did not change when it came)."""
        parts: list[Any] = [self.mode, self.scale.name, self.system, self.user,
                            self.user_with_reference, self.system_with_reference, self.syntax]
        if self.group_field is not None:  # kept out otherwise: earlier judge ids stay valid
            parts += [self.group_field, [list(p) for p in self.system_by_group]]
        payload = json.dumps(parts)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    @property
    def multi_turn_hash(self) -> str | None:
        if self.multi_turn is None:
            return None
        payload = json.dumps([self.hash, *vars(self.multi_turn).values()])
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def render(self, question: str, answers: tuple[str, ...], reference: str | None,
               history: tuple[Turn, ...] = (), group: str | None = None
               ) -> tuple[Message, ...]:
        """The judge's chat messages for one answer (single) or one ordered pair; with
        ``history`` (the conversation's earlier turns), for its last turn; ``group``: the
        item's ``group_field`` value."""
        prompts = TurnPrompts(dict(self.system_by_group).get(group or "", self.system),
                              self.user, self.user_with_reference, self.system_with_reference)
        if history:
            if self.multi_turn is None:
                raise SuiteError(f"judge template {self.name}", "multi_turn",
                                 "this template cannot grade a later turn of a conversation")
            prompts = self.multi_turn
        use_reference = bool(reference and reference.strip()) and prompts.user_with_reference
        user = prompts.user_with_reference if use_reference else prompts.user
        system = (prompts.system_with_reference
                  if use_reference and prompts.system_with_reference else prompts.system)
        turns = (*history, Turn(question, answers, reference))
        values: dict[str, Any] = {}
        for number, turn in enumerate(turns, 1):
            values |= self._turn_values(turn, f"_{number}")
        values |= self._turn_values(turns[-1], "")
        values["turns"] = [self._turn_values(t, "") for t in turns]
        return (Message("system", self._fill("system", system, values)),
                Message("user", self._fill("user", user or "", values)))

    def _turn_values(self, turn: Turn, suffix: str) -> dict[str, str]:
        """``question``, ``answer`` or ``answer_a``/``answer_b``, ``reference`` (and
        ``ref_answer``, the MT-Bench package's name), each with the turn's suffix."""
        values = {"question": turn.question, "reference": turn.reference or "",
                  "ref_answer": turn.reference or ""}
        if self.mode == "single":
            values["answer"] = turn.answers[0]
        else:
            values["answer_a"], values["answer_b"] = turn.answers
        return {f"{k}{suffix}": v for k, v in values.items()}

    def _fill(self, part: str, template: str, values: dict[str, Any]) -> str:
        """One part of the prompt; a template that breaks (or breaks the sandbox's
        limits) is an input error naming the template and the part, never a crash."""
        try:
            if self.syntax == "format":
                return format_plain(template, {k: v for k, v in values.items()
                                               if isinstance(v, str)})
            return ENV.from_string(template).render(values)
        except (jinja2.TemplateError, ValueError, KeyError) as exc:
            raise SuiteError(f"judge template {self.name}", part, str(exc)) from None
