"""IFEval: every instruction check on a response that follows it and one that
does not; strict vs loose; the four accuracies; unknown instructions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.errors import DataError
from harness.metrics import METRICS, AggregateMetric, Extraction
from harness.metrics.ifeval.checks import CHECKS, UnknownInstruction, check, sentences
from harness.metrics.ifeval.metric import follows, loose_variants
from harness.suites.config import load_suite
from harness.types import Completion, Sample

ENGLISH = ("The committee met on Tuesday to discuss the new budget for the school library "
           "and decided to buy more books for the children.")
GERMAN = ("Der Ausschuss traf sich am Dienstag, um den neuen Haushalt der Schulbibliothek zu "
          "besprechen, und beschloss, mehr Bücher für die Kinder zu kaufen.")

# (instruction id, kwargs, a response that follows it, one that does not)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("keywords:existence", {"keywords": ["atlantis", "constable"]},
     "The Constable searched Atlantis.", "The constable searched the sea."),
    ("keywords:frequency", {"keyword": "brand", "frequency": 3, "relation": "at least"},
     "Brand, brand and BRAND.", "One brand only."),
    ("keywords:frequency", {"keyword": "bombs", "frequency": 2, "relation": "less than"},
     "Only one bombs mention.", "bombs and bombs"),
    ("keywords:forbidden_words", {"forbidden_words": ["bad", "culture"]},
     "A badge of cultured people.", "That was a Bad idea."),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 3, "let_relation": "at least"},
     "Zany zebras buzz.", "Zero."),
    ("keywords:letter_frequency", {"letter": "a", "let_frequency": 2, "let_relation": "less than"},
     "Hello world, it is I.", "banana"),
    ("language:response_language", {"language": "de"}, GERMAN, ENGLISH),
    ("change_case:english_capital", {}, ENGLISH.upper(), ENGLISH),
    ("change_case:english_lowercase", {}, ENGLISH.lower(), ENGLISH),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "This is VERY IMPORTANT.", "This is Very Important, OK."),
    ("change_case:capital_word_frequency",
     {"capital_frequency": 2, "capital_relation": "less than"},
     "Just ONE shout.", "TWO LOUD words."),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"},
     "one two three four five", "one two three four"),
    ("length_constraints:number_words", {"num_words": 3, "relation": "less than"},
     "two words", "now three words"),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "at least"},
     "Dr. Smith came. He sat down! Was he tired? Yes.", "Dr. Smith came. He sat down."),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "less than"},
     "Mr. J. R. Smith met e.g. Ms. Lee at 3.5 p.m. today.", "One. Two."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3},
     "First.\n***\nSecond.\n***\nThird.", "First.\n***\n\n***\nThird.\n***\nFourth."),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "elm"},
     "Intro text.\n\n\"Elm, trees grow.\n\nEnd.", "Intro text.\n\nOak trees.\n\nEnd."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2},
     "Write to [name] at [address].", "Write to [name] at the office."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "Hello.\n\nP.S. see you soon", "Hello. PS see you soon"),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"},
     "Hello.\np.p.s. one more thing", "Hello.\nP.S. one thing"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2},
     "Points:\n* first\n- second\n**Bold** line", "Points:\n* first\n* second\n* third"),
    ("detectable_format:constrained_response", {},
     "Hmm. My answer is maybe.", "My answer is perhaps."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "Here *one part* and **another part**.", "Only *one* here and ** ** blank."),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2},
     "SECTION 1\nIntro.\nSECTION 2\nBody.", "SECTION 1\nAll in one section."),
    ("detectable_format:json_format", {},
     '```json\n{"a": [1, 2]}\n```', 'Here you go: {"a": 1}'),
    ("detectable_format:title", {}, "<<Poem of Joy>>\nLa la la.", "Poem of Joy\n<< >>"),
    ("combination:two_responses", {},
     "First answer.\n******\nSecond answer.", "Same.\n******\nSame."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem about cats."},
     "write a poem about cats. Cats are soft...", "Sure! Write a poem about cats. Cats..."),
    ("startend:end_checker", {"end_phrase": "Is there anything else I can help with?"},
     "Done. Is there anything else I can help with?  ",
     "Is there anything else I can help with? Bye."),
    ("startend:quotation", {}, '  "All of it quoted."\n', '"Partly" quoted.'),
    ("punctuation:no_comma", {}, "No commas here.", "One, comma."),
]


@pytest.mark.parametrize(("instruction", "kwargs", "good", "bad"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_check_passes_and_fails(instruction: str, kwargs: dict[str, Any], good: str,
                                     bad: str) -> None:
    assert check(instruction, good, kwargs) is True
    assert check(instruction, bad, kwargs) is False


def test_every_instruction_in_the_data_has_a_check_and_a_test() -> None:
    suite = load_suite("ifeval")
    in_data = {i for row in suite.rows for i in row["instruction_id_list"]}
    assert in_data <= set(CHECKS)
    assert len(in_data) == 25
    assert {c[0] for c in CASES} == set(CHECKS)


def test_null_kwargs_are_ignored_and_unknown_ids_raise() -> None:
    assert check("punctuation:no_comma", "ok", {"num_words": None}) is True
    with pytest.raises(UnknownInstruction):
        check("detectable_format:haiku", "x", {})
    row = {"instruction_id_list": ["detectable_format:haiku"], "kwargs": [{}]}
    with pytest.raises(DataError, match="haiku"):
        follows(row, "x", loose=False)


def test_sentence_splitter() -> None:
    assert sentences("Hello there. How are you? Fine!") == [
        "Hello there.", "How are you?", "Fine!"]
    assert len(sentences("Dr. Who met Mr. Smith. They talked.")) == 2
    assert sentences("") == []


def test_loose_variants_drop_first_and_last_lines_and_asterisks() -> None:
    variants = loose_variants("Sure, here it is:\n**Body** text\nHope this helps")
    assert "**Body** text" in variants and "Body text" in variants
    assert "Sure, here it is:\nBody text\nHope this helps" in variants
    assert all(v.strip() for v in variants) and len(variants) == 8


def test_strict_versus_loose() -> None:
    row = {"instruction_id_list": ["punctuation:no_comma", "startend:quotation"],
           "kwargs": [{}, {}]}
    response = 'Sure, here you go:\n"A calm reply without any pauses"'
    assert follows(row, response, loose=False) == [
        ("punctuation:no_comma", False), ("startend:quotation", False)]
    assert follows(row, response, loose=True) == [
        ("punctuation:no_comma", True), ("startend:quotation", True)]
    # loose forgives markdown asterisks around a required ending
    ending = {"instruction_id_list": ["startend:end_checker"],
              "kwargs": [{"end_phrase": "Any other questions?"}]}
    assert follows(ending, "Text.\n**Any other questions?**", loose=False)[0][1] is False
    assert follows(ending, "Text.\n**Any other questions?**", loose=True)[0][1] is True
    # but not a response that breaks the instruction in its body
    assert follows(row, 'Hi\n"a, b"\nbye', loose=True)[0][1] is False


def _scored(rows: list[dict[str, Any]], responses: list[str], name: str) -> tuple[list[float],
                                                                                  float]:
    metric = METRICS[name]
    values = [metric(Sample(str(i), row, ""), Completion(texts=(text,)), Extraction())
              for i, (row, text) in enumerate(zip(rows, responses, strict=True))]
    assert isinstance(metric, AggregateMetric)
    return [v.value for v in values], metric.aggregate(values, seed=0)[0]


def test_prompt_and_instruction_level_accuracies() -> None:
    rows = [
        {"instruction_id_list": ["punctuation:no_comma", "detectable_format:title"],
         "kwargs": [{}, {}]},
        {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        {"instruction_id_list": ["keywords:existence", "punctuation:no_comma",
                                 "startend:quotation"],
         "kwargs": [{"keywords": ["moon"]}, {}, {}]},
    ]
    responses = ["<<Title>>\nno commas", "a, b", '"the moon, the sun"']
    prompt_values, prompt_acc = _scored(rows, responses, "ifeval_prompt_strict")
    assert prompt_values == [1.0, 0.0, 0.0] and prompt_acc == pytest.approx(1 / 3)
    inst_values, inst_acc = _scored(rows, responses, "ifeval_instruction_strict")
    assert inst_values == [1.0, 0.0, pytest.approx(2 / 3)]
    assert inst_acc == pytest.approx(4 / 6)  # a ratio over instructions, not a mean of rows
    audit = METRICS["ifeval_instruction_strict"](
        Sample("0", rows[0], ""), Completion(texts=(responses[0],)), Extraction())
    assert json.loads(audit.extracted or "") == [["punctuation:no_comma", True],
                                                 ["detectable_format:title", True]]
    point, low, high = METRICS["ifeval_instruction_loose"].aggregate(  # type: ignore[attr-defined]
        [audit] * 5, seed=1)
    assert point == low == high == 1.0


# the reference checker's rules where a natural reading differs (lm_eval 0.4.13's
# ifeval/instructions.py; benchmarks/ifeval_agreement.py measures the agreement)
REFERENCE_RULES: list[tuple[str, dict[str, Any], str, bool]] = [
    # the marker is found anywhere, not only at the start of a line
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "Thanks, see you. p.s. bring cake", True),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "p. p. s more", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "PS: no dots", False),
    # a bullet needs no space after its marker; '**' does not start one
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "-a\n-b", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "** bold\n* one", True),
    # text in no language passes the language check
    ("language:response_language", {"language": "de"}, "12345 67890", True),
    # quotes around the whole response do not hide the end phrase
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     '"Here it is. Any other questions?"', True),
    # an empty pair of brackets is a placeholder
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "[] and [x]", True),
    # the splitter is case-sensitive, and 'SECTION1' counts
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2},
     "SECTION1 a SECTION 2 b", True),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 1},
     "section 1 a", False),
    # paragraphs split at every "\n\n"; the n-th piece of the split is the one read
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
     "First one.\n\n\n\nThen more.", False),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
     "First one.\n\n'Then,' more.", True),
    # capital words are tokens: "DON'T" is two of them ("DO", "N'T")
    ("change_case:capital_word_frequency", {"capital_frequency": 3,
                                            "capital_relation": "at least"}, "DON'T GO", True),
    # a highlight in double asterisks counts for both patterns
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*a* and *b*",
     True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "**a**", False),
]


@pytest.mark.parametrize(("instruction", "kwargs", "response", "expected"), REFERENCE_RULES)
def test_rules_follow_the_reference_checker(instruction: str, kwargs: dict[str, Any],
                                            response: str, expected: bool) -> None:
    assert check(instruction, response, kwargs) is expected


def test_a_blank_response_follows_nothing_even_no_commas() -> None:
    doc = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    assert follows(doc, "   ", loose=False) == [("punctuation:no_comma", False)]
    assert follows(doc, "   ", loose=True) == [("punctuation:no_comma", False)]
