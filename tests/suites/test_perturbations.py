"""Perturbations (docs/beyond_accuracy.md): each text edit is seeded and deterministic;
a derived suite has its own hash and leaves the item (target, row, few-shot examples)
as it was; shuffle_choices moves each item's choices and the answer follows its text;
bad perturbations are one-line input errors."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import yaml
from helpers import CliRun

from harness.errors import SuiteError
from harness.perturb import text as edits
from harness.runner import plan_run
from harness.suites.config import load_suite
from harness.suites.perturbed import derive
from harness.suites.requests import build_requests
from harness.suites.robustness_block import Perturbation

PASSAGE = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many "
           "clips in May. He said it's 12500 dollars; don't worry, John will pay him in 2023. "
           "Mary isn't sure whether they're right.") * 4


@pytest.mark.parametrize("kind, mode, rate", [
    ("typos", None, 0.1), ("case", "random", None), ("whitespace", None, 0.3),
    ("punctuation", None, 0.3)])
def test_random_edits_are_seeded(kind: str, mode: str | None, rate: float | None) -> None:
    def edit(seed: int) -> str:
        function = getattr(edits, kind)
        return str(function(PASSAGE, random.Random(seed), mode if mode else rate))
    assert edit(1) == edit(1) != PASSAGE
    assert edit(1) != edit(2)


def test_typos_hit_about_the_rate_of_letters_and_keep_the_rest() -> None:
    text = "the quick brown fox jumps over the lazy dog " * 200
    edited = edits.typos(text, random.Random(0), 0.05)
    assert edited.count(" ") == text.count(" ")  # only letters are edited
    words = list(zip(text.split(), edited.split(), strict=True))
    changed = sum(a != b for a, b in words) / len(words)
    letters = sum(len(a) for a, _ in words) / len(words)
    expected = 1 - 0.95 ** letters  # a word changes when any of its letters slips
    assert abs(changed - expected) < 0.05, (changed, expected)
    assert all(set(b) <= set(string_letters()) for _, b in words)


def string_letters() -> str:
    return "abcdefghijklmnopqrstuvwxyz"


def test_word_level_edits_by_hand() -> None:
    r = random.Random(0)
    assert edits.contractions("It's late, don't wait. I'm Here.", r, "expand") == \
        "It is late, do not wait. I am Here."
    assert edits.contractions("I do not know, it will not work. Cannot.", r, "contract") == \
        "I don't know, it won't work. Can't."
    assert edits.case("the big CAT", r, "title") == "The Big Cat"
    assert edits.numbers("Buy 3 apples for $50, 12500 people, in 1999, 3.5 kg, 007", r,
                         "words") == "Buy three apples for $50, 12500 people, in 1999, 3.5 kg, 007"
    assert edits.numbers("12500 people, in 1999, 2500 cars, 1,000 and 3.25", r,
                         "separators") == "12,500 people, in 1999, 2,500 cars, 1,000 and 3.25"
    assert edits.number_words(342) == "three hundred and forty-two"
    assert edits.pronouns("He gave her book to him. I saw her and left. His.", r, "swap") == \
        "She gave his book to her. I saw him and left. Hers."
    assert edits.pronouns("She and her mother", r, "male") == "He and his father"


def test_names_keep_one_replacement_per_name_within_an_item() -> None:
    r = random.Random(0)
    first = edits.names("Mary met John. Mary left.", r, "same", "item-1")
    mary, john = first.split()[0], first.split()[2].rstrip(".")
    assert first == f"{mary} met {john}. {mary} left." and {mary, john} & {"Mary", "John"} == set()
    assert mary in edits.FEMALE_NAMES and john in edits.MALE_NAMES
    assert edits.names("Ask Mary.", r, "same", "item-1") == f"Ask {mary}."  # another field
    swapped = edits.names("Mary met John.", r, "swap", "item-1")
    assert swapped.split()[0] in edits.MALE_NAMES
    assert edits.names("Maryland is not a name here.", r, "same", "k") == \
        "Maryland is not a name here."


def test_a_derived_suite_has_its_own_hash_and_leaves_the_item_as_it_was() -> None:
    clean = load_suite("mmlu")
    typos = derive(clean, Perturbation(kind="typos", rate=0.2))
    assert typos.name == "mmlu~typos@0.2" and typos.base_hash == clean.hash != typos.hash
    assert derive(clean, Perturbation(kind="typos", rate=0.2, seed=1)).hash != typos.hash
    assert typos.config.perturbation is not None
    assert typos.config.perturbation.fields == ["answer_a", "answer_b", "answer_c", "answer_d",
                                                "question"]  # the suite's robustness.fields
    plain, edited = build_requests(clean, "m", 30, 0), build_requests(typos, "m", 30, 0)
    for (s0, r0), (s1, r1) in zip(plain, edited, strict=True):
        assert (s0.id, s0.target, s0.doc) == (s1.id, s1.target, s1.doc)
        assert len(s1.choices) == len(s0.choices)  # the choices as shown: edited too
        shots0, _, asked0 = r0.text.rpartition("\n\n")  # type: ignore[union-attr]
        shots1, _, asked1 = r1.text.rpartition("\n\n")  # type: ignore[union-attr]
        assert shots0 == shots1  # the five examples are shown as they were
        assert asked0 != asked1 and asked1.endswith("\nAnswer:")
        assert r1.continuations == r0.continuations
    # per item: the same edit whatever the limit
    alone = {s.id: r.key for s, r in build_requests(typos, "m", 5, 9)}
    every = {s.id: r.key for s, r in edited}
    assert all(every[i] == key for i, key in alone.items() if i in every)


def test_shuffled_choices_move_and_the_answer_follows_its_text() -> None:
    clean = load_suite("mmlu")
    moved = derive(clean, Perturbation(kind="shuffle_choices"))
    plain, shuffled = build_requests(clean, "m", 60, 0), build_requests(moved, "m", 60, 0)
    letters = "ABCD"
    for (s0, r0), (s1, r1) in zip(plain, shuffled, strict=True):
        assert s1.choices != s0.choices and sorted(s1.choices) == sorted(s0.choices)
        assert s1.choices[s1.target] == s0.choices[s0.target]  # type: ignore[index]
        asked = r1.text.rpartition("\n\n")[2]  # type: ignore[union-attr]
        shown = re.findall(r"(?m)^([ABCD])\. (.*)$", asked)
        assert shown == [(letters[i], c) for i, c in enumerate(s1.choices)]
        assert r1.text.rpartition("\n\n")[0] == r0.text.rpartition("\n\n")[0]  # type: ignore[union-attr]
    moved_answers = sum(a.target != b.target for (a, _), (b, _) in zip(plain, shuffled,
                                                                       strict=True))
    assert moved_answers >= 30  # a random order keeps the answer's letter 1 time in 4


def test_template_and_suite_lists() -> None:
    suite = load_suite("gsm8k-0shot")
    assert suite.config.robustness is not None
    labels = [p.label for p in suite.config.robustness.perturbations]
    assert "solve-and-box" in labels and "numbers-words" in labels
    [template] = [p for p in suite.config.robustness.perturbations if p.kind == "template"]
    derived = derive(suite, template)
    (_, request), = build_requests(derived, "m", 1, 0)
    assert request.messages[-1].content.startswith("Solve this math word problem.")
    assert derived.config.prompt.user != suite.config.prompt.user


@pytest.mark.parametrize("given, message", [
    ({"kind": "shuffle_choices"}, "shuffle_choices needs a multiple_choice suite"),
    ({"kind": "typos", "fields": ["nope"]}, "the data has no field 'nope'"),
    ({"kind": "template", "name": "t", "prompt": {"user": "{{ missing }}"}},
     "template uses 'missing'"),
])
def test_perturbations_that_do_not_fit_are_refused(given: dict[str, object],
                                                   message: str) -> None:
    with pytest.raises(SuiteError, match=re.escape(message)):
        plan_run("gsm8k-0shot", "smollm2-135m", limit=2, perturbation=Perturbation(**given))


@pytest.mark.parametrize("value, message", [
    ("typoz", "kind: Input should be"),
    ("case:mode=shouty", "mode 'shouty' is not one of upper, lower, title, random"),
    ("case:rate=0.1", "case takes no rate"),
    ("typos:rate=2", "rate: Input should be less than or equal to 1"),
    ("typos:rate", "expected KEY=VALUE"),
    ("typos:colour=red", "colour: unknown key"),
    ("suite", "lists no perturbations"),
    ("shuffle_choices", "shuffle_choices needs a multiple_choice suite"),
])
def test_bad_perturb_values_are_one_line_and_exit_2(cli: CliRun, tmp_path: Path, value: str,
                                                    message: str) -> None:
    suite = "gsm8k" if value == "suite" else "smoke"
    result = cli("run", "--model", "smollm2-135m", "--suite", suite, "--perturb", value,
                 "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_bad_robustness_block_names_its_file_and_field(tmp_path: Path) -> None:
    raw = yaml.safe_load((Path(__file__).parents[2] / "tasks" / "smoke.yaml").read_text())
    raw["data"]["path"] = str(Path(__file__).parents[2] / "tasks" / "smoke.jsonl")
    for bad, message in [
        ({"perturbations": [{"kind": "typos", "mode": "upper"}]}, "typos takes no mode"),
        ({"perturbations": [{"kind": "typos"}, {"kind": "typos"}]}, "two perturbations"),
        ({"perturbations": [{"kind": "case", "fields": ["nope"]}]}, "no field 'nope'"),
        ({"perturbations": []}, "at least 1 item"),
    ]:
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump({**raw, "robustness": bad}))
        with pytest.raises(SuiteError) as caught:
            load_suite(str(path))
        assert str(path) in str(caught.value) and message in str(caught.value), caught.value


def test_punctuation_never_changes_a_number_and_names_never_merge() -> None:
    text = "It costs $1.50, weighs 3.5 kg; 1,000 of them is 20% of 1/2. Don't stop."
    for seed in range(20):
        edited = edits.punctuation(text, random.Random(seed), 1.0)
        for kept in ("$1.50", "3.5", "1,000", "20%", "1/2", "Don't"):
            assert kept in edited, (seed, edited)
    for key in range(30):
        for mode in ("same", "swap"):
            renamed = edits.names("Mary and Linda met John and James.", random.Random(0),
                                  mode, f"k{key}").split()
            people = [renamed[0], renamed[2], renamed[4], renamed[6].rstrip(".")]
            assert len(set(people)) == 4, (mode, renamed)  # one-to-one: nobody merges


def test_a_field_split_into_choices_by_a_pattern_is_not_edited(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"q": "Pick one", "opts": "A. red\\nB. blue", "t": 0}\n' * 3)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "name": "pat", "license": "x", "kind": "multiple_choice",
        "data": {"path": str(data)}, "prompt": {"text": "{{ q }}\\n{{ opts }}\\nAnswer:"},
        "choices": {"field": "opts", "pattern": "(?m)^[AB]\\\\.\\\\s*(.*?)\\\\s*$"},
        "target": "{{ t }}", "metrics": ["accuracy"]}))
    suite = load_suite(str(path))
    with pytest.raises(SuiteError, match=re.escape("split into choices by choices.pattern")):
        derive(suite, Perturbation(kind="case", mode="upper"))
    assert derive(suite, Perturbation(kind="case", mode="upper", fields=["q"])).name == \
        "pat~case-upper-q"
