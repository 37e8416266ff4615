"""IFEval's verifiable instructions, one check each, following the reference checker
(Google's, as shipped in lm-evaluation-harness 0.4.13, ``lm_eval/tasks/ifeval``) rule
for rule: the same patterns, the same counting, the same edge cases. The code is our
own; the rules are facts about the benchmark, and numbers are only comparable with
published IFEval scores if they are the same rules. ``benchmarks/ifeval_agreement.py``
runs both checkers over the same responses (docs/parity.md has the figures).

Two rules need NLTK's trained Punkt sentence model, which is not installed with NLTK
and cannot be downloaded here: the sentence count (``number_sentences``) uses a
rule-based splitter instead (the one place this module cannot follow the reference),
and the capital-word count uses NLTK's word tokenizer over the whole text rather than
sentence by sentence (the count of all-capital tokens does not depend on where
sentences end).

Each check takes the response and the instruction's kwargs (empty values dropped, as
the reference drops them) and says whether the response follows the instruction. An
instruction id without a check is never passed silently: ``check`` raises
``UnknownInstruction``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

Kwargs = Mapping[str, Any]
LESS_THAN, AT_LEAST = "less than", "at least"


class UnknownInstruction(KeyError):
    """The data names an instruction this module has no check for."""


def _compare(count: int, relation: str, threshold: int) -> bool:
    if relation == LESS_THAN:
        return count < threshold
    if relation == AT_LEAST:
        return count >= threshold
    raise ValueError(f"unknown relation {relation!r} (expected 'less than' or 'at least')")


def _search(pattern: str, text: str) -> list[str]:
    """Case-insensitive matches of a keyword. The reference reads keywords as regular
    expressions; one that does not compile (the reference would crash) is matched as
    plain text."""
    try:
        return re.findall(pattern, text, flags=re.IGNORECASE)
    except re.error:
        return re.findall(re.escape(pattern), text, flags=re.IGNORECASE)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\S)")
_ABBREVIATION = re.compile(
    r"\b(?:[A-Z]|Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|vs|etc|e\.g|i\.e|a\.m|p\.m|No)\.$")


def sentences(text: str) -> list[str]:
    """Split into sentences at ., ! or ? followed by space; a few abbreviations and
    initials (Mr., Dr., e.g., single capitals) do not end a sentence, nor does a stop
    followed by a lowercase word. Stands in for Punkt's trained English model (see the
    module docstring)."""
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


@lru_cache(maxsize=1)
def _word_tokenizer() -> Any:
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


# -- keywords ---------------------------------------------------------------

def keywords_existence(response: str, kw: Kwargs) -> bool:
    """Every keyword is found (case-insensitive; read as a pattern, as the reference does)."""
    return all(_search(str(k), response) for k in kw["keywords"])


def keywords_frequency(response: str, kw: Kwargs) -> bool:
    """The keyword's case-insensitive matches compared with ``frequency``."""
    count = len(_search(str(kw["keyword"]).strip(), response))
    return _compare(count, kw["relation"], int(kw["frequency"]))


def keywords_forbidden(response: str, kw: Kwargs) -> bool:
    """None of the words is found between word boundaries (case-insensitive)."""
    return not any(_search(rf"\b{w}\b", response) for w in kw["forbidden_words"])


def keywords_letter_frequency(response: str, kw: Kwargs) -> bool:
    """Occurrences of the letter (case-insensitive) compared with ``let_frequency``; any
    relation other than 'less than' means at least, as in the reference."""
    count = response.lower().count(str(kw["letter"]).strip().lower())
    less = kw["let_relation"] == LESS_THAN
    return count < int(kw["let_frequency"]) if less else count >= int(kw["let_frequency"])


# -- language and case --------------------------------------------------------

def response_language(response: str, kw: Kwargs) -> bool:
    """langdetect names ``language``. Text in which langdetect finds no language at all
    (digits, punctuation) passes, as in the reference."""
    return detect_language(response) in (kw["language"], None)


def english_capital(response: str, kw: Kwargs) -> bool:
    """No lowercase letter, at least one cased letter, and English (or no detectable
    language, as in the reference)."""
    return response.isupper() and detect_language(response) in ("en", None)


def english_lowercase(response: str, kw: Kwargs) -> bool:
    """No capital letter, at least one cased letter, and English (or no detectable
    language, as in the reference)."""
    return response.islower() and detect_language(response) in ("en", None)


def capital_word_frequency(response: str, kw: Kwargs) -> bool:
    """Tokens (NLTK's word tokenizer) with a cased letter and no lowercase one,
    counted; any relation other than 'less than' means at least."""
    count = sum(1 for token in _word_tokenizer().tokenize(response) if token.isupper())
    less = kw["capital_relation"] == LESS_THAN
    return count < int(kw["capital_frequency"]) if less else count >= int(kw["capital_frequency"])


# -- length -----------------------------------------------------------------

def number_words(response: str, kw: Kwargs) -> bool:
    """Words are runs of word characters (\\w+)."""
    return _compare(len(_words(response)), kw["relation"], int(kw["num_words"]))


def number_sentences(response: str, kw: Kwargs) -> bool:
    """Sentences counted by ``sentences`` (rule-based: see the module docstring)."""
    return _compare(len(sentences(response)), kw["relation"], int(kw["num_sentences"]))


def _trim_blank_ends(parts: list[str]) -> list[str] | None:
    """Parts without a blank first or last one; None if a blank part is in between."""
    kept = [p for i, p in enumerate(parts) if p.strip() or 0 < i < len(parts) - 1]
    return None if any(not p.strip() for p in kept) else kept


def number_paragraphs(response: str, kw: Kwargs) -> bool:
    """Exactly N paragraphs separated by the markdown divider ***; a blank paragraph
    between two dividers fails, one before the first or after the last is not counted."""
    kept = _trim_blank_ends(re.split(r"\s?\*\*\*\s?", response))
    return kept is not None and len(kept) == int(kw["num_paragraphs"])


_FIRST_WORD_STOP = frozenset(".,?!'\"")


def nth_paragraph_first_word(response: str, kw: Kwargs) -> bool:
    """Exactly N non-blank paragraphs (split at each blank line "\\n\\n"), and the
    i-th piece of the split (blank pieces included, as in the reference) begins with
    ``first_word``: its first whitespace-separated word, leading quotes removed, cut at
    the first of . , ? ! ' ", compared in lowercase."""
    paragraphs = response.split("\n\n")
    count = sum(1 for p in paragraphs if p.strip())
    nth = int(kw["nth_paragraph"])
    if nth > count or not paragraphs[nth - 1].strip():
        return False
    word = paragraphs[nth - 1].split()[0].lstrip("'").lstrip('"')
    first = ""
    for letter in word:
        if letter in _FIRST_WORD_STOP:
            break
        first += letter.lower()
    return count == int(kw["num_paragraphs"]) and first == str(kw["first_word"]).lower()


# -- content and format ---------------------------------------------------------

def number_placeholders(response: str, kw: Kwargs) -> bool:
    """At least N square-bracket pairs on one line, such as [address] (even []: the
    reference counts those too)."""
    return len(re.findall(r"\[.*?\]", response)) >= int(kw["num_placeholders"])


def postscript(response: str, kw: Kwargs) -> bool:
    """The marker anywhere in the response (case-insensitive; not only at a line start):
    for P.S. and P.P.S a space may follow each dot; any other marker is read as a
    pattern, as in the reference."""
    marker = str(kw["postscript_marker"]).strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + marker.lower() + r".*$"
    return bool(re.findall(pattern, response.lower(), flags=re.MULTILINE))


def number_bullet_lists(response: str, kw: Kwargs) -> bool:
    """Exactly N bullet lines: a line whose first non-space is '*' followed by something
    other than '*', or '-' (no space needed after either)."""
    stars = re.findall(r"^\s*\*[^\*].*$", response, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", response, flags=re.MULTILINE)
    return len(stars) + len(dashes) == int(kw["num_bullets"])


_CONSTRAINED = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


def constrained_response(response: str, kw: Kwargs) -> bool:
    """The response contains one of the three allowed answers."""
    return any(option in response.strip() for option in _CONSTRAINED)


def number_highlighted_sections(response: str, kw: Kwargs) -> bool:
    """At least N highlights: each non-blank *single* span on one line counts, and each
    non-blank **double** span counts once more (as the reference counts them)."""
    single = [h for h in re.findall(r"\*[^\n\*]*\*", response) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", response)
              if h.removeprefix("**").removesuffix("**").strip()]
    return len(single) + len(double) >= int(kw["num_highlights"])


def multiple_sections(response: str, kw: Kwargs) -> bool:
    """At least N section markers '<splitter> <number>' (case-sensitive; the splitter is
    read as a pattern): the number of pieces the response splits into, minus one."""
    splitter = str(kw["section_spliter"]).strip()
    pieces = re.split(r"\s?" + splitter + r"\s?\d+\s?", response)
    return len(pieces) - 1 >= int(kw["num_sections"])


def json_format(response: str, kw: Kwargs) -> bool:
    """The response parses as JSON once a leading ```json / ```Json / ```JSON / ``` and
    a trailing ``` are removed."""
    text = response.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        text = text.removeprefix(fence)
    text = text.removesuffix("```").strip()
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def title(response: str, kw: Kwargs) -> bool:
    """A title in double angular brackets on one line with some non-blank text."""
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", response))


def two_responses(response: str, kw: Kwargs) -> bool:
    """Exactly two non-blank responses separated by six asterisks ******, different once
    stripped; a blank piece is allowed only before the first or after the last."""
    kept = _trim_blank_ends(response.split("******"))
    return kept is not None and len(kept) == 2 and kept[0].strip() != kept[1].strip()


def repeat_prompt(response: str, kw: Kwargs) -> bool:
    """The response begins with the request repeated word for word (case-insensitive)."""
    return response.strip().lower().startswith(str(kw["prompt_to_repeat"]).strip().lower())


def end_checker(response: str, kw: Kwargs) -> bool:
    """The response ends with the exact phrase (case-insensitive; surrounding space and
    double quotes around the whole response ignored)."""
    return response.strip().strip('"').lower().endswith(str(kw["end_phrase"]).strip().lower())


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
    given = {k: v for k, v in (kwargs or {}).items() if v}  # as the reference: empties go
    return bool(func(response, given))
