"""Perturbations of prompt text (robustness, docs/beyond_accuracy.md): pure, seeded,
deterministic edits. ``harness.suites.perturbed`` turns one into a derived suite."""

from harness.perturb.text import (
    case,
    contractions,
    names,
    number_words,
    numbers,
    pronouns,
    punctuation,
    typos,
    whitespace,
)

__all__ = ["case", "contractions", "names", "number_words", "numbers", "pronouns",
           "punctuation", "typos", "whitespace"]
