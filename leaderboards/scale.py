"""The rating scale shared by every method, and how ratings are pinned to it.

Bradley-Terry strengths are only defined up to an additive constant (the
likelihood depends on differences), so every method reports on the familiar
Elo scale: a gap of ``SCALE`` points means odds of ``BASE`` to 1. The constant
is fixed by an *anchor*: either the pool mean sits at 1000, or one named model
is pinned to a value. Keeping this in one place guarantees BT, Elo, bootstrap
and sandwich intervals all use the same convention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import expit

SCALE = 400.0
BASE = 10.0
INITIAL = 1000.0

# ``anchor`` accepted everywhere: None (pool mean = 1000), a model name (that
# model = 1000) or (model name, value).
Anchor = str | tuple[str, float] | None


def points_per_nat(scale: float = SCALE, base: float = BASE) -> float:
    """Elo points per unit of natural-log strength (≈173.7 for 400/ln 10)."""
    return scale / math.log(base)


def resolve_anchor(models: Sequence[str], anchor: Anchor) -> tuple[int | None, float]:
    """Turn a user anchor into (model index or None for the mean, value)."""
    if anchor is None:
        return None, INITIAL
    if isinstance(anchor, str):
        name, value = anchor, INITIAL
    else:
        name, value = anchor[0], float(anchor[1])
    if not math.isfinite(value):
        raise ValueError(f"anchor value must be finite, got {value!r}")
    try:
        return list(models).index(name), value
    except ValueError:
        raise ValueError(f"anchor model {name!r} is not among the rated models") from None


def anchor_points(
    points: np.ndarray, index: int | None, value: float, axis: int = -1
) -> np.ndarray:
    """Shift ratings (in points, models along ``axis``) so the anchor holds.

    Works on one rating vector or a stack of bootstrap rounds; the shift is
    computed separately for every vector so each round is anchored the same way.
    """
    if index is None:
        ref = points.mean(axis=axis, keepdims=True)
    else:
        ref = np.take(points, [index], axis=axis)
    return points - ref + value


def anchor_matrix(n_models: int, index: int | None) -> np.ndarray:
    """The linear map from raw strengths to anchored ratings (without the offset).

    Used to carry a covariance matrix over to the anchored ratings: with the
    mean anchor it is the centring matrix, with a named anchor it subtracts
    that model's strength from everybody (so the anchor's own variance is 0).
    """
    eye = np.eye(n_models)
    if index is None:
        return eye - np.full((n_models, n_models), 1.0 / n_models)
    eye[:, index] -= 1.0
    return eye


def win_probability(
    diff_points: np.ndarray | float, scale: float = SCALE, base: float = BASE
) -> np.ndarray:
    """P(first beats second) for a rating difference in points, ties counted as half.

    Computed with the logistic function so huge gaps give 0/1, never overflow.
    """
    return expit(np.asarray(diff_points, dtype=float) / points_per_nat(scale, base))
