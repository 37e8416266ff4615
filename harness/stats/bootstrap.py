"""Uncertainty for aggregates: every mean the harness reports carries a CI.

Items are resampled independently unless they share a source (several
questions about one passage, several turns of one conversation): then whole
clusters are resampled, because items of one cluster succeed or fail together
and treating them as independent makes the interval too narrow
(docs/statistics.md; tests/stats/test_stats.py measures both coverages).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

DEFAULT_ROUNDS = 2000
_BLOCK_CELLS = 4_000_000  # resample in blocks of this many draws to bound memory


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray, *, seed: int = 0, rounds: int = DEFAULT_ROUNDS,
    level: float = 0.95, clusters: Sequence[Hashable] | np.ndarray | None = None,
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval (seeded, so reports are reproducible).

    ``clusters`` gives each value's cluster label: whole clusters are then
    resampled and each round's statistic is the mean over the items drawn
    (a ratio estimator, so clusters of different sizes weigh by their size).
    With fewer than two values (or clusters) there is nothing to resample: the
    interval is the point itself.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(data.mean())
    if clusters is None:
        sums, counts = data, None
    else:
        if len(clusters) != data.size:
            raise ValueError(f"{len(clusters)} cluster labels for {data.size} values")
        labels = np.asarray(clusters)
        if labels.dtype == object:  # mixed types: compare their text
            labels = labels.astype(str)
        _, codes = np.unique(labels, return_inverse=True)
        sums = np.bincount(codes, weights=data)
        counts = np.bincount(codes).astype(float)
    if sums.size < 2:
        return mean, mean, mean
    means = resampled_means(sums, counts, np.random.default_rng(seed), rounds)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, float(low), float(high)


def resampled_means(sums: np.ndarray, counts: np.ndarray | None, rng: np.random.Generator,
                    rounds: int) -> np.ndarray:
    """``rounds`` bootstrap means: units (items or clusters) drawn with replacement,
    each carrying its sum of values and its number of items (``None``: one each).

    Most metrics are 0/1, so most units are alike: drawing how many copies of each
    distinct unit a resample holds (one multinomial draw) is the same distribution
    as drawing the units one by one, at a cost independent of the number of items.
    """
    units = sums.size
    weights = np.ones(units) if counts is None else counts
    distinct, multiplicity = np.unique(np.stack([sums, weights], axis=1), axis=0,
                                       return_counts=True)
    if len(distinct) * 8 <= units:
        draws = rng.multinomial(units, multiplicity / units, size=rounds).astype(float)
        return (draws @ distinct[:, 0]) / (draws @ distinct[:, 1])
    means = np.empty(rounds)
    block = max(1, _BLOCK_CELLS // units)
    for start in range(0, rounds, block):
        stop = min(rounds, start + block)
        idx = rng.integers(0, units, size=(stop - start, units))
        if counts is None:
            means[start:stop] = sums[idx].mean(axis=1)
        else:
            means[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    return means
