"""Win rate against a baseline from pairwise verdicts, the way Arena-Hard-Auto scores.

Each order a pair was judged in is a game. A game's value for the model is 1 (it
won), 0.5 (tie) or 0 (it lost); a clear verdict (``>>``) counts ``weight`` times
(Arena-Hard uses 3), so a decisive judgment moves the rate more than a slight one.
A question enters only when both orders have a verdict. The win rate is the mean
of the game values; its 95% interval resamples whole questions (the two orders and
repeated values of one question move together), which is what makes it honest where
resampling single values is not.

This differs on purpose from ``leaderboard --source judge``, which first combines the
two orders into one battle (a flip is a tie) and fits Bradley-Terry over all models.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.judge.parse import direction
from harness.stats.bootstrap import bootstrap_mean_ci
from harness.store.judgments import JudgmentRow


@dataclass(frozen=True)
class WinRate:
    model: str
    baseline: str
    group: str  # "all", or one value of the grouping field
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


def win_rates(rows: Sequence[JudgmentRow], baseline: str, *, weight: int = 3,
              groups: dict[str, str] | None = None, seed: int = 0) -> list[WinRate]:
    """Each model's win rate against ``baseline``, overall and per group (``groups``:
    sample id -> group, e.g. Arena-Hard's category), from one judge's pairwise rows."""
    if weight < 1:
        raise ValueError("weight must be at least 1")
    # (model, sample) -> each order's (outcome from model_a's view, model_a)
    games: dict[tuple[str, str], list[tuple[str | None, str]]] = defaultdict(list)
    for row in rows:
        if row.mode != "pairwise" or baseline not in (row.model_a, row.model_b):
            continue
        model = row.model_b if row.model_a == baseline else row.model_a
        if model is None or model == baseline:
            continue
        games[(model, row.sample_id)].append((row.outcome, row.model_a))
    by_model: dict[str, dict[str, list[float]]] = defaultdict(dict)
    missing: dict[str, list[str]] = defaultdict(list)
    for (model, sample), played in games.items():
        if len(played) < 2 or any(outcome is None for outcome, _ in played):
            missing[model].append(sample)
            continue
        by_model[model][sample] = [v for outcome, model_a in played
                                   for v in game_values(str(outcome), model_a == model, weight)]
    results = []
    for model in sorted(set(by_model) | set(missing)):
        values = by_model.get(model, {})
        labels = {"all": list(values)}
        if groups:
            for sample in values:
                labels.setdefault(groups.get(sample, "?"), []).append(sample)
        for group, samples in labels.items():
            skipped = [s for s in missing[model] if group == "all" or
                       (groups or {}).get(s, "?") == group]
            results.append(_rate(model, baseline, group, [values[s] for s in samples],
                                 len(skipped), seed))
    return results


def _rate(model: str, baseline: str, group: str, per_question: list[list[float]],
          incomplete: int, seed: int) -> WinRate:
    if not per_question:
        nan = float("nan")
        return WinRate(model, baseline, group, nan, nan, nan, 0, incomplete)
    flat = np.array([v for values in per_question for v in values])
    clusters = np.repeat(np.arange(len(per_question)), [len(v) for v in per_question])
    value, low, high = bootstrap_mean_ci(flat, seed=seed, clusters=clusters)
    return WinRate(model, baseline, group, value, low, high, len(per_question), incomplete)
