"""IFEval's verifiable instructions, one check each, written from their published
definitions (Zhou et al., 2023, "Instruction-Following Evaluation for Large
Language Models", Table 1) and the data's keyword arguments.

Each check takes the response and the instruction's kwargs (nulls dropped) and
says whether the response follows the instruction. Where the definition leaves
a detail open, the choice made is stated in the check's docstring and in
docs/tasks.md. An instruction id without a check here is never passed silently:
``check`` raises ``UnknownInstruction``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

Kwargs = Mapping[str, Any]


class UnknownInstruction(KeyError):
    """The data names an instruction this module has no check for."""


def _compare(count: int, relation: str, threshold: int) -> bool:
    if relation == "at least":
        return count >= threshold
    if relation == "less than":
        return count < threshold
    raise ValueError(f"unknown relation {relation!r} (expected 'at least' or 'less than')")


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\S)")
_ABBREVIATION = re.compile(
    r"\b(?:[A-Z]|Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|vs|etc|e\.g|i\.e|a\.m|p\.m|No)\.$")


def sentences(text: str) -> list[str]:
    """Split into sentences at ., ! or ? followed by space; a few abbreviations and
    initials (Mr., Dr., e.g., single capitals) do not end a sentence, nor does a stop
    followed by a lowercase word. A rule-based approximation of a trained splitter."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        candidate = text[start:match.start()].strip()
        if _ABBREVIATION.search(candidate) or text[match.end()].islower():
            continue
        pieces.append(candidate)
        start = match.end()
    pieces.append(text[start:].strip())
    return [p for p in pieces if _words(p)]


@lru_cache(maxsize=4096)
def detect_language(text: str) -> str | None:
    """ISO 639-1 code by langdetect (seeded, so repeatable); None if it finds no language."""
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0
    try:
        return str(detect(text))
    except LangDetectException:
        return None


# -- keywords ---------------------------------------------------------------

def keywords_existence(response: str, kw: Kwargs) -> bool:
    """Every keyword occurs (case-insensitive substring, as the keywords are given)."""
    lowered = response.lower()
    return all(str(k).lower() in lowered for k in kw["keywords"])


def keywords_frequency(response: str, kw: Kwargs) -> bool:
    """The keyword's case-insensitive occurrences compared with ``frequency``."""
    count = len(re.findall(re.escape(str(kw["keyword"])), response, flags=re.IGNORECASE))
    return _compare(count, kw["relation"], int(kw["frequency"]))


def keywords_forbidden(response: str, kw: Kwargs) -> bool:
    """None of the words occurs as a whole word (case-insensitive)."""
    return not any(re.search(rf"\b{re.escape(str(w))}\b", response, flags=re.IGNORECASE)
                   for w in kw["forbidden_words"])


def keywords_letter_frequency(response: str, kw: Kwargs) -> bool:
    """Occurrences of the letter (case-insensitive) compared with ``let_frequency``."""
    count = response.lower().count(str(kw["letter"]).lower())
    return _compare(count, kw["let_relation"], int(kw["let_frequency"]))


# -- language and case --------------------------------------------------------

def response_language(response: str, kw: Kwargs) -> bool:
    """langdetect names ``language``; a response with no detectable language fails."""
    return detect_language(response) == kw["language"]


def english_capital(response: str, kw: Kwargs) -> bool:
    """No lowercase letter, at least one cased letter, and detected as English."""
    return response.isupper() and detect_language(response) == "en"


def english_lowercase(response: str, kw: Kwargs) -> bool:
    """No capital letter, at least one cased letter, and detected as English."""
    return response.islower() and detect_language(response) == "en"


def capital_word_frequency(response: str, kw: Kwargs) -> bool:
    """Words written all in capitals (\\w+ runs with a letter and no lowercase) counted."""
    count = sum(1 for w in _words(response) if w.isupper())
    return _compare(count, kw["capital_relation"], int(kw["capital_frequency"]))


# -- length -----------------------------------------------------------------

def number_words(response: str, kw: Kwargs) -> bool:
    """Words are runs of word characters (\\w+)."""
    return _compare(len(_words(response)), kw["relation"], int(kw["num_words"]))


def number_sentences(response: str, kw: Kwargs) -> bool:
    """Sentences counted by ``sentences`` (rule-based splitter)."""
    return _compare(len(sentences(response)), kw["relation"], int(kw["num_sentences"]))


def number_paragraphs(response: str, kw: Kwargs) -> bool:
    """Exactly N paragraphs separated by the markdown divider ***; an empty paragraph
    between two dividers fails (one at the very start or end is ignored)."""
    parts = [p.strip() for p in re.split(r"\s?\*\*\*\s?", response)]
    if parts and not parts[0]:
        parts = parts[1:]
    if parts and not parts[-1]:
        parts = parts[:-1]
    return all(parts) and len(parts) == int(kw["num_paragraphs"])


def nth_paragraph_first_word(response: str, kw: Kwargs) -> bool:
    """Exactly N paragraphs separated by blank lines, and paragraph i (1-based) starts
    with ``first_word`` (case-insensitive, leading quotes/markup and trailing
    punctuation ignored)."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", response) if p.strip()]
    wanted, nth = int(kw["num_paragraphs"]), int(kw["nth_paragraph"])
    if len(paragraphs) != wanted or not 1 <= nth <= len(paragraphs):
        return False
    first = re.match(r"[\W_]*(\w[\w'-]*)", paragraphs[nth - 1])
    return first is not None and first.group(1).lower() == str(kw["first_word"]).lower()


# -- content and format ---------------------------------------------------------

def number_placeholders(response: str, kw: Kwargs) -> bool:
    """At least N placeholders in square brackets, such as [address]."""
    return len(re.findall(r"\[[^\[\]\n]+\]", response)) >= int(kw["num_placeholders"])


def postscript(response: str, kw: Kwargs) -> bool:
    """A line starts with the marker (P.S. or P.P.S; case, and spaces after dots, free)."""
    letters = [c for c in str(kw["postscript_marker"]) if c.isalpha()]
    marker = r"\.?\s?".join(re.escape(c) for c in letters) + r"\."
    return re.search(rf"^\s*{marker}", response, flags=re.IGNORECASE | re.MULTILINE) is not None


def number_bullet_lists(response: str, kw: Kwargs) -> bool:
    """Exactly N markdown bullet lines (starting with '* ' or '- ')."""
    bullets = re.findall(r"^\s*[*-]\s+\S", response, flags=re.MULTILINE)
    return len(bullets) == int(kw["num_bullets"])


_CONSTRAINED = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


def constrained_response(response: str, kw: Kwargs) -> bool:
    """The response contains one of the three allowed answers."""
    return any(option in response for option in _CONSTRAINED)


def number_highlighted_sections(response: str, kw: Kwargs) -> bool:
    """At least N non-blank spans in *single* or **double** asterisks."""
    spans = re.findall(r"\*\*([^*\n]+)\*\*|\*([^*\n]+)\*", response)
    return sum(1 for a, b in spans if (a or b).strip()) >= int(kw["num_highlights"])


def multiple_sections(response: str, kw: Kwargs) -> bool:
    """At least N sections, each begun by '<splitter> <number>' (e.g. SECTION 1)."""
    splitter = re.escape(str(kw["section_spliter"]).strip())
    starts = re.findall(rf"\b{splitter}\s*\d+", response)
    return len(starts) >= int(kw["num_sections"])


def json_format(response: str, kw: Kwargs) -> bool:
    """The whole response parses as JSON (a surrounding ``` or ```json fence is allowed)."""
    text = response.strip()
    fenced = re.fullmatch(r"```(?:json|JSON|Json)?\s*(.*?)\s*```", text, flags=re.DOTALL)
    if fenced:
        text = fenced.group(1)
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def title(response: str, kw: Kwargs) -> bool:
    """A title in double angular brackets with some non-blank text, e.g. <<poem of joy>>."""
    return any(t.strip() for t in re.findall(r"<<([^\n<>]*)>>", response))


def two_responses(response: str, kw: Kwargs) -> bool:
    """Exactly two non-blank, different responses separated by six asterisks ******."""
    parts = [p.strip() for p in response.split("******")]
    if parts and not parts[0]:
        parts = parts[1:]
    if parts and not parts[-1]:
        parts = parts[:-1]
    return len(parts) == 2 and all(parts) and parts[0] != parts[1]


def repeat_prompt(response: str, kw: Kwargs) -> bool:
    """The response begins with the request repeated word for word (case-insensitive)."""
    return response.strip().lower().startswith(str(kw["prompt_to_repeat"]).strip().lower())


def end_checker(response: str, kw: Kwargs) -> bool:
    """The response ends with the exact phrase (case-insensitive, trailing space ignored)."""
    return response.strip().lower().endswith(str(kw["end_phrase"]).strip().lower())


def quotation(response: str, kw: Kwargs) -> bool:
    """The whole response is wrapped in double quotation marks."""
    text = response.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


def no_comma(response: str, kw: Kwargs) -> bool:
    """No comma at all."""
    return "," not in response


CHECKS: dict[str, Callable[[str, Kwargs], bool]] = {
    "keywords:existence": keywords_existence,
    "keywords:frequency": keywords_frequency,
    "keywords:forbidden_words": keywords_forbidden,
    "keywords:letter_frequency": keywords_letter_frequency,
    "language:response_language": response_language,
    "change_case:english_capital": english_capital,
    "change_case:english_lowercase": english_lowercase,
    "change_case:capital_word_frequency": capital_word_frequency,
    "length_constraints:number_words": number_words,
    "length_constraints:number_sentences": number_sentences,
    "length_constraints:number_paragraphs": number_paragraphs,
    "length_constraints:nth_paragraph_first_word": nth_paragraph_first_word,
    "detectable_content:number_placeholders": number_placeholders,
    "detectable_content:postscript": postscript,
    "detectable_format:number_bullet_lists": number_bullet_lists,
    "detectable_format:constrained_response": constrained_response,
    "detectable_format:number_highlighted_sections": number_highlighted_sections,
    "detectable_format:multiple_sections": multiple_sections,
    "detectable_format:json_format": json_format,
    "detectable_format:title": title,
    "combination:two_responses": two_responses,
    "combination:repeat_prompt": repeat_prompt,
    "startend:end_checker": end_checker,
    "startend:quotation": quotation,
    "punctuation:no_comma": no_comma,
}


def check(instruction_id: str, response: str, kwargs: Kwargs | None) -> bool:
    """Whether ``response`` follows one instruction; raises UnknownInstruction."""
    func = CHECKS.get(instruction_id)
    if func is None:
        raise UnknownInstruction(instruction_id)
    given = {k: v for k, v in (kwargs or {}).items() if v is not None}
    return bool(func(response, given))
