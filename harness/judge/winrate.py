"""Win rate against a baseline from pairwise verdicts, the way Arena-Hard-Auto scores.

Each order a pair was judged in is a game. A game's value for the model is 1 (it
won), 0.5 (tie) or 0 (it lost); a clear verdict (``>>``) counts ``weight`` times
(Arena-Hard uses 3), so a decisive judgment moves the rate more than a slight one.
A question enters only when both orders have a verdict. The win rate is the mean
of the game values; its 95% interval resamples whole questions (the two orders and
repeated values of one question, and a conversation's turns, move together), where
resampling single game values would understate it.

This differs on purpose from ``leaderboard --source judge``, which first combines the
two orders into one battle (a flip is a tie) and fits Bradley-Terry over all models.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.judge.parse import direction
from harness.stats.bootstrap import bootstrap_mean_ci
from harness.store.judgments import JudgmentRow


@dataclass(frozen=True)
class WinRate:
    model: str
    baseline: str  # the baselines its games were played against, comma-separated
    group: str  # "all", or FIELD=VALUE of the grouping field
    value: float
    ci_low: float
    ci_high: float
    questions: int  # judged in both orders
    incomplete: int  # questions left out: an order without a verdict


def game_values(outcome: str, model_is_a: bool, weight: int) -> list[float]:
    """The model's values from one game (``outcome`` is model_a's view: a>>b ... b>>a)."""
    sign = direction(outcome) * (1 if model_is_a else -1)
    value = 1.0 if sign > 0 else 0.0 if sign < 0 else 0.5
    return [value] * (weight if ">>" in outcome else 1)


def win_rates(rows: Sequence[JudgmentRow], baselines: Sequence[str], *, weight: int = 3,
              groups: Mapping[str, str] | None = None,
              clusters: Mapping[str, str] | None = None, seed: int = 0) -> list[WinRate]:
    """Each model's win rate against the baselines, overall and per group, from one
    judge's pairwise rows. A model's games against every listed baseline are pooled:
    Arena-Hard v2.0 judges hard prompts against o3-mini and creative writing against
    gemini-2.0-flash and reports one number. ``groups``: sample id -> group label;
    ``clusters``: sample id -> the unit the interval resamples (a conversation's turns
    share one; default: the sample)."""
    if weight < 1:
        raise ValueError("weight must be at least 1")
    if not baselines:
        raise ValueError("name at least one baseline")
    listed = set(baselines)
    # (model, baseline, sample) -> {model shown first?: outcome from model_a's view, model_a}
    games: dict[tuple[str, str, str], dict[bool, tuple[str | None, str]]] = defaultdict(dict)
    for row in rows:
        if row.mode != "pairwise" or row.model_b is None:
            continue
        sides = {row.model_a, row.model_b}
        if len(sides & listed) != 1:  # no baseline, or two baselines against each other
            continue
        (baseline,) = sides & listed
        model = row.model_b if row.model_a == baseline else row.model_a
        model_first = (row.model_a == model) != row.swapped
        games[(model, baseline, row.sample_id)].setdefault(model_first,
                                                           (row.outcome, row.model_a))
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    missing: dict[str, set[str]] = defaultdict(set)
    for (model, _, sample), played in games.items():
        if len(played) < 2 or any(outcome is None for outcome, _ in played.values()):
            missing[model].add(sample)
            continue
        values[model][sample] += [v for outcome, model_a in played.values()
                                  for v in game_values(str(outcome), model_a == model, weight)]
    label = ", ".join(sorted(listed))
    results = []
    for model in sorted(set(values) | set(missing)):
        scored = values.get(model, {})
        incomplete = missing[model] - set(scored)
        names = ["all", *sorted({(groups or {}).get(s, "?") for s in set(scored) | incomplete}
                                if groups else ())]
        for group in names:
            def member(sample: str, group: str = group) -> bool:
                return group == "all" or (groups or {}).get(sample, "?") == group
            chosen = {s: v for s, v in scored.items() if member(s)}
            results.append(_rate(model, label, group, chosen, clusters or {},
                                 sum(member(s) for s in incomplete), seed))
    return results


def _rate(model: str, baseline: str, group: str, per_question: Mapping[str, list[float]],
          clusters: Mapping[str, str], incomplete: int, seed: int) -> WinRate:
    if not per_question:
        nan = float("nan")
        return WinRate(model, baseline, group, nan, nan, nan, 0, incomplete)
    flat = np.array([v for values in per_question.values() for v in values])
    units = [clusters.get(s, s) for s, values in per_question.items() for _ in values]
    value, low, high = bootstrap_mean_ci(flat, seed=seed, clusters=units)
    return WinRate(model, baseline, group, value, low, high, len(per_question), incomplete)
