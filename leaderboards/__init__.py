"""Leaderboards: rating math (Bradley-Terry, Elo), intervals and rank bounds.

The modules here are pure functions over battle counts; see docs/ratings.md.
"""

from .battles import OUTCOMES, BattleCounts
from .bootstrap import BootstrapResult, bootstrap_bt, rank_upper_bound
from .bradley_terry import BTFit, fit_bt, sandwich_covariance, sandwich_intervals
from .diagnostics import Diagnosis, diagnose
from .elo import elo_ratings, encode_battles
from .ratings import Ratings, fit_ratings, predicted_win_rate, win_rate_matrix
from .style import fit_bt_style, normalised_length_diff, style_counts

__all__ = [
    "OUTCOMES",
    "BTFit",
    "BattleCounts",
    "BootstrapResult",
    "Diagnosis",
    "Ratings",
    "bootstrap_bt",
    "diagnose",
    "elo_ratings",
    "encode_battles",
    "fit_bt",
    "fit_bt_style",
    "fit_ratings",
    "normalised_length_diff",
    "predicted_win_rate",
    "rank_upper_bound",
    "sandwich_covariance",
    "sandwich_intervals",
    "style_counts",
    "win_rate_matrix",
]
