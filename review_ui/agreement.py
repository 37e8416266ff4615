"""Inter-annotator agreement: Fleiss' kappa and Krippendorff's alpha.

Both take *units*: for each item, the list of values the annotators gave it
(any number of annotators per item; items with fewer than two values carry no
information about agreement and are ignored). Fleiss' kappa treats values as
unordered categories; Krippendorff's alpha can also treat them as numbers
(``interval``), which suits 1-5 ratings where 4 vs 5 is a smaller
disagreement than 1 vs 5. Both return NaN when agreement is undefined (fewer
than two usable items, or every value identical so that no disagreement was
even possible).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np

Metric = Literal["nominal", "interval"]


def _usable(units: Sequence[Sequence[Hashable]]) -> list[Sequence[Hashable]]:
    return [u for u in units if len(u) >= 2]


def fleiss_kappa(units: Sequence[Sequence[Hashable]]) -> float:
    """Fleiss' kappa, with the per-item agreement averaged over items of any size."""
    usable = _usable(units)
    if len(usable) < 2:
        return math.nan
    totals: Counter[Hashable] = Counter()
    observed = []
    for unit in usable:
        counts = Counter(unit)
        totals.update(counts)
        n = len(unit)
        observed.append(sum(c * (c - 1) for c in counts.values()) / (n * (n - 1)))
    all_values = sum(totals.values())
    expected = sum((c / all_values) ** 2 for c in totals.values())
    if expected >= 1.0:
        return math.nan
    return (float(np.mean(observed)) - expected) / (1.0 - expected)


def krippendorff_alpha(units: Sequence[Sequence[Hashable]], metric: Metric = "nominal") -> float:
    """Krippendorff's alpha from the coincidence matrix of pairable values."""
    usable = _usable(units)
    values = sorted({v for unit in usable for v in unit}, key=str)
    if len(usable) < 1 or len(values) < 2:
        return math.nan
    index = {v: i for i, v in enumerate(values)}
    coincidence = np.zeros((len(values), len(values)))
    for unit in usable:
        counts = np.zeros(len(values))
        for v in unit:
            counts[index[v]] += 1
        # each ordered pair of values from different annotators, weighted 1/(m_u - 1)
        coincidence += (np.outer(counts, counts) - np.diag(counts)) / (len(unit) - 1)
    marginals = coincidence.sum(axis=1)
    total = marginals.sum()
    if metric == "nominal":
        delta = 1.0 - np.eye(len(values))
    elif metric == "interval":
        numeric = np.array([float(v) for v in values])  # type: ignore[arg-type]
        delta = (numeric[:, None] - numeric[None, :]) ** 2
    else:
        raise ValueError(f"unknown metric {metric!r}")
    observed = float((coincidence * delta).sum()) / total
    expected = float((np.outer(marginals, marginals) * delta).sum()) / (total * (total - 1))
    if expected == 0.0:
        return math.nan
    return 1.0 - observed / expected


def majority(values: Sequence[Hashable]) -> Hashable | None:
    """The strict plurality value, or None when the top is shared or there is nothing."""
    if not values:
        return None
    ranked = Counter(values).most_common(2)
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]
