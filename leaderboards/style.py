"""Bradley-Terry with a style covariate ("style control") for answer length.

Judges and voters tend to prefer longer answers. Adding the normalised length
difference as a covariate, logit P(a beats b) = θ_a - θ_b + β·x_ab, separates
"better model" from "writes more": θ is then the strength at equal length and
β says how many rating points a length advantage is worth.

To keep the cost proportional to model pairs rather than battles, battles are
aggregated into cells — (model_a, model_b, feature-quantile bin) — and each
cell carries the mean feature of its battles (:func:`style_counts`). That is a
first-order approximation (the logistic link is nearly linear across one bin)
which becomes exact as bins shrink; β needs the within-pair variation the bins
keep (see :func:`style_counts`). Errors come from the sandwich covariance,
which covers β too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .battles import BattleCounts, encode_models, outcome_masks
from .bradley_terry import DEFAULT_PRIOR_SD, BTFit, finish_fit
from .scale import BASE, SCALE, Anchor


def normalised_length_diff(len_a: np.ndarray, len_b: np.ndarray) -> np.ndarray:
    """(len_a - len_b) / (len_a + len_b), in [-1, 1]; 0 when both are empty.

    Relative rather than absolute: 100 vs 200 tokens is as much "longer" as
    1000 vs 2000, which matches how length bias behaves.
    """
    la, lb = np.asarray(len_a, dtype=float), np.asarray(len_b, dtype=float)
    total = la + lb
    return np.divide(la - lb, total, out=np.zeros_like(total), where=total > 0)


def style_counts(
    model_a: Sequence[str] | np.ndarray,
    model_b: Sequence[str] | np.ndarray,
    outcome: Sequence[str] | np.ndarray,
    feature: Sequence[float] | np.ndarray,
    *,
    bins: int = 16,
    models: Sequence[str] | None = None,
) -> tuple[BattleCounts, np.ndarray]:
    """Counts per (model_a, model_b, feature bin) cell and each cell's mean feature.

    The effect of length is only identified by *within-pair* variation: the
    pair means of a length difference are close to additive per model
    (verbose model minus terse model), which θ absorbs. Splitting every pair
    into ``bins`` cells by feature quantile (edges from all battles) keeps that
    variation while the cost stays proportional to pairs × bins, not battles.
    ``bins=1`` gives one cell per pair (the pair-mean approximation). The
    returned counts may repeat a pair once per non-empty bin; pass both to
    :func:`fit_bt_style`.
    """
    names, a, b = encode_models(model_a, model_b, models)
    is_a, is_b, is_t = outcome_masks(outcome, len(a))
    x = np.asarray(feature, dtype=float).reshape(-1)
    if len(x) != len(a) or not np.all(np.isfinite(x)):
        raise ValueError("feature must be finite and have one value per battle")
    if bins < 1:
        raise ValueError("bins must be at least 1")
    edges = np.quantile(x, np.linspace(0.0, 1.0, bins + 1)[1:-1]) if len(x) else np.zeros(0)
    cell = (a * len(names) + b) * bins + np.searchsorted(edges, x, side="right")
    keys, inv = np.unique(cell, return_inverse=True)
    k = len(keys)
    sizes = np.bincount(inv, minlength=k)
    pair = keys // bins
    counts = BattleCounts(
        models=names,
        pair_a=pair // len(names),
        pair_b=pair % len(names),
        wins_a=np.bincount(inv, is_a, k),
        wins_b=np.bincount(inv, is_b, k),
        ties=np.bincount(inv, is_t, k),
    )
    return counts, np.bincount(inv, x, k) / sizes


def fit_bt_style(
    counts: BattleCounts,
    length_diff: Sequence[float] | np.ndarray,
    *,
    anchor: Anchor = None,
    prior_sd: float | None = DEFAULT_PRIOR_SD,
    scale: float = SCALE,
    base: float = BASE,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> BTFit:
    """Style-controlled Bradley-Terry; ``length_diff`` has one value per pair (cell) of ``counts``.

    Use :func:`style_counts` to build both. Pairs stay ordered here (the
    feature of (a, b) is minus that of (b, a)).
    The fitted ``coef[0]`` is in rating points per unit of ``length_diff``.
    """
    x = np.asarray(length_diff, dtype=float).reshape(-1)
    if len(x) != len(counts.pair_a):
        raise ValueError(f"length_diff has {len(x)} values for {len(counts.pair_a)} pairs")
    if not np.all(np.isfinite(x)):
        raise ValueError("length_diff must be finite")
    keep = counts.n > 0
    pairs = BattleCounts(
        counts.models,
        counts.pair_a[keep],
        counts.pair_b[keep],
        counts.wins_a[keep],
        counts.wins_b[keep],
        counts.ties[keep],
    )
    return finish_fit(
        counts,
        pairs,
        x[keep, None],
        ("length",),
        anchor=anchor,
        prior_sd=prior_sd,
        scale=scale,
        base=base,
        tol=tol,
        max_iter=max_iter,
    )
