"""The optional ``stats:`` block of a suite: clustering and per-slice breakdowns.

``cluster`` names a data field whose equal values mark items that share a
source (one passage, one conversation): the bootstrap then resamples whole
clusters. ``slices`` name data fields to break every metric down by (a list
value, such as tags, puts the item in each of its groups), and ``length``
buckets items by prompt or answer length. Like the judge block, it changes how
answers are summarised, not the answers, so it is left out of the suite's hash.
docs/statistics.md explains the methods.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.errors import SuiteError
from harness.types import Completion, Sample, SliceSummary

MAX_GROUPS = 200  # distinct values a slice field may have: more is a per-item id, not a slice
LENGTH_SLICE = "length"
# what a length bucket measures besides a data field's length in characters
TOKEN_LENGTHS = ("prompt_tokens", "output_tokens")


class LengthBuckets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    of: str = "prompt_tokens"  # prompt_tokens | output_tokens | a data field (characters)
    edges: list[int] = Field(min_length=1)  # [64, 256] → <64, 64-255, >=256

    @field_validator("edges")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(b <= a for a, b in pairwise(value)) or value[0] < 1:
            raise ValueError("edges must be positive and strictly increasing")
        return value


class StatsConfig(BaseModel):
    """docs/statistics.md documents every field."""

    model_config = ConfigDict(extra="forbid")
    cluster: str | None = None  # data field: items sharing its value are resampled together
    slices: list[str] = []  # data fields to break metrics down by
    length: LengthBuckets | None = None


def check_stats(config: StatsConfig, suite_file: Path, rows: list[dict[str, Any]]) -> None:
    """Every field the block names exists in the data; slices are groups, not ids."""
    source = str(suite_file)
    fields = set.intersection(*(set(r) for r in rows[:1000]))
    named = [("stats.cluster", config.cluster)]
    named += [(f"stats.slices.{i}", f) for i, f in enumerate(config.slices)]
    if config.length is not None and config.length.of not in TOKEN_LENGTHS:
        named.append(("stats.length.of", config.length.of))
    for where, field in named:
        if field is not None and field not in fields:
            raise SuiteError(source, where, f"the data has no field {field!r} "
                             f"(fields: {', '.join(sorted(fields))})")
    for i, field in enumerate(config.slices):
        groups = {g for row in rows for g in groups_of(row[field])}
        if len(groups) > MAX_GROUPS:
            raise SuiteError(source, f"stats.slices.{i}", f"{field!r} has {len(groups)} distinct "
                             f"values (at most {MAX_GROUPS}); a slice groups items")


def cluster_labels(config: StatsConfig | None, samples: Sequence[Sample]) -> list[str] | None:
    if config is None or config.cluster is None:
        return None
    return [_text(s.doc.get(config.cluster)) for s in samples]


def item_groups(config: StatsConfig | None, sample: Sample,
                completion: Completion | None) -> list[tuple[str, str]]:
    """The (slice, group) pairs an item belongs to; an unanswered item has no token length."""
    if config is None:
        return []
    found = [(field, group) for field in config.slices
             for group in groups_of(sample.doc.get(field))]
    buckets = config.length
    if buckets is not None:
        length: int | None
        if buckets.of == "prompt_tokens":
            length = completion.prompt_tokens if completion is not None else None
        elif buckets.of == "output_tokens":
            length = completion.output_tokens if completion is not None else None
        else:
            length = len(_text(sample.doc.get(buckets.of)))
        if length is not None:
            found.append((LENGTH_SLICE, bucket_label(length, buckets.edges)))
    return found


def bucket_label(length: int, edges: Sequence[int]) -> str:
    """``<64``, ``64-255``, ``>=256`` for edges [64, 256]."""
    if length < edges[0]:
        return f"<{edges[0]}"
    for low, high in pairwise(edges):
        if length < high:
            return f"{low}-{high - 1}"
    return f">={edges[-1]}"


Aggregate = Callable[[list[Any], list[str] | None], tuple[float, float, float]]


def summarize_slices(metric: str, results: Sequence[Any], groups: Sequence[list[tuple[str, str]]],
                     missing_groups: Sequence[list[tuple[str, str]]], clusters: list[str] | None,
                     aggregate: Aggregate) -> list[SliceSummary]:
    """One summary per (slice, group): ``aggregate`` over the group's results (and clusters)."""
    members: dict[tuple[str, str], list[int]] = {}
    for index, pairs in enumerate(groups):
        for pair in pairs:
            members.setdefault(pair, []).append(index)
    errors: dict[tuple[str, str], int] = {}
    for pairs in missing_groups:
        for pair in pairs:
            errors[pair] = errors.get(pair, 0) + 1
            members.setdefault(pair, [])
    out = []
    nan = float("nan")
    for (name, group), indices in sorted(members.items(), key=_display_order):
        chosen = [clusters[i] for i in indices] if clusters is not None else None
        value, low, high = (aggregate([results[i] for i in indices], chosen) if indices
                            else (nan, nan, nan))
        out.append(SliceSummary(metric, name, group, value, low, high, len(indices),
                                errors.get((name, group), 0)))
    return out


def _display_order(item: tuple[tuple[str, str], list[int]]) -> tuple[str, float, str]:
    """Slices by name; groups by name, length buckets from short to long."""
    (name, group), _ = item
    if name == LENGTH_SLICE:
        bound = group.lstrip("<>=").split("-")[0]
        return name, -1.0 if group.startswith("<") else float(bound), group
    return name, 0.0, group


def groups_of(value: Any) -> list[str]:
    """The groups a data field's value puts an item in: each element of a list."""
    if isinstance(value, list | tuple):
        return sorted({_text(v) for v in value})
    return [_text(value)]


def _text(value: Any) -> str:
    return "" if value is None else str(value)
