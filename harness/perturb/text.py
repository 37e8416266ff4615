"""Seeded, deterministic edits of prompt text: the perturbations of docs/beyond_accuracy.md.

Each function takes the text and a ``random.Random`` already seeded for one field of
one item, and returns the edited text; the same seed always gives the same edit, on
any machine and Python version (only ``random.Random``'s documented generator is used).
They are written here rather than taken from an augmentation library because their
exact output is part of a derived suite's requests: a library release that edited
differently would silently turn stored answers into answers to other questions.

The word lists (keyboard rows, contractions, names, pronouns, number words) are facts
of English, written out here.
"""

from __future__ import annotations

import random
import re

# the QWERTY layout: each letter's neighbours on the keyboard (rows and the keys diagonally
# next to it), the usual model of a slipped finger
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    where = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}
    found: dict[str, str] = {}
    for char, (r, i) in where.items():
        near = [other for other, (r2, i2) in where.items()
                if other != char and abs(r2 - r) <= 1 and abs(i2 - i) <= 1]
        found[char] = "".join(sorted(near))
    return found


NEIGHBOURS = _keyboard_neighbours()


def typos(text: str, rng: random.Random, rate: float) -> str:
    """Each letter, with probability ``rate``, gets one keyboard slip: replaced by a
    neighbouring key (half of the slips), swapped with the next letter, dropped, or
    doubled with a neighbour inserted after it. Case is kept; other characters are
    left alone."""
    out: list[str] = []
    chars = list(text)
    i = 0
    while i < len(chars):
        char = chars[i]
        lower = char.lower()
        if lower not in NEIGHBOURS or rng.random() >= rate:
            out.append(char)
            i += 1
            continue
        slip = rng.random()
        near = rng.choice(NEIGHBOURS[lower])
        near = near.upper() if char.isupper() else near
        if slip < 0.7 and not (slip >= 0.5 and i + 1 < len(chars) and chars[i + 1].isalpha()):
            out.append(near)  # a neighbour (a swap with no letter after it, too)
        elif slip < 0.7:
            out += [chars[i + 1], char]
            i += 1
        elif slip < 0.85:
            pass  # dropped
        else:
            out += [char, near]
        i += 1
    return "".join(out)


def case(text: str, rng: random.Random, mode: str) -> str:
    """``upper``, ``lower``, ``title`` (each word capitalised) or ``random`` (each letter
    upper or lower by a coin flip)."""
    if mode == "upper":
        return text.upper()
    if mode == "lower":
        return text.lower()
    if mode == "title":
        return re.sub(r"[A-Za-z]+", lambda m: m.group(0)[0].upper() + m.group(0)[1:].lower(), text)
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def whitespace(text: str, rng: random.Random, rate: float) -> str:
    """Each space, with probability ``rate``, becomes two or three spaces, a tab, or a
    line break; the text's own line breaks are kept."""
    choices = ("  ", "   ", "\t", "\n")
    return re.sub(" ", lambda m: rng.choice(choices) if rng.random() < rate else " ", text)


_MARKS = ",.;:!?"


def punctuation(text: str, rng: random.Random, rate: float) -> str:
    """Each of the marks , . ; : ! ? is dropped with probability ``rate``, and after each
    word a stray one is added with probability ``rate``. Marks next to a digit (3.5,
    1,000, $1.50) and all other characters (' - / % $ ...) are kept, and nothing is added
    after a number: the edit must not change what a question asks."""
    out: list[str] = []
    tokens = re.findall(r"\w+|\s+|[^\w\s]", text)
    for i, token in enumerate(tokens):
        near_digit = (i > 0 and tokens[i - 1][-1:].isdigit()) or (
            i + 1 < len(tokens) and tokens[i + 1][:1].isdigit())
        if token in _MARKS and not near_digit:
            if rng.random() >= rate:
                out.append(token)
            continue
        out.append(token)
        if token[0].isalpha() and rng.random() < rate and not (
                i + 1 < len(tokens) and tokens[i + 1] in ("'", "’", "-")):
            out.append(rng.choice(_MARKS))
    return "".join(out)


# contractions and their expansions; the expansion of an ambiguous one ('s, 'd) is its
# most frequent reading, and only unambiguous expansions are contracted back
_CONTRACTIONS = {
    "aren't": "are not", "can't": "cannot", "couldn't": "could not", "didn't": "did not",
    "doesn't": "does not", "don't": "do not", "hadn't": "had not", "hasn't": "has not",
    "haven't": "have not", "isn't": "is not", "mightn't": "might not",
    "mustn't": "must not", "needn't": "need not", "shouldn't": "should not",
    "wasn't": "was not", "weren't": "were not", "won't": "will not", "wouldn't": "would not",
    "i'm": "i am", "you're": "you are", "we're": "we are", "they're": "they are",
    "i've": "i have", "you've": "you have", "we've": "we have", "they've": "they have",
    "i'll": "i will", "you'll": "you will", "he'll": "he will", "she'll": "she will",
    "we'll": "we will", "they'll": "they will", "it'll": "it will",
    "i'd": "i would", "you'd": "you would", "he'd": "he would", "she'd": "she would",
    "we'd": "we would", "they'd": "they would",
    "it's": "it is", "he's": "he is", "she's": "she is", "that's": "that is",
    "there's": "there is", "what's": "what is", "who's": "who is", "where's": "where is",
    "here's": "here is", "let's": "let us",
}
_CONTRACTED = {long: short for short, long in _CONTRACTIONS.items()
               if not short.endswith(("'s", "'d")) and short != "let's"}


def _keep_case(original: str, replacement: str) -> str:
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[0].isupper():
        return replacement[0].upper() + replacement[1:]
    return replacement


def contractions(text: str, rng: random.Random, mode: str) -> str:
    """``expand`` ("don't" -> "do not") or ``contract`` ("do not" -> "don't"); curly
    apostrophes count as straight ones."""
    if mode == "expand":
        table = _CONTRACTIONS
        pattern = r"\b(" + "|".join(re.escape(k).replace("'", "['’]") for k in table) + r")\b"
        return re.sub(pattern, lambda m: _keep_case(
            m.group(0), table[m.group(0).lower().replace("’", "'")]), text, flags=re.IGNORECASE)
    # negations first: "it will not" is "it won't", not "it'll not"
    for negation in (True, False):
        table = {k: v for k, v in _CONTRACTED.items() if (k.endswith(" not") or k == "cannot")
                 == negation}
        pattern = r"\b(" + "|".join(re.escape(k).replace(r"\ ", r"\s+") for k in table) + r")\b"
        text = re.sub(pattern, lambda m, t=table: _keep_case(  # type: ignore[misc]
            m.group(0), t[" ".join(m.group(0).lower().split())]), text, flags=re.IGNORECASE)
    return text


# frequent English first names (US records), by the gender they are mostly given to;
# none that is also a common word ("Mark", "Grace"), so no verb or noun is renamed
FEMALE_NAMES = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica",
    "Sarah", "Karen", "Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Kimberly",
    "Emily", "Donna", "Michelle", "Carol", "Amanda", "Melissa", "Deborah", "Stephanie",
    "Rebecca", "Laura", "Sharon", "Cynthia", "Kathleen", "Amy", "Angela", "Anna", "Emma",
    "Olivia", "Sophia", "Julia", "Helen", "Alice", "Janet",
)
MALE_NAMES = (
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas",
    "Charles", "Christopher", "Daniel", "Matthew", "Anthony", "Walter", "Donald", "Steven",
    "Paul", "Andrew", "Joshua", "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald",
    "Edward", "Jason", "Jeffrey", "Ryan", "Jacob", "Gary", "Eric", "Jonathan", "Stephen",
    "Larry", "Justin", "Scott", "Brandon", "Peter",
)
_NAME_PATTERN = re.compile(r"\b(" + "|".join(FEMALE_NAMES + MALE_NAMES) + r")\b")


def name_mapping(key: str, mode: str) -> dict[str, str]:
    """One item's one-to-one renaming, drawn from ``key``: each gender's list shuffled,
    then each name maps to the next one in its own list (``same``: never to itself) or to
    the name at its place in the other list (``swap``), so two people never merge."""
    draw = random.Random(key)
    female, male = list(FEMALE_NAMES), list(MALE_NAMES)
    draw.shuffle(female)
    draw.shuffle(male)
    if mode == "swap":
        return {**dict(zip(female, male, strict=True)), **dict(zip(male, female, strict=True))}
    return {group[i]: group[(i + 1) % len(group)] for group in (female, male)
            for i in range(len(group))}


def names(text: str, rng: random.Random, mode: str, key: str = "") -> str:
    """Each listed first name becomes another one: of the same gender (``same``, the
    default) or of the other (``swap``), by the item's one-to-one ``name_mapping``, so a
    name gets the same replacement in every field of an item."""
    mapping = name_mapping(key, mode)
    return _NAME_PATTERN.sub(lambda match: mapping[match.group(0)], text)


# he <-> she. "her" is both "him" and "his": it becomes "his" before a word it may own
# and "him" at the end of a clause or before a function word (a word list, not a parser)
_PRONOUNS_TO_FEMALE = {"he": "she", "him": "her", "his": "her", "himself": "herself",
                       "hers": "hers", "man": "woman", "men": "women", "boy": "girl",
                       "boys": "girls", "father": "mother", "son": "daughter",
                       "brother": "sister", "husband": "wife", "mr": "ms"}
_PRONOUNS_TO_MALE = {"she": "he", "her": "his", "hers": "his", "herself": "himself",
                     "woman": "man", "women": "men", "girl": "boy", "girls": "boys",
                     "mother": "father", "daughter": "son", "sister": "brother",
                     "wife": "husband", "mrs": "mr", "ms": "mr"}


# words after which "her" is an object ("saw her and left"), not an owner ("her book")
_NOT_OWNED = frozenset((
    "and", "or", "but", "to", "the", "a", "an", "in", "on", "at", "with", "for", "from",
    "that", "this", "up", "out", "off", "again", "back", "too", "about", "into", "as", "so",
    "if", "when", "because", "by", "is", "was",
))


def pronouns(text: str, rng: random.Random, mode: str) -> str:
    """Gendered pronouns and person nouns swapped: ``swap`` (each to the other gender),
    ``female`` (male ones to female) or ``male`` (female ones to male)."""
    table: dict[str, str] = {}
    if mode in ("swap", "female"):
        table.update(_PRONOUNS_TO_FEMALE)
    if mode in ("swap", "male"):
        table.update(_PRONOUNS_TO_MALE)
    if mode == "swap":
        table["hers"] = "his"

    def replace(match: re.Match[str]) -> str:
        word = match.group(0)
        lower = word.lower()
        new = table[lower]
        if lower == "her" and mode != "female":
            following = re.match(r"\s+([A-Za-z]+)", text[match.end():])
            owns = following is not None and following.group(1).lower() not in _NOT_OWNED
            new = "his" if owns else "him"
        elif lower == "his" and mode != "male":
            following = re.match(r"\s+([A-Za-z]+)", text[match.end():])
            owns = following is not None and following.group(1).lower() not in _NOT_OWNED
            new = "her" if owns else "hers"
        return _keep_case(word, new)
    pattern = r"\b(" + "|".join(sorted(table, key=len, reverse=True)) + r")\b"
    return re.sub(pattern, replace, text, flags=re.IGNORECASE)


_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(value: int) -> str:
    """0-999 in English words ("forty-two", "three hundred and five")."""
    if value < 20:
        return _ONES[value]
    if value < 100:
        tens, ones = divmod(value, 10)
        return _TENS[tens] + ("" if ones == 0 else "-" + _ONES[ones])
    hundreds, rest = divmod(value, 100)
    return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))


# a whole number standing alone: not part of a word, a decimal, a grouped number or a
# version (1.2.3), and not already grouped with commas
_INTEGER = re.compile(r"(?<![\w.,])\d+(?![\w]|[.,]\d)")


def numbers(text: str, rng: random.Random, mode: str) -> str:
    """Whole numbers rewritten: ``words`` (0-999 spelled out: 42 -> forty-two) or
    ``separators`` (thousands grouped: 12500 -> 12,500; four-digit numbers that read
    as years, 1000-2100, are left alone)."""
    def replace(match: re.Match[str]) -> str:
        digits = match.group(0)
        value = int(digits)
        if digits.startswith("0") and len(digits) > 1:
            return digits  # a code or a time, not a quantity
        if mode == "words":  # "$50" and "50%" stay: "$fifty" is no way to write a sum
            before, after = text[match.start() - 1:match.start()], text[match.end():][:1]
            money = (before != "" and before in "$€£¥") or after == "%"
            return number_words(value) if value < 1000 and not money else digits
        if value < 10000 and (value < 1000 or 1000 <= value <= 2100):
            return digits
        return f"{value:,}"
    return _INTEGER.sub(replace, text)
