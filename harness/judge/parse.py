"""Strict verdict parsing: read the judge's verdict or say exactly why not.

A judge is told to end its reply with one verdict in double square brackets
on a line of its own. The parser holds it to that protocol and never guesses:

- the verdict is the last non-empty line, and that line holds exactly one
  verdict token, followed by nothing but closing punctuation or emphasis;
- a reply cut off at ``max_tokens`` is refused even if it happens to end in a
  verdict, because the judge may have been about to take it back;
- an earlier token that disagrees with the final one makes the reply
  ambiguous, unless it is visibly a quotation (a code block, a ``>`` line, a
  quoted or backticked span, or text copied from a judged answer);
- a verdict line that also occurs verbatim in a judged answer is refused: it
  cannot be told apart from an answer that imitates a verdict to steer the judge.

Outcomes are in *presented* order here (A = the answer shown first); the
caller maps them back to the models.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_TOKEN = re.compile(r"\[\[([^\[\]\n]{0,24})\]\]")
# what may follow the verdict on its line: closing punctuation and emphasis
_TRAILER = re.compile(r"^[\s.!*_`'\")]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_QUOTED_SPAN = re.compile(r"\"[^\"\n]*\"|“[^”\n]*”|`[^`\n]*`")
# how much text around an earlier token must match a judged answer to count as copied
_CONTEXT = 8


@dataclass(frozen=True)
class Scale:
    """The verdicts a template asks for, and what each means (presented order)."""

    name: str
    outcomes: dict[str, str]  # normalised token text -> outcome
    example: str  # shown in retry nudges and error messages

    def read(self, token: str) -> str | None:
        return self.outcomes.get(_normalise(token))


SCORE10 = Scale("score10", {str(n): str(n) for n in range(1, 11)}, "[[7]]")
ABC = Scale("abc", {"A": "a>b", "B": "b>a", "C": "tie"}, "[[A]], [[B]] or [[C]]")
FIVE = Scale(
    "five",
    {"A>>B": "a>>b", "A>B": "a>b", "A=B": "tie", "B>A": "b>a", "B>>A": "b>>a"},
    "[[A>>B]], [[A>B]], [[A=B]], [[B>A]] or [[B>>A]]",
)
SCALES = {s.name: s for s in (SCORE10, ABC, FIVE)}
PAIRWISE_OUTCOMES = ("a>>b", "a>b", "tie", "b>a", "b>>a")


@dataclass(frozen=True)
class Verdict:
    """A parsed verdict (``outcome``) or the reason there is none (``error``)."""

    outcome: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is not None


def _normalise(token: str) -> str:
    return re.sub(r"\s+", "", token).upper()


def _squash(text: str) -> str:
    return " ".join(text.split())


def parse_verdict(text: str, scale: Scale, *, truncated: bool = False,
                  answers: Sequence[str] = ()) -> Verdict:
    """Read one verdict from a judge's reply, strictly (see the module docstring).

    ``answers`` are the judged answers, used to recognise copied text;
    ``truncated`` is true when the reply stopped at the token limit.
    """
    if not text or not text.strip():
        return Verdict(None, "empty reply")
    if truncated:
        return Verdict(None, "reply cut off at max_tokens before it ended")
    # lines end at "\n" only (as the quotation checks below count them), not at
    # the other breaks str.splitlines() knows, which an answer could use to fake one
    lines = text.rstrip().replace("\r\n", "\n").split("\n")
    last_index = len(lines) - 1
    while last_index >= 0 and not lines[last_index].strip():
        last_index -= 1
    last = lines[last_index]
    tokens = list(_TOKEN.finditer(last))
    if not tokens:
        earlier = [m.group(0) for m in _TOKEN.finditer(text)]
        if earlier:
            return Verdict(None, f"no verdict on the final line (found {earlier[-1]} earlier)")
        return Verdict(None, f"no verdict found (expected {scale.example})")
    if len(tokens) > 1:
        shown = ", ".join(m.group(0) for m in tokens)
        return Verdict(None, f"several verdicts on the final line: {shown}")
    final = tokens[0]
    if not _TRAILER.match(last[final.end():]):
        return Verdict(None, f"text after the verdict {final.group(0)} on the final line")
    outcome = scale.read(final.group(1))
    if outcome is None:
        return Verdict(None, f"{final.group(0)} is not a verdict on this scale "
                             f"(expected {scale.example})")
    if last.lstrip().startswith(">") or _inside_fence(lines, last_index):
        return Verdict(None, "the final verdict is inside a quotation")
    squashed_answers = [_squash(a) for a in answers if a]
    if any(_squash(last) in a for a in squashed_answers):
        return Verdict(None, f"the verdict line {last.strip()!r} also occurs in a judged "
                             "answer, so it cannot be told apart from an injected one")
    body = "\n".join(lines[:last_index])
    for match in _TOKEN.finditer(body):
        other = scale.read(match.group(1))
        if other is None or other == outcome:
            continue  # a placeholder like [[rating]], or the same verdict said twice
        if _is_quotation(body, match, squashed_answers):
            continue
        return Verdict(None, f"conflicting verdicts {match.group(0)} and {final.group(0)}")
    return Verdict(outcome)


def _inside_fence(lines: list[str], index: int) -> bool:
    fences = sum(1 for line in lines[:index] if _FENCE.match(line))
    return fences % 2 == 1


def _is_quotation(body: str, match: re.Match[str], answers: list[str]) -> bool:
    """Whether an earlier token is visibly quoted rather than said by the judge."""
    start, end = match.span()
    line_start = body.rfind("\n", 0, start) + 1
    line_end = body.find("\n", end)
    line_end = len(body) if line_end < 0 else line_end
    line = body[line_start:line_end]
    if line.lstrip().startswith(">"):
        return True
    before = body[:line_start].split("\n")
    if sum(1 for text in before if _FENCE.match(text)) % 2 == 1:
        return True
    offset = start - line_start
    for span in _QUOTED_SPAN.finditer(line):
        if span.start() <= offset and offset + (end - start) <= span.end():
            return True
    left = _squash(body[max(0, start - _CONTEXT):end])
    right = _squash(body[start:end + _CONTEXT])
    return any(left in a or right in a for a in answers)


def swap_outcome(outcome: str) -> str:
    """The same pairwise outcome seen from the other side (a>b becomes b>a)."""
    return {"a>>b": "b>>a", "a>b": "b>a", "tie": "tie", "b>a": "a>b", "b>>a": "a>>b"}[outcome]


def direction(outcome: str) -> int:
    """+1 when A wins, -1 when B wins, 0 for a tie."""
    return 1 if outcome.startswith("a") else -1 if outcome.startswith("b") else 0


def strength(outcome: str) -> int:
    """Signed strength: ±2 for a clear win (>>), ±1 for a win, 0 for a tie."""
    return direction(outcome) * (2 if ">>" in outcome else 1)
