"""Building a run's samples and requests from a loaded suite. Pure: writes nothing.

Split from harness/suites/config.py, which loads and validates suites: everything
here may assume a suite that passed validation, so the only errors left are
per-item rendering errors (a template that fails on one row), reported with
the item's id.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any

from harness.errors import SuiteError
from harness.suites.config import Suite, SuiteConfig, render_item
from harness.suites.perturbed import perturb_row, shown_fields, shuffled_order
from harness.suites.turns import turn_doc, turn_id, user_message
from harness.types import GenerationParams, Message, Request, RequestKind, Sample


def select_rows(suite: Suite, limit: int | None, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """(sample id, row) pairs; with a limit, a seeded subset kept in data order."""
    id_field = suite.config.data.id_field
    items = [(str(row[id_field]) if id_field else str(i), row) for i, row in enumerate(suite.rows)]
    if limit is not None and limit < len(items):
        chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
        items = [items[i] for i in chosen]
    return items


def build_requests(suite: Suite, model_id: str, limit: int | None, seed: int
                   ) -> list[tuple[Sample, Request]]:
    """Every sample of the run with its request. Pure: touches no database.

    For a conversation these are its first turns; the runner builds each later turn
    from the stored answers to the one before (harness/suites/turns.py)."""
    config = suite.config
    source = str(suite.file)
    gen = config.generation
    params = GenerationParams(gen.max_tokens, gen.temperature, gen.top_p, tuple(gen.stop),
                              gen.n, gen.seed)
    built = []
    for sample_id, row in select_rows(suite, limit, seed):
        if config.prompt.turns is not None:
            built.append(_first_turn(suite, model_id, sample_id, row, params))
            continue
        # a perturbation changes what the model is shown, never the item: the target, the
        # sample's row (what metrics read) and the choices' order seed come from the row;
        # the sample's choices are the shown ones (acc_norm divides by what was scored)
        shown = perturb_row(config, row, sample_id)
        listed = _listed_choices(config, shown)
        order = _order(config, row, len(listed), perturbed=True)
        choices = tuple(listed[i] for i in order)
        shown = {**shown, **shown_fields(config, choices)}  # shuffled choices, as shown
        context = {**shown, "doc": shown, "choices": list(choices)}
        target = _render(source, "target", config.target,
                         {**row, "doc": row, "choices": list(choices)}, sample_id).strip()
        sample = Sample(sample_id, row, _target_value(config, target, choices, source, sample_id,
                                                      order), choices)
        shots = _fewshot(suite, sample_id, row)
        if config.kind == "multiple_choice":
            continuations = tuple(
                _render(source, "choices.template", config.choices.template,  # type: ignore[union-attr]
                        _choice_context(config, context, choices, i), sample_id)
                for i in range(len(choices)))
            request = _request(suite, RequestKind.LOGLIKELIHOOD, model_id, context, shots,
                               sample_id, params, continuations)
        else:
            request = _request(suite, RequestKind.GENERATE, model_id, context, shots,
                               sample_id, params, ())
        built.append((sample, request))
    return built


def _first_turn(suite: Suite, model_id: str, item_id: str, row: dict[str, Any],
                params: GenerationParams) -> tuple[Sample, Request]:
    config = suite.config
    source = str(suite.file)
    sample_id = turn_id(item_id, 1)
    doc = turn_doc(row, item_id, 1)
    context = {**doc, "doc": doc, "choices": []}
    target = _render(source, "target", config.target, context, sample_id).strip()
    messages = [] if config.prompt.system is None else [
        Message("system", _render(source, "prompt.system", config.prompt.system, context,
                                  sample_id))]
    messages.append(Message("user", user_message(config, source, doc, 1, sample_id)))
    return (Sample(sample_id, doc, target, ()),
            Request(RequestKind.GENERATE, model_id, messages=tuple(messages), params=params))


def _request(suite: Suite, kind: RequestKind, model_id: str, context: dict[str, Any],
             shots: list[dict[str, Any]], sample_id: str, params: GenerationParams,
             continuations: tuple[str, ...]) -> Request:
    prompt = suite.config.prompt
    source = str(suite.file)
    examples = [(_shot_prompt(suite, shot, sample_id), _shot_answer(suite, shot, sample_id))
                for shot in shots]
    if prompt.text is not None:
        separator = suite.config.fewshot.separator if suite.config.fewshot else ""
        parts = [q + a for q, a in examples]
        parts.append(_render(source, "prompt.text", prompt.text, context, sample_id))
        preamble = ("" if prompt.preamble is None else
                    _render(source, "prompt.preamble", prompt.preamble, context, sample_id))
        return Request(kind, model_id, text=preamble + separator.join(parts),
                       continuations=continuations, params=params)
    messages: list[Message] = []
    if prompt.system is not None:
        messages.append(Message("system", _render(source, "prompt.system", prompt.system,
                                                  context, sample_id)))
    for question, answer in examples:
        messages += [Message("user", question), Message("assistant", answer.strip())]
    messages.append(Message("user", _render(source, "prompt.user", prompt.user or "", context,
                                            sample_id)))
    return Request(kind, model_id, messages=tuple(messages), continuations=continuations,
                   params=params)


def _shot_prompt(suite: Suite, row: dict[str, Any], sample_id: str) -> str:
    prompt = suite.config.prompt
    template = prompt.text if prompt.text is not None else prompt.user or ""
    context = {**row, "doc": row, "choices": list(_choices(suite.config, row))}
    return _render(str(suite.file), "prompt", template, context, sample_id)


def _shot_answer(suite: Suite, row: dict[str, Any], sample_id: str) -> str:
    config = suite.config
    choices = _choices(config, row)
    context = {**row, "doc": row, "choices": list(choices)}
    assert config.fewshot is not None
    if config.fewshot.answer is not None:
        return _render(str(suite.file), "fewshot.answer", config.fewshot.answer, context, sample_id)
    target = _render(str(suite.file), "target", config.target, context, sample_id).strip()
    index = _target_value(config, target, choices, str(suite.file), sample_id,
                          _order(config, row, len(choices)))
    assert config.choices is not None and isinstance(index, int)
    return _render(str(suite.file), "choices.template", config.choices.template,
                   _choice_context(config, context, choices, index), sample_id)


def _choice_context(config: SuiteConfig, context: dict[str, Any], choices: tuple[str, ...],
                    index: int) -> dict[str, Any]:
    """A choice template sees the choice's text and its label (A, B, ... or its index)."""
    labels = (config.choices.labels if config.choices else None) or []
    label = labels[index] if index < len(labels) else str(index)
    return {**context, "choice": choices[index], "label": label}


def _fewshot(suite: Suite, sample_id: str, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Examples for one item, never the item itself. ``random``: seeded per item, so they
    do not depend on --limit; ``first``: the pool's first n rows (after ``same_field``) in
    data order, the same for every item of a group except those that are among them."""
    fewshot = suite.config.fewshot
    if fewshot is None:
        return []
    id_field = suite.config.data.id_field
    pool = suite.fewshot_rows
    if pool is suite.rows:  # never show an item its own answer
        pool = [r for i, r in enumerate(pool)
                if (str(r[id_field]) if id_field else str(i)) != sample_id]
    if fewshot.same_field is not None:
        value = row[fewshot.same_field]
        pool = [r for r in pool if r.get(fewshot.same_field) == value]
    if fewshot.sampler == "first":
        return pool[:fewshot.n]
    rng = random.Random(f"{fewshot.seed}:{sample_id}")
    return rng.sample(pool, min(fewshot.n, len(pool)))


def _choices(config: SuiteConfig, row: dict[str, Any]) -> tuple[str, ...]:
    """The item's choices, in the order they are shown (``_order``)."""
    listed = _listed_choices(config, row)
    return tuple(listed[i] for i in _order(config, row, len(listed)))


def _listed_choices(config: SuiteConfig, row: dict[str, Any]) -> tuple[str, ...]:
    if config.choices is None:
        return ()
    if config.choices.fields is not None:
        return tuple(str(row[f]) for f in config.choices.fields)
    if config.choices.values is not None:
        return tuple(config.choices.values)
    if config.choices.pattern is not None:
        text = str(row[config.choices.field or ""])
        return tuple(m if isinstance(m, str) else m[0]
                     for m in re.findall(config.choices.pattern, text))
    return tuple(str(c) for c in row[config.choices.field or ""])


def _order(config: SuiteConfig, row: dict[str, Any], n: int, perturbed: bool = False
           ) -> list[int]:
    """Shown position -> listed index. With ``choices.shuffle`` the order is drawn from
    the seed and the row itself, so an item's order is the same whether it is asked or
    shown as another item's example, and does not depend on --limit. ``perturbed``: an
    asked item of a ``shuffle_choices`` suite, whose examples keep their order."""
    seed = config.choices.shuffle if config.choices is not None else None
    order = list(range(n))
    if seed is not None:
        row_hash = hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode())
        random.Random(f"{seed}:{row_hash.hexdigest()}").shuffle(order)
    return shuffled_order(config, row, order) if perturbed else order


def _target_value(config: SuiteConfig, target: str, choices: tuple[str, ...], source: str,
                  sample_id: str, order: list[int] | None = None) -> str | int:
    """The reference answer; for multiple choice the right choice's shown position (the
    target names it by its listed index or label, before any shuffle)."""
    if config.kind != "multiple_choice":
        return target
    labels = (config.choices.labels if config.choices else None) or []
    if target in labels:
        index = labels.index(target)
    elif target.lstrip("-").isdigit():
        index = int(target)
    else:
        raise SuiteError(source, "target",
                         f"item {sample_id}: {target!r} is neither a choice index nor a label")
    if not 0 <= index < len(choices):
        raise SuiteError(source, "target", f"item {sample_id}: choice {index} out of range")
    return order.index(index) if order is not None else index


_render = render_item
