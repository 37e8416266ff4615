"""Conversations: a suite whose prompt is ``turns``, one user message per turn.

Turn k of an item is its own sample and its own stored request: the request's
messages are the whole conversation so far, the model's own answers to turns
1..k-1 included, so it can only be built once those answers are stored. The
runner therefore works turn by turn (``next_turn``), and a run killed after
turn 1 resumes at turn 2: turn 1's requests are found in the store, their
answers rebuild exactly the same turn-2 requests, and nothing is sent twice.

A turn's sample id is ``<item id>#<turn>`` and its data row gains ``turn`` (from
1) and ``conversation`` (the item id, which the turns of one item share), so
every metric, judge grade and breakdown is per turn and CIs resample whole
conversations (``effective_stats``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.stats.slices import StatsConfig
from harness.suites.config import SuiteConfig, render_item
from harness.types import Message, Request, Sample

SEPARATOR = "#"


def turn_count(config: SuiteConfig) -> int:
    """How many turns each item has: 1 unless the prompt is a conversation."""
    return len(config.prompt.turns) if config.prompt.turns is not None else 1


def turn_id(item_id: str, turn: int) -> str:
    return f"{item_id}{SEPARATOR}{turn}"


def split_turn_id(sample_id: str) -> tuple[str, int]:
    """(item id, turn) of a conversation's sample id; an item id may itself hold '#'."""
    item, _, turn = sample_id.rpartition(SEPARATOR)
    return item, int(turn)


def turn_doc(row: Mapping[str, Any], item_id: str, turn: int) -> dict[str, Any]:
    return {**row, "turn": turn, "conversation": item_id}


def user_message(config: SuiteConfig, source: str, doc: Mapping[str, Any], turn: int,
                 sample_id: str) -> str:
    """Turn ``turn``'s user message, rendered over the item's row (and ``turn``)."""
    turns = config.prompt.turns or []
    return _render(source, f"prompt.turns.{turn - 1}", turns[turn - 1], doc, sample_id)


def _render(source: str, field: str, template: str, doc: Mapping[str, Any],
            sample_id: str) -> str:
    return render_item(source, field, template, {**doc, "doc": doc, "choices": []}, sample_id)


def next_turn(config: SuiteConfig, source: str, previous: Sequence[tuple[Sample, Request]],
              answers: Mapping[str, str]) -> list[tuple[Sample, Request]]:
    """The next turn of every conversation whose previous turn has an answer.

    ``answers`` maps a sample id to the model's first text for it (sent back stripped
    of surrounding whitespace, as MT-Bench does); a conversation
    whose last turn has no answer (an error, retried on the next run) waits, and
    one that had its last turn stops."""
    built = []
    for sample, request in previous:
        item, turn = split_turn_id(sample.id)
        if turn >= turn_count(config) or sample.id not in answers:
            continue
        doc = turn_doc(sample.doc, item, turn + 1)
        sample_id = turn_id(item, turn + 1)
        assert request.messages is not None  # a conversation is always chat
        messages = (*request.messages, Message("assistant", answers[sample.id].strip()),
                    Message("user", user_message(config, source, doc, turn + 1, sample_id)))
        target = _render(source, "target", config.target, doc, sample_id).strip()
        built.append((Sample(sample_id, doc, target, ()),
                      Request(request.kind, request.model, messages=messages,
                              params=request.params)))
    return built


def effective_stats(config: SuiteConfig) -> StatsConfig | None:
    """The suite's ``stats:`` block; for a conversation, every metric is also broken
    down by turn and, unless the suite names another cluster, resampled by conversation."""
    if config.prompt.turns is None:
        return config.stats
    stats = config.stats or StatsConfig()
    slices = stats.slices if "turn" in stats.slices else ["turn", *stats.slices]
    return stats.model_copy(update={"slices": slices,
                                    "cluster": stats.cluster or "conversation"})
