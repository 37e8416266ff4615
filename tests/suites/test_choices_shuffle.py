"""``choices.shuffle``: each item's choices in a seeded order drawn from its row; the
target follows its choice; the order does not depend on --limit or on the rest of
the data; it is part of the suite's hash."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import yaml

from harness.suites.config import load_suite
from harness.suites.requests import build_requests


def _suite(tmp_path: Path, shuffle: int | None, rows: int = 40) -> Path:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": i, "q": f"question {i}", "right": f"R{i}",
                                        "w1": f"W{i}a", "w2": f"W{i}b", "w3": f"W{i}c"}) + "\n"
                            for i in range(rows)))
    choices: dict[str, object] = {"fields": ["right", "w1", "w2", "w3"], "labels": list("ABCD"),
                                  "template": " ({{ label }})"}
    if shuffle is not None:
        choices["shuffle"] = shuffle
    path = tmp_path / f"s{shuffle}.yaml"
    path.write_text(yaml.safe_dump({
        "name": "mc", "license": "x", "kind": "multiple_choice",
        "data": {"path": str(data), "id_field": "id"},
        "prompt": {"text": "{{ q }}\n(A) {{ choices[0] }}\n(B) {{ choices[1] }}\n"
                           "(C) {{ choices[2] }}\n(D) {{ choices[3] }}\nAnswer:"},
        "choices": choices, "target": "0", "metrics": ["accuracy"]}))
    return path


def test_the_target_follows_its_choice_and_the_order_is_stable(tmp_path: Path) -> None:
    suite = load_suite(str(_suite(tmp_path, 7)))
    items = build_requests(suite, "m", None, 0)
    for sample, request in items:
        assert isinstance(sample.target, int)
        assert sample.choices[sample.target] == f"R{sample.id}"  # the right answer, moved
        assert sorted(sample.choices) == sorted([f"R{sample.id}", f"W{sample.id}a",
                                                 f"W{sample.id}b", f"W{sample.id}c"])
        shown = request.text.split("\n")[1:5]  # type: ignore[union-attr]
        assert shown == [f"({label}) {c}" for label, c in zip("ABCD", sample.choices,
                                                               strict=True)]
        assert request.continuations == (" (A)", " (B)", " (C)", " (D)")
    positions = Counter(s.target for s, _ in items)
    assert len(positions) == 4 and max(positions.values()) < 20  # spread, not all first
    again = {s.id: s.choices for s, _ in build_requests(load_suite(str(_suite(tmp_path, 7))),
                                                      "m", 5, 3)}
    assert all(dict((s.id, s.choices) for s, _ in items)[k] == v for k, v in again.items())
    other = {s.id: s.choices for s, _ in build_requests(load_suite(str(_suite(tmp_path, 8))),
                                                      "m", None, 0)}
    assert other != {s.id: s.choices for s, _ in items}  # another seed, other orders


def test_without_shuffle_nothing_moves(tmp_path: Path) -> None:
    plain = load_suite(str(_suite(tmp_path, None)))
    assert all(s.target == 0 and s.choices[0] == f"R{s.id}"
               for s, _ in build_requests(plain, "m", None, 0))
    shuffled = load_suite(str(_suite(tmp_path, 0)))
    assert plain.hash != shuffled.hash
    # shipped suites' hashes, shuffle-free, are pinned in tests/runner/test_run_ids.py
