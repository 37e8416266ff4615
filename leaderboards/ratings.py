"""One entry point from battles to a leaderboard: ratings, intervals, rank bounds.

:func:`fit_ratings` is pure (no I/O, seeded randomness), so a leaderboard can be
recomputed bit-for-bit from stored battles. Methods:

* ``"bt"`` — Bradley-Terry (ties = half wins), optionally style-controlled
  with a per-pair length covariate. Order-free: takes counts or battles.
* ``"elo"`` — online Elo in time order; needs the battle sequence itself.

Intervals: ``"bootstrap"`` (percentile, resampling battles within pairs),
``"sandwich"`` (robust normal approximation, BT only) or ``"none"`` (the
interval collapses to the rating). ``rank_ub`` is the best rank a model can
claim: 1 + the number of models whose lower bound is above its upper bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from .battles import Battle, BattleCounts
from .bootstrap import bootstrap_bt, percentile_interval, rank_upper_bound
from .bradley_terry import DEFAULT_PRIOR_SD, fit_bt, sandwich_intervals
from .elo import anchor_elo, elo_bootstrap, elo_ratings, encode_battles
from .scale import BASE, SCALE, Anchor, win_probability
from .style import fit_bt_style

Method = Literal["bt", "elo"]
CIMethod = Literal["bootstrap", "sandwich", "none"]


@dataclass(frozen=True)
class Ratings:
    """A fitted leaderboard; arrays are aligned with ``models`` and read-only."""

    models: tuple[str, ...]
    rating: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    rank_ub: np.ndarray
    n_battles: np.ndarray
    warnings: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("rating", "ci_low", "ci_high", "rank_ub", "n_battles"):
            arr = np.array(getattr(self, name))
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __getitem__(self, model: str) -> float:
        return float(self.rating[self.models.index(model)])

    def records(self) -> list[dict[str, Any]]:
        """One dict per model, best rating first (ties keep the model order)."""
        order = np.argsort(-self.rating, kind="stable")
        return [
            {
                "model": self.models[i],
                "rating": float(self.rating[i]),
                "ci_low": float(self.ci_low[i]),
                "ci_high": float(self.ci_high[i]),
                "rank_ub": int(self.rank_ub[i]),
                "n_battles": int(self.n_battles[i]),
            }
            for i in order
        ]


def fit_ratings(
    data: BattleCounts | Iterable[Battle],
    method: Method = "bt",
    ci: CIMethod = "bootstrap",
    rounds: int = 1000,
    seed: int = 0,
    anchor: Anchor = None,
    *,
    level: float = 0.95,
    prior_sd: float | None = DEFAULT_PRIOR_SD,
    length_diff: Sequence[float] | np.ndarray | None = None,
    k: float = 4.0,
    scale: float = SCALE,
    base: float = BASE,
    models: Sequence[str] | None = None,
) -> Ratings:
    """Fit ratings and intervals.

    ``data``: :class:`BattleCounts`, or ``(model_a, model_b, outcome)`` tuples
    in time order (required for Elo). ``length_diff`` (BT only) turns on style
    control; it has one value per pair of ``data``, a ``BattleCounts`` of
    (pair, length bin) cells from :func:`~.style.style_counts`.
    ``models`` fixes the model order / adds models without battles when
    ``data`` are tuples.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if ci not in ("bootstrap", "sandwich", "none"):
        raise ValueError(f"unknown ci method {ci!r}")
    params: dict[str, Any] = {
        "method": method,
        "ci": ci,
        "level": level,
        "anchor": anchor,
        "scale": scale,
        "base": base,
    }
    if ci == "bootstrap":
        params.update(rounds=rounds, seed=seed)
    if method == "elo":
        return _fit_elo(data, ci, rounds, seed, anchor, level, k, scale, base, models, params)
    if method != "bt":
        raise ValueError(f"unknown rating method {method!r}; expected 'bt' or 'elo'")

    counts = data if isinstance(data, BattleCounts) else BattleCounts.from_battles(data, models)
    if length_diff is None:
        fit = fit_bt(counts, anchor=anchor, prior_sd=prior_sd, scale=scale, base=base)
    else:
        if not isinstance(data, BattleCounts):
            raise ValueError("length_diff is per pair of a BattleCounts; pass counts, not tuples")
        if ci == "bootstrap":
            raise ValueError("style-controlled BT supports ci='sandwich' or 'none', not bootstrap")
        fit = fit_bt_style(
            counts, length_diff, anchor=anchor, prior_sd=prior_sd, scale=scale, base=base
        )
        params["style_coef"] = dict(zip(fit.coef_names, fit.coef.tolist(), strict=True))
    params.update(prior_sd=fit.prior_sd, iterations=fit.iterations)
    warnings = list(fit.warnings)
    if ci == "bootstrap":
        boot = bootstrap_bt(fit, rounds=rounds, seed=seed, level=level)
        low, high = boot.ci_low, boot.ci_high
        params.update(bootstrap_iterations=boot.iterations, bootstrap_refitted=boot.refitted)
    elif ci == "sandwich":
        low, high, _ = sandwich_intervals(fit, level)
    else:
        low, high = fit.ratings, fit.ratings
    return Ratings(
        models=counts.models,
        rating=fit.ratings,
        ci_low=low,
        ci_high=high,
        rank_ub=rank_upper_bound(low, high),
        n_battles=counts.n_battles,
        warnings=tuple(warnings),
        params=params,
    )


def _fit_elo(data, ci, rounds, seed, anchor, level, k, scale, base, models, params) -> Ratings:
    if isinstance(data, BattleCounts):
        raise TypeError("Elo needs the battles in time order; BattleCounts has lost the order")
    if ci == "sandwich":
        raise ValueError("sandwich intervals are only defined for Bradley-Terry ('bt')")
    battles = encode_battles(data, models)
    params["k"] = k
    rating = anchor_elo(elo_ratings(battles, k=k, scale=scale, base=base), battles.models, anchor)
    if ci == "bootstrap":
        samples = elo_bootstrap(battles, rounds=rounds, seed=seed, k=k, scale=scale, base=base)
        low, high = percentile_interval(anchor_elo(samples, battles.models, anchor), level)
    else:
        low, high = rating, rating
    n_battles = battles.n_battles
    warnings = []
    if (n_battles == 0).any():
        empty = [battles.models[i] for i in np.flatnonzero(n_battles == 0)]
        warnings.append(f"no battles: {', '.join(empty)} — Elo rating stays at the initial value")
    return Ratings(
        battles.models,
        rating,
        low,
        high,
        rank_upper_bound(low, high),
        n_battles,
        tuple(warnings),
        params,
    )


def win_rate_matrix(counts: BattleCounts) -> np.ndarray:
    """Observed P(row beats column), ties as half, both seat orders pooled; NaN if never met."""
    m = counts.n_models
    score = np.zeros((m, m))
    games = np.zeros((m, m))
    half = 0.5 * counts.ties
    np.add.at(score, (counts.pair_a, counts.pair_b), counts.wins_a + half)
    np.add.at(score, (counts.pair_b, counts.pair_a), counts.wins_b + half)
    np.add.at(games, (counts.pair_a, counts.pair_b), counts.n)
    games += games.T
    out = np.full((m, m), np.nan)
    np.divide(score, games, out=out, where=games > 0)
    return out


def predicted_win_rate(ratings: Ratings) -> np.ndarray:
    """Model-implied P(row beats column), ties as half: 1 / (1 + base^(-(R_i - R_j)/scale)).

    For style-controlled ratings this is the win rate at equal answer length.
    """
    scale = float(ratings.params.get("scale", SCALE))
    base = float(ratings.params.get("base", BASE))
    diff = ratings.rating[:, None] - ratings.rating[None, :]
    out = win_probability(diff, scale, base)
    np.fill_diagonal(out, np.nan)  # like the observed matrix: nobody battles itself
    return out
