"""``fewshot.sampler``: fixed per-group examples (``first``) next to seeded draws (``random``)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.suites.config import load_suite
from harness.suites.requests import build_requests

ROWS = [{"id": f"q{i}", "topic": "even" if i % 2 == 0 else "odd", "q": f"What is {i}+{i}?",
         "A": str(2 * i), "B": str(2 * i + 1), "gold": "A"} for i in range(12)]

MC = """\
name: mc
license: test
kind: multiple_choice
data: {path: data.jsonl, id_field: id}
prompt: {text: "Q: {{ q }}\\nA:"}
choices: {fields: [A, B], labels: [A, B]}
FEWSHOT
target: "{{ gold }}"
metrics: [accuracy]
"""


def _load(tmp_path: Path, fewshot: str):  # type: ignore[no-untyped-def]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "s.yaml").write_text(MC.replace("FEWSHOT", fewshot))
    return load_suite(str(tmp_path / "s.yaml"))


def _examples(text: str) -> list[str]:
    return [part.split("\n")[0] for part in text.split("\n\n")[:-1]]


def test_first_gives_every_item_of_a_group_the_same_examples(tmp_path: Path) -> None:
    suite = _load(tmp_path, "fewshot: {n: 2, sampler: first, same_field: topic}")
    shown = {s.id: _examples(r.text or "") for s, r in build_requests(suite, "m", None, 0)}
    # the first two rows of each topic, in data order
    assert shown["q6"] == shown["q10"] == ["Q: What is 0+0?", "Q: What is 2+2?"]
    assert shown["q7"] == shown["q11"] == ["Q: What is 1+1?", "Q: What is 3+3?"]
    # an item among them gets the group's next row instead of itself
    assert shown["q0"] == ["Q: What is 2+2?", "Q: What is 4+4?"]
    assert shown["q2"] == ["Q: What is 0+0?", "Q: What is 4+4?"]


def test_random_draws_differ_per_item(tmp_path: Path) -> None:
    suite = _load(tmp_path, "fewshot: {n: 2, same_field: topic}")
    shown = {s.id: tuple(_examples(r.text or "")) for s, r in build_requests(suite, "m", None, 0)}
    even = {shown[f"q{i}"] for i in range(0, 12, 2)}
    assert len(even) > 1
    assert all(f"What is {i}+{i}?" not in " ".join(shown[f"q{i}"]) for i in range(12))


def test_sampler_random_keeps_the_hash_of_suites_that_do_not_name_it(tmp_path: Path) -> None:
    unnamed = _load(tmp_path, "fewshot: {n: 2, same_field: topic}").hash
    named = _load(tmp_path, "fewshot: {n: 2, same_field: topic, sampler: random}").hash
    first = _load(tmp_path, "fewshot: {n: 2, same_field: topic, sampler: first}").hash
    assert unnamed == named != first


def test_shipped_mmlu_uses_the_first_five_rows_of_the_subject() -> None:
    suite = load_suite("mmlu")
    items = build_requests(suite, "m", 6, 0)
    for sample, request in items:
        topic = sample.doc["topic"]
        firsts = [r for r in suite.rows if r["topic"] == topic][:6]
        expected = [r for r in firsts if r is not sample.doc][:5]
        text = request.text or ""
        positions = [text.index(r["question"].strip()) for r in expected]
        assert positions == sorted(positions)
