"""Verdicts read from the judge's probabilities instead of its generated text.

With ``verdict: likelihood`` the judge is not asked to write anything: each
verdict token of the template's scale (``[[A]]``, ``[[B]]``, ``[[C]]``, or
``[[1]]`` … ``[[10]]``) is scored as the start of the judge's reply, and the
verdict is read from those log-likelihoods. Why this mode exists:

- a small local judge (the embedded 135M model) rarely follows the reply
  protocol, so generated verdicts are mostly parse errors; its probabilities
  over the allowed tokens always exist and still carry its preference;
- one forward pass per judgment, no generation: cheap enough for a demo;
- both orders' probabilities can be averaged, which cancels a constant
  position bias by construction instead of turning flips into ties.

What is stored per judgment (one order): the reply text is the probabilities
as JSON (the audit trail), the outcome is the most likely verdict (pairwise)
or the probability-weighted grade (single, as G-Eval does). A pair's battle
outcome comes from the two orders' probabilities averaged per side (see
``pair_outcome_from_probabilities``). The mode needs a backend that scores
continuations (transformers, the embedded model, OpenAI-compatible servers
that return prompt logprobs); a server that cannot is recorded as
``unsupported`` request errors, never as verdicts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from harness.judge.parse import Scale, direction, swap_outcome
from harness.types import Completion

VERDICT_MODES = ("generate", "likelihood")


def continuations(scale: Scale) -> tuple[str, ...]:
    """The verdict tokens scored after the judge prompt, in the scale's order."""
    return tuple(f"[[{token}]]" for token in scale.outcomes)


def probabilities(completion: Completion, scale: Scale) -> dict[str, float]:
    """Softmax of the verdict tokens' log-likelihoods, keyed by outcome (presented order)."""
    logps = list(completion.loglikelihoods)
    if len(logps) != len(scale.outcomes):
        raise ValueError(f"expected {len(scale.outcomes)} scores, got {len(logps)}")
    top = max(logps)
    weights = [math.exp(lp - top) for lp in logps]
    total = sum(weights)
    return {outcome: w / total for outcome, w in zip(scale.outcomes.values(), weights,
                                                      strict=True)}


def read(completion: Completion, scale: Scale, mode: str) -> tuple[str, str]:
    """(reply text to store, outcome in presented order) for one judgment."""
    probs = probabilities(completion, scale)
    text = json.dumps({"verdict": "likelihood", "p": {k: round(v, 6) for k, v in probs.items()}})
    if mode == "single":
        grade = sum(float(outcome) * p for outcome, p in probs.items())
        return text, f"{grade:.4f}"
    best = max(probs, key=lambda o: (probs[o], o))  # ties broken by name, deterministically
    return text, best


def model_a_view(text: str, swapped: bool) -> dict[str, float]:
    """The stored probabilities of one order, as outcomes from model_a's point of view."""
    probs: dict[str, float] = json.loads(text)["p"]
    return {swap_outcome(o) if swapped else o: p for o, p in probs.items()}


def pair_outcome_from_probabilities(orders: Sequence[dict[str, float]]) -> str | None:
    """a | b | tie from the orders' probabilities (model_a's view), averaged per side.

    The side (a wins, b wins, tie) with the highest mean probability wins; a and
    b level is a tie. With
    both orders present, a judge that always prefers the first answer by the
    same margin adds the same amount to both sides, so the margin cancels.
    """
    if not orders:
        return None
    sides = {"a": 0.0, "b": 0.0, "tie": 0.0}
    for probs in orders:
        for outcome, p in probs.items():
            sign = direction(outcome)
            sides["a" if sign > 0 else "b" if sign < 0 else "tie"] += p / len(orders)
    if sides["a"] > max(sides["b"], sides["tie"]):
        return "a"
    if sides["b"] > max(sides["a"], sides["tie"]):
        return "b"
    return "tie"  # the tie is most likely, or neither side is ahead of the other
