"""A suite's perturbations (robustness, docs/beyond_accuracy.md): the ``robustness:``
block of a suite file, and the one ``perturbation`` a derived suite carries.

A perturbation is named by its kind (a fixed list, like metric names: no callables
in YAML) and its few parameters; ``harness/suites/perturbed.py`` applies it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Kind = Literal["typos", "case", "whitespace", "punctuation", "contractions", "names",
               "pronouns", "numbers", "shuffle_choices", "template"]
# kinds with a ``mode``: the modes each allows, the first being the default
MODES: dict[str, tuple[str, ...]] = {
    "case": ("upper", "lower", "title", "random"),
    "contractions": ("expand", "contract"),
    "names": ("same", "swap"),
    "pronouns": ("swap", "female", "male"),
    "numbers": ("separators", "words"),
}
# kinds with a ``rate`` (a probability per character, space or word) and its default
RATES: dict[str, float] = {"typos": 0.05, "whitespace": 0.1, "punctuation": 0.1}
TEXT_KINDS = frozenset(("typos", "case", "whitespace", "punctuation", "contractions", "names",
                        "pronouns", "numbers"))
PROMPT_KEYS = frozenset(("system", "user", "turns", "text", "preamble"))


class Perturbation(BaseModel):
    """One perturbation; once a suite is derived from it, ``fields`` is filled in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@=-]*$")
    mode: str | None = None
    rate: float | None = Field(None, gt=0.0, le=1.0)
    seed: int = 0
    fields: list[str] | None = None  # data fields edited; default: those the prompt shows
    prompt: dict[str, Any] | None = None  # template: prompt keys replacing the suite's

    @model_validator(mode="after")
    def _fits_kind(self) -> Perturbation:
        kind = self.kind
        if self.mode is not None and self.mode not in MODES.get(kind, ()):
            allowed = MODES.get(kind)
            raise ValueError(f"{kind} takes no mode" if allowed is None else
                             f"mode {self.mode!r} is not one of {', '.join(allowed)}")
        if self.rate is not None and kind not in RATES:
            raise ValueError(f"{kind} takes no rate")
        if self.fields is not None and kind not in TEXT_KINDS:
            raise ValueError(f"{kind} edits no data fields")
        if (self.prompt is None) == (kind == "template"):
            raise ValueError("a template perturbation gives a prompt, and only it does")
        if self.prompt is not None:
            unknown = sorted(set(self.prompt) - PROMPT_KEYS)
            if unknown or not self.prompt:
                raise ValueError(f"prompt key {unknown[0]!r} is not one of "
                                 f"{', '.join(sorted(PROMPT_KEYS))}" if unknown
                                 else "the template's prompt is empty")
        if kind == "template" and self.name is None:
            raise ValueError("a template perturbation needs a name")
        return self

    @property
    def label(self) -> str:
        """What the derived suite is called after its suite's name: ``typos@0.05``,
        ``case-lower``, a template's name."""
        if self.name is not None:
            return self.name
        label: str = self.kind
        if self.kind in MODES:
            label += f"-{self.mode or MODES[self.kind][0]}"
        if self.kind in RATES:
            label += f"@{self.rate if self.rate is not None else RATES[self.kind]:g}"
        if self.fields:  # given, not filled in: two field choices are two suites
            label += "-" + "+".join(self.fields)
        return label + (f"-seed{self.seed}" if self.seed else "")

    @property
    def effective_mode(self) -> str:
        return self.mode or MODES.get(self.kind, ("",))[0]

    @property
    def effective_rate(self) -> float:
        return self.rate if self.rate is not None else RATES.get(self.kind, 0.0)


class RobustnessConfig(BaseModel):
    """The perturbations `evalarena run --perturb suite` applies to this suite."""

    model_config = ConfigDict(extra="forbid")

    fields: list[str] | None = None  # default for each text perturbation's fields
    perturbations: list[Perturbation] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_labels(self) -> RobustnessConfig:
        seen: set[str] = set()
        for perturbation in self.perturbations:
            if perturbation.label in seen:
                raise ValueError(f"two perturbations are called {perturbation.label!r}; "
                                 "give one a name")
            seen.add(perturbation.label)
        return self
