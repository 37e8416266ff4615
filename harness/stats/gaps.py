"""Group gaps: how far apart the best and the worst group of items score.

For a data field that puts items in groups (a dialect, a demographic term, a topic),
each group's mean gets a percentile-bootstrap interval, and the largest gap (best
group's mean minus worst group's mean) gets one too: each round resamples every
group's items within the group (so every group keeps its size), recomputes the group
means, and takes the largest minus the smallest. The interval is the 2.5th to 97.5th
percentile of that gap over the rounds.

Limits (docs/beyond_accuracy.md): the gap and its bootstrap are biased upward when
groups are small and many (a noisy group is likelier to be the best or the worst), so
even the interval's lower bound can sit above the true gap; groups smaller than
``min_items`` are reported but left out of the gap for that reason. An item whose
field holds a list counts in each of its groups, which the resampling treats as
independent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.stats.bootstrap import DEFAULT_ROUNDS, bootstrap_mean_ci


@dataclass(frozen=True)
class GroupScore:
    group: str
    mean: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class GroupGap:
    """The largest gap between groups of one field, for one metric."""

    metric: str
    field: str
    groups: tuple[GroupScore, ...]  # best first
    gap: float  # nan when fewer than two groups have min_items
    ci_low: float
    ci_high: float
    best: str | None
    worst: str | None


def group_gap(metric: str, field: str, values: Mapping[str, Sequence[float]], *,
              seed: int = 0, rounds: int = DEFAULT_ROUNDS, min_items: int = 5) -> GroupGap:
    """``values``: each group's per-item metric values."""
    scores = sorted((GroupScore(group, *bootstrap_mean_ci(v, seed=seed, rounds=rounds),
                                len(v))
                     for group, v in values.items() if len(v)),
                    key=lambda s: (-s.mean, s.group))
    kept = [s for s in scores if s.n >= min_items]
    if len(kept) < 2:
        nan = float("nan")
        return GroupGap(metric, field, tuple(scores), nan, nan, nan, None, None)
    rng = np.random.default_rng(seed)
    means = np.empty((rounds, len(kept)))
    for column, score in enumerate(kept):
        data = np.asarray(values[score.group], dtype=float)
        picks = rng.integers(0, data.size, size=(rounds, data.size))
        means[:, column] = data[picks].mean(axis=1)
    gaps = means.max(axis=1) - means.min(axis=1)
    low, high = np.percentile(gaps, [2.5, 97.5])
    return GroupGap(metric, field, tuple(scores), kept[0].mean - kept[-1].mean,
                    float(low), float(high), kept[0].group, kept[-1].group)
