"""GSM8K scored as lm-evaluation-harness scores its ``gsm8k`` task (version 3.0), so a
number from the ``gsm8k`` suite can sit next to one from lm_eval.

Two answer filters, each a metric:

- ``gsm8k_strict_match``: the first "#### <number>" in the answer (the format the
  few-shot solutions teach);
- ``gsm8k_flexible_extract``: the last number anywhere in the answer (two or more of
  digits, ``$``, ``.`` and ``,``, or a run of digits).

No match is the answer "[invalid]". Then exact match after the same clean-up of both
the filtered answer and the target: commas and ``$`` removed, everything up to
"#### " removed, one trailing period removed, lowercased. These are lm_eval's rules
(its ``regex`` filter with ``take_first``, its ``exact_match`` with
``regexes_to_ignore``); the suite's ``extract`` block is not used by these metrics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from harness.metrics.base import Extraction, MetricValue, register_metric
from harness.types import Completion, Sample

INVALID = "[invalid]"
_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_IGNORED = tuple(re.compile(p) for p in (r",", r"\$", r"(?s).*#### ", r"\.$"))


def filtered(text: str, flexible: bool) -> str:
    """The answer one filter takes from a response, or "[invalid]"."""
    found = (_FLEXIBLE if flexible else _STRICT).findall(text)
    if not found:
        return INVALID
    match = found[-1] if flexible else found[0]
    if isinstance(match, tuple):  # alternatives: the group that matched
        match = next((group for group in match if group), INVALID)
    return match.strip()


def cleaned(text: str) -> str:
    for pattern in _IGNORED:
        text = pattern.sub("", text)
    return text.lower()


@dataclass(frozen=True)
class GSM8KMatch:
    name: str
    flexible: bool
    kind: Literal["generate", "multiple_choice"] = "generate"
    higher_is_better: bool = True

    def __call__(self, sample: Sample, completion: Completion,
                 extraction: Extraction) -> MetricValue:
        answer = filtered(completion.texts[0], self.flexible)
        return MetricValue(float(cleaned(answer) == cleaned(str(sample.target))), answer)


register_metric(GSM8KMatch("gsm8k_strict_match", flexible=False))
register_metric(GSM8KMatch("gsm8k_flexible_extract", flexible=True))
