"""Paired comparison of two runs, metric by metric: is B better or worse than A?

Pure functions over arrays of per-item scores, already matched by item (run A's
value and run B's value for the same sample id, in the same order). The
difference is always B − A; ``higher_is_better`` turns it into a verdict.

- interval: paired percentile bootstrap of the mean difference (whole clusters
  resampled when items share a source);
- p-value: exact McNemar (binomial test on the discordant pairs) for 0/1
  scores on independent items, otherwise a sign-flip permutation test (exact
  enumeration up to 2^16 flips, seeded Monte Carlo beyond), flipping whole
  clusters when there are clusters;
- Holm's step-down correction across the metrics compared together.

docs/statistics.md gives the reasons for each choice.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from harness.stats.bootstrap import DEFAULT_ROUNDS, bootstrap_mean_ci

PERMUTATIONS = 20_000  # Monte Carlo sign flips when exact enumeration is too large
EXACT_UNITS = 16  # up to this many items (clusters), all 2^n sign flips are enumerated
_BLOCK_CELLS = 2_000_000


@dataclass(frozen=True)
class PairedResult:
    metric: str
    n: int  # items scored in both runs
    a: float  # mean of run A over those items
    b: float
    diff: float  # b − a
    ci_low: float
    ci_high: float
    p: float
    test: str  # mcnemar-exact | sign-flip | sign-flip-clustered
    p_holm: float = math.nan
    verdict: str = ""  # better | worse | not significant | within min-delta


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes.

    Only discordant pairs carry information; under H0 each is equally likely
    to favour either run, so their split is Binomial(discordant, 1/2)."""
    a_only = int(np.sum((a == 1) & (b == 0)))
    b_only = int(np.sum((a == 0) & (b == 1)))
    if a_only + b_only == 0:
        return 1.0
    from scipy.stats import binomtest  # here: scipy.stats takes 1.3 s to import

    return float(binomtest(b_only, a_only + b_only, 0.5).pvalue)


def sign_flip_p(diffs: np.ndarray, *, seed: int = 0, rounds: int = PERMUTATIONS,
                clusters: Sequence[Hashable] | np.ndarray | None = None) -> float:
    """Two-sided p-value of H0 "A and B are exchangeable within each pair (or cluster)".

    Each unit's summed difference keeps or flips its sign; the statistic is
    |sum of differences|. Exact over all 2^units flips when that is small,
    otherwise Monte Carlo with the add-one correction (never exactly 0)."""
    units = _unit_sums(np.asarray(diffs, dtype=float), clusters)
    units = units[units != 0]  # a zero difference is the same flipped or not
    if units.size == 0:
        return 1.0
    observed = abs(units.sum())
    tolerance = 1e-9 * max(1.0, observed)
    if units.size <= EXACT_UNITS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=units.size)))
        return float(np.mean(np.abs(signs @ units) >= observed - tolerance))
    rng = np.random.default_rng(seed)
    extreme = 0
    block = max(1, _BLOCK_CELLS // units.size)
    for start in range(0, rounds, block):
        size = min(block, rounds - start)
        signs = rng.integers(0, 2, size=(size, units.size)) * 2.0 - 1.0
        extreme += int(np.sum(np.abs(signs @ units) >= observed - tolerance))
    return (extreme + 1) / (rounds + 1)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (family-wise error control), in input order."""
    count = len(pvalues)
    order = sorted(range(count), key=lambda i: pvalues[i])
    adjusted = [0.0] * count
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (count - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def compare_metric(metric: str, a: Sequence[float], b: Sequence[float], *, seed: int = 0,
                   rounds: int = DEFAULT_ROUNDS,
                   clusters: Sequence[Hashable] | None = None) -> PairedResult:
    """One metric's paired difference B − A with its interval and (unadjusted) p-value."""
    first = np.asarray(a, dtype=float)
    second = np.asarray(b, dtype=float)
    if first.shape != second.shape:
        raise ValueError(f"{metric}: {first.size} values for A but {second.size} for B")
    diffs = second - first
    diff, low, high = bootstrap_mean_ci(diffs, seed=seed, rounds=rounds, clusters=clusters)
    binary = bool(np.isin(first, (0.0, 1.0)).all() and np.isin(second, (0.0, 1.0)).all())
    if binary and clusters is None:
        p, test = mcnemar_exact(first, second), "mcnemar-exact"
    else:
        p = sign_flip_p(diffs, seed=seed, clusters=clusters)
        test = "sign-flip" if clusters is None else "sign-flip-clustered"
    mean_a = float(first.mean()) if first.size else math.nan
    mean_b = float(second.mean()) if second.size else math.nan
    return PairedResult(metric, int(first.size), mean_a, mean_b, diff, low, high, p, test)


def decide(results: Sequence[PairedResult], higher_is_better: Sequence[bool], *,
           alpha: float = 0.05, min_delta: float = 0.0) -> list[PairedResult]:
    """Holm-adjust the p-values across ``results`` and give each a verdict for B.

    ``worse``/``better``: significant after Holm at ``alpha`` and the difference
    exceeds ``min_delta`` in that direction; a significant difference smaller
    than ``min_delta`` is ``within min-delta``."""
    adjusted = holm([r.p for r in results])
    decided = []
    for result, p_holm, up in zip(results, adjusted, higher_is_better, strict=True):
        gain = result.diff if up else -result.diff
        if p_holm >= alpha:
            verdict = "not significant"
        elif abs(gain) <= min_delta:
            verdict = "within min-delta"
        else:
            verdict = "better" if gain > 0 else "worse"
        decided.append(replace(result, p_holm=p_holm, verdict=verdict))
    return decided


def _unit_sums(diffs: np.ndarray, clusters: Sequence[Hashable] | np.ndarray | None
               ) -> np.ndarray:
    if clusters is None:
        return diffs
    labels = np.asarray(clusters)
    if labels.dtype == object:
        labels = labels.astype(str)
    _, codes = np.unique(labels, return_inverse=True)
    return np.bincount(codes, weights=diffs)
