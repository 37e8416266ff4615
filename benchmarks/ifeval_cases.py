"""Edge-case responses for each IFEval instruction type, for ``ifeval_agreement.py``.

For every type there is a pool of fragments written to sit on the rule's edges (a
marker with and without its dots, a bullet without a space, an empty placeholder,
a title across a line break, a quote around the end phrase, text in no language, ...)
and, where a count is compared with a threshold, fragments sized at the threshold
and one either side. A response is 1-4 fragments, from the type's pool and now and
then from the shared one, joined by separators that matter to some rule (newline,
blank line, the *** and ****** dividers). Each response is paired with kwargs the
541 IFEval prompts really use for that type (round robin). Seeded: the same cases
every run.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

Fragment = str | Callable[[dict[str, Any]], str]

SEPARATORS = ("\n", "\n\n", " ", "", "\n\n\n", " *** ", "\n***\n", "\n******\n", "\n \n")

SHARED: tuple[Fragment, ...] = (
    "Sure, here is my answer.", "Hello, world!", "THE END", "the end", "", "   ",
    "I think so. Dr. Smith agreed, e.g. on Monday.", "**Note:** this matters.",
    "\"Quoted text.\"", "It costs $3.50 (approx.)", "Line one\nLine two", "- item",
    "* item", "[placeholder]", "<<A Title>>", "SECTION 1", "P.S. one more thing",
    "My answer is yes.", "{\"key\": \"value\"}", "***", "******", "12345", "!!!",
)

LANGUAGE_TEXTS = (
    "This is an ordinary English sentence about the weather today.",
    "Bonjour, je suis très content de vous voir aujourd'hui à Paris.",
    "Guten Morgen, ich freue mich sehr, dich heute zu sehen.",
    "Hola, estoy muy contento de verte hoy en la playa.",
    "Ciao, sono molto felice di vederti oggi in città.",
    "Привет, как дела? Я очень рад тебя видеть сегодня.",
    "नमस्ते, आप कैसे हैं? मुझे आपसे मिलकर बहुत खुशी हुई।",
    "مرحبا، كيف حالك اليوم؟ أنا سعيد جدا برؤيتك.",
    "안녕하세요, 오늘 만나서 정말 반갑습니다.",
    "Xin chào, hôm nay tôi rất vui được gặp bạn.",
    "Habari yako? Nimefurahi sana kukuona leo.",
    "ನಮಸ್ಕಾರ, ನೀವು ಹೇಗಿದ್ದೀರಿ?", "ਸਤ ਸ੍ਰੀ ਅਕਾਲ, ਤੁਸੀਂ ਕਿਵੇਂ ਹੋ?",
    "سلام، حال شما چطور است؟ خیلی خوشحالم.", "12345 67890", "?!", "",
)


def _around(value: Any, make: Callable[[int], str]) -> list[Fragment]:
    """Fragments sized one below, at and one above a threshold read from kwargs."""
    def sized(step: int) -> Fragment:
        return lambda kw: make(max(0, int(kw[value]) + step))

    return [sized(step) for step in (-1, 0, 1)]


POOLS: dict[str, tuple[Fragment, ...]] = {
    "keywords:existence": (lambda kw: " ".join(kw["keywords"]),
                           lambda kw: kw["keywords"][0].upper(),
                           lambda kw: "pre" + kw["keywords"][-1] + "post", "nothing relevant"),
    "keywords:frequency": (*_around("frequency", lambda n: "word " * n),
                           lambda kw: (kw["keyword"] + " ") * int(kw["frequency"]),
                           lambda kw: (kw["keyword"].upper() + ", ") * (int(kw["frequency"]) - 1),
                           lambda kw: kw["keyword"] + kw["keyword"]),
    "keywords:forbidden_words": (lambda kw: kw["forbidden_words"][0],
                                 lambda kw: kw["forbidden_words"][0].title() + "s",
                                 lambda kw: "un" + kw["forbidden_words"][-1],
                                 lambda kw: kw["forbidden_words"][-1] + "-like", "clean text"),
    "keywords:letter_frequency": (
        lambda kw: kw["letter"] * int(kw["let_frequency"]),
        lambda kw: kw["letter"].upper() * (int(kw["let_frequency"]) - 1),
        lambda kw: (kw["letter"] + "x ") * (int(kw["let_frequency"]) + 1), "zzz qqq"),
    "language:response_language": LANGUAGE_TEXTS,
    "change_case:english_capital": ("HELLO WORLD, THIS IS ALL CAPS.", "HELLO world", "123 456",
                                    "ÉCOLE ET MAISON", "BONJOUR MES AMIS, COMMENT ALLEZ-VOUS",
                                    "I AM FINE.", "OK"),
    "change_case:english_lowercase": ("hello world, this is all lowercase.", "hello World",
                                      "123 !!", "ça va très bien, merci beaucoup mon ami",
                                      "i am fine.", "ok"),
    "change_case:capital_word_frequency": (
        *_around("capital_frequency", lambda n: "CAP " * n), "U.S.A. and NASA's DON'T",
        "A-OK HELLO-WORLD I", "lowercase only", "ALL CAPS SENTENCE. ANOTHER ONE!"),
    "length_constraints:number_words": (*_around("num_words", lambda n: "word " * n),
                                        "hyphen-ated words_with under_scores 42"),
    "length_constraints:number_sentences": (
        *_around("num_sentences", lambda n: "This is a sentence. " * n),
        "Mr. Smith went to Washington. He liked it!", "No stop at the end",
        "Wait... what? Really!"),
    "length_constraints:number_paragraphs": (
        *_around("num_paragraphs", lambda n: " *** ".join(["Paragraph text."] * n)),
        "A\n***\n\n***\nB", "***\nA\n***", "A****B", "A * * * B"),
    "length_constraints:nth_paragraph_first_word": (
        lambda kw: kw["first_word"].title() + " starts here.",
        lambda kw: "'" + kw["first_word"] + "', she said.",
        lambda kw: "\"" + kw["first_word"].upper() + ",\" he said.",
        lambda kw: "**" + kw["first_word"] + "** in bold.",
        lambda kw: "\n\n".join(["Filler paragraph."] * (int(kw["num_paragraphs"]) - 1)),
        "# Heading\n\nText", "Firstly, we begin."),
    "detectable_content:number_placeholders": (
        *_around("num_placeholders", lambda n: " ".join(["[name]"] * n)), "[]",
        "[multi\nline]", "[[nested]]", "[a][b]", "(not a placeholder)"),
    "detectable_content:postscript": (
        "Thanks, see you. p.s. bring cake", "P.S. see you", "P. S. later", "P.P.S one more",
        "p. p. s x", "PS: no dots", "P.S.", "P.P.S.", "ps. lowercase", "\nP.S.\n"),
    "detectable_format:number_bullet_lists": (
        *_around("num_bullets", lambda n: "\n".join(["* point"] * n)), "-a\n-b", "** bold",
        "  - indented", "---", "*", "• dot", "1. numbered", "  * nested\n*another"),
    "detectable_format:constrained_response": (
        "My answer is yes.", "my answer is yes.", "My answer is yes", "My answer is maybe.",
        "  My answer is no.  ", "My answer is probably."),
    "detectable_format:number_highlighted_sections": (
        *_around("num_highlights", lambda n: " ".join(["*part*"] * n)), "**bold**", "* *",
        "**", "*multi\nline*", "***both***", "*a* *b*", "****", "**a** and *b*"),
    "detectable_format:multiple_sections": (
        lambda kw: kw["section_spliter"] + " 1\nText", lambda kw: kw["section_spliter"] + "1",
        lambda kw: kw["section_spliter"].lower() + " 2", lambda kw: kw["section_spliter"] + " X",
        lambda kw: "\n".join(f"{kw['section_spliter']} {i}" for i in
                             range(1, int(kw["num_sections"]) + 1)), "PARAGRAPH 3", "Day 1"),
    "detectable_format:json_format": (
        "{\"a\": 1}", "```json\n{\"a\": 1}\n```", "```JSON {}```", "```\n[1, 2]\n```",
        "{'a': 1}", "Here is JSON: {}", "```python\n{}\n```", "null", "\"str\"",
        "```Json\n{\"b\": [true]}\n```"),
    "detectable_format:title": (
        "<<Title>>", "<< >>", "<<multi\nline>>", "<<<triple>>>", "<<a>> and <<b>>",
        "< <no> >", "<<>>"),
    "combination:two_responses": ("Response A", "Response B", "******", "*******",
                                  "Response A\n******\nResponse A", " Response B "),
    "combination:repeat_prompt": (
        lambda kw: kw["prompt_to_repeat"], lambda kw: kw["prompt_to_repeat"].upper(),
        lambda kw: "  " + kw["prompt_to_repeat"] + " Answer:",
        lambda kw: kw["prompt_to_repeat"][: len(kw["prompt_to_repeat"]) // 2]),
    "startend:end_checker": (
        lambda kw: "Text. " + kw["end_phrase"], lambda kw: "\"Text. " + kw["end_phrase"] + "\"",
        lambda kw: kw["end_phrase"].upper() + "  ", lambda kw: kw["end_phrase"] + "!",
        lambda kw: kw["end_phrase"] + "\nMore text."),
    "startend:quotation": ("\"wrapped\"", "\"", "\"\"", "\"a\" b", "'single'",
                           " \"spaced\" ", "“curly”"),
    "punctuation:no_comma": ("no commas here", "one, comma", "fullwidth，comma", "semi; colon"),
}


def responses_for(instruction: str, kwargs_seen: list[dict[str, Any]], count: int,
                  rng: random.Random) -> Iterable[tuple[dict[str, Any], str]]:
    """``count`` (kwargs, response) pairs for one instruction type."""
    pool = POOLS[instruction]
    for i in range(count):
        kwargs = kwargs_seen[i % len(kwargs_seen)]
        pieces = []
        for _ in range(rng.randint(1, 4)):
            fragment = rng.choice(SHARED if rng.random() < 0.2 else pool)
            pieces.append(fragment(kwargs) if callable(fragment) else fragment)
        text = pieces[0]
        for piece in pieces[1:]:
            text += rng.choice(SEPARATORS) + piece
        yield kwargs, text


def edge_cases(rows: list[dict[str, Any]], per_type: int, seed: int
               ) -> list[dict[str, Any]]:
    """Cases (one instruction each) for every instruction type the rows use."""
    seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
    prompts: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        for instruction, kwargs in zip(row["instruction_id_list"], row["kwargs"], strict=True):
            clean = {k: v for k, v in kwargs.items() if v}
            if clean not in seen[instruction] or not clean:
                seen[instruction].append(clean)
                prompts[instruction].append(row["prompt"])
    rng = random.Random(seed)
    cases = []
    for instruction in sorted(seen):
        for n, (kwargs, text) in enumerate(responses_for(instruction, seen[instruction],
                                                         per_type, rng)):
            cases.append({"case": f"edge/{instruction}/{n}", "instruction_id_list": [instruction],
                          "kwargs": [kwargs], "prompt": prompts[instruction][0],
                          "response": text})
    return cases
