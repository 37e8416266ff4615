"""Membership scores from a model's own token probabilities (docs/beyond_accuracy.md).

- Min-K% (Shi et al. 2023): the mean log-probability of the k% least likely tokens
  of the text; text seen in training has fewer very unlikely tokens.
- Min-K%++ (Zhang et al. 2024): each token's log-probability standardised by the
  next-token distribution it was drawn from, (log p(x_t) - mu_t) / sigma_t with mu_t
  and sigma_t the mean and standard deviation of log p(z) for z drawn from p(. | x_<t);
  then the mean of the k% lowest. Needs the whole distribution, so only a backend with
  the model in process (hf) gives it.

Higher means "more likely seen". Neither has a universal threshold: a score is
compared with the same model's scores on text it cannot have seen (the AUROC below),
or with the same item perturbed (the perturbation gap: a memorised text loses more
when it is edited than an unseen one does).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_K = 0.2


@dataclass(frozen=True)
class TokenStatistics:
    """Per scored token: its log-probability and the mean and standard deviation of the
    log-probability under the distribution it was drawn from."""

    logprobs: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]


def _lowest_mean(values: Sequence[float], k: float) -> float:
    if not values:
        return float("nan")
    count = max(1, int(len(values) * k))
    return sum(sorted(values)[:count]) / count


def min_k(stats: TokenStatistics, k: float = DEFAULT_K) -> float:
    return _lowest_mean(stats.logprobs, k)


def min_k_plus_plus(stats: TokenStatistics, k: float = DEFAULT_K) -> float:
    scores = [(lp - mu) / sd for lp, mu, sd in zip(stats.logprobs, stats.means, stats.stds,
                                                   strict=True) if sd > 0]
    return _lowest_mean(scores, k)


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """P(a positive scores above a negative), ties counting one half (Mann-Whitney)."""
    if not positives or not negatives:
        return float("nan")
    wins = 0.0
    for p in positives:
        for n in negatives:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / (len(positives) * len(negatives))


def auroc_ci(positives: Sequence[float], negatives: Sequence[float], rounds: int = 2000,
             seed: int = 0) -> tuple[float, float, float]:
    """AUROC with a percentile-bootstrap 95% interval, each class resampled apart."""
    rng = random.Random(seed)
    value = auroc(positives, negatives)
    if math.isnan(value):
        return value, value, value
    draws = sorted(auroc(rng.choices(positives, k=len(positives)),
                         rng.choices(negatives, k=len(negatives))) for _ in range(rounds))
    return value, draws[int(0.025 * rounds)], draws[int(0.975 * rounds) - 1]
