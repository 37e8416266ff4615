"""Competition-maths answers scored as lm-evaluation-harness scores its ``aime`` tasks
(0.4.13), so a number from the ``aime2025`` suite can sit next to one from lm_eval.

``aime_exact_match``: the answer is the text between the response's first and last
``$`` (the whole response when it has fewer than two), replaced by the content of
its last ``\\boxed{...}`` (or ``\\boxed ...``) where there is one; then answer and
target are normalised by the MATH dataset's rules (Hendrycks et al.) and compared.
Where a rule cannot apply (it would fail in the reference: two unit markers, a
``\\sqrt`` or ``\\frac`` with nothing after it, an ``a/b`` that is not two integers)
the raw strings are compared instead, as the reference does when its normaliser
raises. These are lm_eval's rules; the suite's ``extract`` block is not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.metrics.base import Extraction, MetricValue, register_metric
from harness.types import Completion, Sample


class _NoRule(Exception):
    """A normalisation rule does not apply: compare the raw strings."""


def boxed(text: str) -> str | None:
    """The last ``\\boxed{...}`` (braces balanced) or ``\\boxed ...`` (up to a ``$``)
    of a response, or its last ``\\fbox{...}``; None when there is none."""
    if "\\boxed " in text:
        return "\\boxed " + text.split("\\boxed ")[-1].split("$")[0]
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return None
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[start:index + 1]
    return None


def unboxed(text: str) -> str | None:
    """The content of a ``\\boxed`` span; None for one it cannot open (``\\fbox``)."""
    if "\\boxed " in text:
        return text[len("\\boxed "):] if text.startswith("\\boxed ") else None
    if text.startswith("\\boxed{") and text.endswith("}"):
        return text[len("\\boxed{"):-1]
    return None


def answer_of(response: str) -> str:
    dollars = [i for i, char in enumerate(response) if char == "$"]
    answer = response if len(dollars) <= 1 else response[dollars[0] + 1:dollars[-1]]
    span = boxed(response)
    content = unboxed(span) if span is not None else None
    return content if content is not None else answer


def equivalent(answer: str, target: str) -> bool:
    try:
        return normalised(answer) == normalised(target)
    except _NoRule:
        return answer == target


def normalised(text: str) -> str:
    """The MATH answer normalisation, rule by rule, in the reference's order."""
    for old, new in (("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"),
                     ("dfrac", "frac"), ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""),
                     ("^\\circ", ""), ("\\$", "")):
        text = text.replace(old, new)
    if "\\text{ " in text:  # a unit on the right
        parts = text.split("\\text{ ")
        if len(parts) != 2:
            raise _NoRule
        text = parts[0]
    text = text.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    sides = text.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # "k = 5"
        text = sides[1]
    text = _braced_sqrt(text).replace(" ", "")
    text = _braced_fracs(text)
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _slash_fraction(text)


def _braced_sqrt(text: str) -> str:
    """``\\sqrt3`` -> ``\\sqrt{3}``."""
    if "\\sqrt" not in text:
        return text
    head, *rest = text.split("\\sqrt")
    for part in rest:
        if not part:
            raise _NoRule
        head += "\\sqrt" + (part if part[0] == "{" else "{" + part[0] + "}" + part[1:])
    return head


def _braced_fracs(text: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{7}`` -> ``\\frac{1}{7}``."""
    head, *rest = text.split("\\frac")
    for part in rest:
        head += "\\frac"
        if not part:
            raise _NoRule
        if part[0] == "{":
            head += part
        elif len(part) < 2:
            return text  # the reference gives up on the whole string here
        elif part[1] != "{":
            head += "{" + part[0] + "}{" + part[1] + "}" + part[2:]
        else:
            head += "{" + part[0] + "}" + part[1:]
    return head


def _slash_fraction(text: str) -> str:
    """``3/4`` -> ``\\frac{3}{4}``, for two integers written plainly."""
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        numerator, denominator = int(parts[0]), int(parts[1])
    except ValueError:
        raise _NoRule from None
    if text != f"{numerator}/{denominator}":
        return text
    return f"\\frac{{{numerator}}}{{{denominator}}}"


@dataclass(frozen=True)
class MathAnswerMatch:
    name: str = "aime_exact_match"
    kind: Literal["generate", "multiple_choice"] = "generate"
    higher_is_better: bool = True

    def __call__(self, sample: Sample, completion: Completion,
                 extraction: Extraction) -> MetricValue:
        answer = answer_of(completion.texts[0])
        return MetricValue(float(equivalent(answer, str(sample.target))), answer)


register_metric(MathAnswerMatch())
