"""Uncertainty for aggregates: every mean the harness reports carries a CI."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_ROUNDS = 2000


def bootstrap_mean_ci(
    values: Sequence[float], *, seed: int = 0, rounds: int = DEFAULT_ROUNDS, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval (seeded, so reports are reproducible).

    With fewer than two values there is nothing to resample: the interval is
    the widest one the metric allows for 0/1 data, [0, 1], or the point itself.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(data.mean())
    if data.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    # resample in blocks to bound memory for large suites
    means = np.empty(rounds)
    block = max(1, 4_000_000 // data.size)
    for start in range(0, rounds, block):
        stop = min(rounds, start + block)
        idx = rng.integers(0, data.size, size=(stop - start, data.size))
        means[start:stop] = data[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, float(low), float(high)
