"""From per-order verdicts to pair outcomes, and from jurors to a jury. Pure functions.

A pair is judged in both orders. Its outcome is a win only when both orders
agree on the winner; a pair whose winner changes with the order says more
about the judge's position bias than about the answers, so the policy turns it
into a tie (``tie``, MT-Bench's convention) or leaves it out (``drop``). A
pair with a verdict missing in either order (a parse error) has no outcome.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from harness.judge.parse import direction

Policy = Literal["tie", "drop"]
Combine = Literal["majority", "mean"]
PairStatus = Literal["consistent", "inconsistent", "incomplete"]
_WINNER = {1: "a", -1: "b", 0: "tie"}


def pair_outcome(unswapped: str | None, swapped: str | None, policy: Policy
                 ) -> tuple[str | None, PairStatus]:
    """Battle outcome (a | b | tie | None) of one pair from its two orders.

    Both arguments are outcomes from model_a's point of view (``a>b`` ...), or
    None when that order has no verdict.
    """
    if unswapped is None or swapped is None:
        return None, "incomplete"
    first, second = direction(unswapped), direction(swapped)
    if first == second:
        return _WINNER[first], "consistent"
    return ("tie" if policy == "tie" else None), "inconsistent"


def combine_pair_outcomes(outcomes: Sequence[str], how: Combine) -> str | None:
    """A jury's outcome from its jurors' pair outcomes (a | b | tie), None if none voted.

    ``majority``: the most common outcome, a tie when the top two are level;
    ``mean``: the sign of the mean of +1 (a), -1 (b) and 0 (tie).
    """
    if not outcomes:
        return None
    if how == "mean":
        total = sum({"a": 1, "b": -1, "tie": 0}[o] for o in outcomes)
        return _WINNER[(total > 0) - (total < 0)]
    ranked = Counter(outcomes).most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return "tie"
    return ranked[0][0]


def combine_scores(scores: Sequence[float], how: Combine) -> float | None:
    """A jury's grade: the mean, or for ``majority`` the median, which is the
    grade a majority of the jurors gave or went beyond from each side."""
    if not scores:
        return None
    return float(statistics.mean(scores) if how == "mean" else statistics.median(scores))


def presented_first_won(outcome: str, swapped: bool) -> bool | None:
    """Whether the answer shown first won (None for a tie); outcome is model_a's view."""
    sign = direction(outcome)
    if sign == 0:
        return None
    return (sign > 0) != swapped
