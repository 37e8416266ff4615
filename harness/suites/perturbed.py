"""Derived suites: a suite with one perturbation applied (docs/beyond_accuracy.md).

A derived suite is called ``<suite>~<label>`` and its config carries the perturbation,
so it has its own hash and run id: its answers are stored, reused and resumed like any
run's. What changes is what the model is shown:

- text perturbations edit the item's prompt fields (seeded per item and field: the
  same edit whatever ``--limit`` is); the target and every metric read the item as it
  was, and few-shot examples are shown as they were;
- ``shuffle_choices`` puts each item's choices in another order (never the one shown
  before) and the right answer follows its text: a prompt that lists the choices by
  their data fields sees them in the new order, so the letters are relabelled;
- ``template`` replaces prompt keys by the suite author's alternative wording.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import replace
from typing import Any

import jinja2.meta

from harness.errors import SuiteError
from harness.perturb import text as edits
from harness.suites.config import (
    _ENV,
    PromptConfig,
    Suite,
    SuiteConfig,
    check_shape,
    check_templates,
    data_fields,
)
from harness.suites.robustness_block import TEXT_KINDS, Perturbation

SEPARATOR = "~"  # between a suite's name and its perturbation's label


def base_name(suite_name: str) -> str:
    """The suite a derived suite was made from (``mmlu~typos@0.05`` -> ``mmlu``)."""
    return suite_name.split(SEPARATOR, 1)[0]


def derive(suite: Suite, perturbation: Perturbation) -> Suite:
    """The suite with ``perturbation`` applied; raises SuiteError (file and field) when
    it does not fit the suite."""
    config = suite.config
    source = str(suite.file)
    where = f"perturbation {perturbation.label}"
    fields = set(data_fields(suite.rows))
    update: dict[str, Any] = {"name": f"{config.name}{SEPARATOR}{perturbation.label}",
                              "robustness": None}
    resolved = perturbation
    if perturbation.kind in TEXT_KINDS:
        if config.prompt.turns is not None:
            raise SuiteError(source, where, "a conversation's text cannot be perturbed yet "
                             "(its later turns are built from the stored earlier ones); a "
                             "template perturbation can reword it")
        chosen = perturbation.fields or (config.robustness.fields if config.robustness
                                         else None) or prompt_fields(config, suite.rows)
        missing = sorted(set(chosen) - fields)
        if missing:
            raise SuiteError(source, where, f"the data has no field {missing[0]!r}")
        if not chosen:
            raise SuiteError(source, where, "the prompt shows no text field of the data")
        if config.choices is not None and config.choices.pattern is not None \
                and config.choices.field in chosen:
            raise SuiteError(source, where, f"the field {config.choices.field!r} is split into "
                             "choices by choices.pattern, which an edit could break; leave it "
                             "out of the perturbation's fields")
        resolved = perturbation.model_copy(update={"fields": sorted(chosen)})
    elif perturbation.kind == "shuffle_choices":
        choices = config.choices
        if config.kind != "multiple_choice" or choices is None or (
                choices.field is None and choices.fields is None) or choices.pattern:
            raise SuiteError(source, where, "shuffle_choices needs a multiple_choice suite "
                             "whose choices are a data field or one field per choice")
    else:  # template
        prompt = {**config.prompt.model_dump(), **(perturbation.prompt or {})}
        try:
            update["prompt"] = PromptConfig.model_validate(prompt)
        except ValueError as exc:
            raise SuiteError(source, where, f"prompt: {exc}") from None
    update["perturbation"] = resolved
    derived = config.model_copy(update=update)
    check_shape(derived, source)
    check_templates(derived, source, suite.rows, suite.fewshot_rows)
    return replace(suite, config=derived, base_hash=suite.hash)


def prompt_fields(config: SuiteConfig, rows: list[dict[str, Any]]) -> list[str]:
    """The data fields the prompt shows (text ones), less those the target reads: what a
    text perturbation edits unless told otherwise."""
    used: set[str] = set()
    for template in (config.prompt.system, config.prompt.user, config.prompt.text,
                     config.prompt.preamble):
        if template is not None:
            used |= jinja2.meta.find_undeclared_variables(_ENV.parse(template))
    used -= jinja2.meta.find_undeclared_variables(_ENV.parse(config.target))
    used.discard(config.data.id_field or "")
    sample = rows[:1000]
    return sorted(name for name in used if sample and all(
        isinstance(row.get(name), str | list) for row in sample))


def perturb_row(config: SuiteConfig, row: dict[str, Any], sample_id: str) -> dict[str, Any]:
    """The row as a text perturbation shows it (the row itself for any other suite)."""
    perturbation = config.perturbation
    if perturbation is None or perturbation.kind not in TEXT_KINDS:
        return row
    shown = dict(row)
    key = f"{perturbation.seed}:{perturbation.kind}:{sample_id}"
    for name in perturbation.fields or ():
        value = row.get(name)
        if isinstance(value, str):
            shown[name] = _edit(perturbation, value, f"{key}:{name}", key)
        elif isinstance(value, list):
            shown[name] = [_edit(perturbation, v, f"{key}:{name}:{i}", key)
                           if isinstance(v, str) else v for i, v in enumerate(value)]
    return shown


def _edit(perturbation: Perturbation, text: str, seed: str, item_key: str) -> str:
    rng = random.Random(seed)
    kind, mode, rate = perturbation.kind, perturbation.effective_mode, perturbation.effective_rate
    if kind == "typos":
        return edits.typos(text, rng, rate)
    if kind == "whitespace":
        return edits.whitespace(text, rng, rate)
    if kind == "punctuation":
        return edits.punctuation(text, rng, rate)
    if kind == "case":
        return edits.case(text, rng, mode)
    if kind == "contractions":
        return edits.contractions(text, rng, mode)
    if kind == "names":  # one replacement per name across the item's fields
        return edits.names(text, rng, mode, item_key)
    if kind == "pronouns":
        return edits.pronouns(text, rng, mode)
    return edits.numbers(text, rng, mode)


def shuffled_order(config: SuiteConfig, row: dict[str, Any], order: list[int]) -> list[int]:
    """With ``shuffle_choices``: ``order`` (shown position -> listed index) put in another
    order drawn from the seed and the row, never the same one when there are two or more."""
    perturbation = config.perturbation
    if perturbation is None or perturbation.kind != "shuffle_choices" or len(order) < 2:
        return order
    row_hash = hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()
    rng = random.Random(f"shuffle_choices:{perturbation.seed}:{row_hash}")
    moved = list(order)
    while moved == order:
        rng.shuffle(moved)
    return moved


def shown_fields(config: SuiteConfig, choices: tuple[str, ...]) -> dict[str, Any]:
    """With ``shuffle_choices``: the choice fields as the prompt now shows them, so that a
    prompt listing ``A. {{ answer_a }}`` ... shows the choices in their new order."""
    perturbation, block = config.perturbation, config.choices
    if perturbation is None or perturbation.kind != "shuffle_choices" or block is None:
        return {}
    if block.fields is not None:
        return dict(zip(block.fields, choices, strict=True))
    return {block.field: list(choices)} if block.field is not None else {}


def derive_all(suite: Suite, perturbations: list[Perturbation]) -> list[Suite]:
    """One derived suite per perturbation, in order."""
    return [derive(suite, p) for p in perturbations]
