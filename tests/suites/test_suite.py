"""Building requests from suites: templates, few-shot, subsets, data formats."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.suites.config import load_suite
from harness.suites.requests import build_requests, select_rows
from harness.types import RequestKind

ROWS = [{"id": f"q{i}", "question": f"What is {i}+{i}?", "answer": str(2 * i),
         "options": [str(2 * i), str(2 * i + 1)], "label": i % 2} for i in range(30)]

GEN = """\
name: gen
license: test
kind: generate
data: {path: data.jsonl, id_field: id}
fewshot: {n: 3, seed: 7, answer: "{{ answer }}"}
prompt:
  system: "Be brief."
  user: "{{ question }}"
target: "{{ answer }}"
generation: {max_tokens: 8, stop: ["\\n"]}
metrics: [exact_match]
"""


def _suite(tmp_path: Path, text: str, rows: list[dict] = ROWS, name: str = "data.jsonl") -> Path:
    data = "".join(json.dumps(r) + "\n" for r in rows)
    if name.endswith(".gz"):
        (tmp_path / name).write_bytes(gzip.compress(data.encode()))
    else:
        (tmp_path / name).write_text(data)
    (tmp_path / "s.yaml").write_text(text.replace("data.jsonl", name))
    return tmp_path / "s.yaml"


def test_chat_prompt_with_fewshot_turns(tmp_path: Path) -> None:
    suite = load_suite(str(_suite(tmp_path, GEN)))
    items = build_requests(suite, "m", limit=None, seed=0)
    assert len(items) == 30
    sample, request = items[5]
    assert request.kind is RequestKind.GENERATE and request.model == "m"
    roles = [m.role for m in request.messages or ()]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant",
                     "user"]
    assert request.messages[-1].content == "What is 5+5?"  # type: ignore[index]
    shown = [m.content for m in request.messages or ()]
    assert "10" not in shown[2::2], "an item must never see its own answer as an example"
    assert request.params.stop == ("\n",) and request.params.max_tokens == 8
    assert sample.target == "10"


def test_fewshot_examples_do_not_depend_on_the_limit(tmp_path: Path) -> None:
    suite = load_suite(str(_suite(tmp_path, GEN)))
    full = {s.id: r.key for s, r in build_requests(suite, "m", None, 0)}
    subset = {s.id: r.key for s, r in build_requests(suite, "m", 8, 0)}
    assert len(subset) == 8
    assert all(full[k] == v for k, v in subset.items())


def test_limit_is_a_seeded_subset_in_data_order(tmp_path: Path) -> None:
    suite = load_suite(str(_suite(tmp_path, GEN)))
    a = [i for i, _ in select_rows(suite, 10, seed=1)]
    assert a == [i for i, _ in select_rows(suite, 10, seed=1)]
    assert a != [i for i, _ in select_rows(suite, 10, seed=2)]
    order = [r["id"] for r in ROWS]
    assert a == sorted(a, key=order.index)


def test_multiple_choice_by_labels_and_text_prompt(tmp_path: Path) -> None:
    rows = [{"q": "Sky colour?", "A": "blue", "B": "green", "gold": "A"},
            {"q": "Grass colour?", "A": "blue", "B": "green", "gold": "B"}]
    text = """\
name: mc
license: test
kind: multiple_choice
data: {path: data.jsonl}
prompt: {text: "Q: {{ q }}\\nA:"}
choices: {fields: [A, B], labels: [A, B], template: " {{ choice }}"}
fewshot: {n: 1}
target: "{{ gold }}"
metrics: [accuracy, acc_norm]
"""
    suite = load_suite(str(_suite(tmp_path, text, rows)))
    items = build_requests(suite, "m", None, 0)
    sample, request = items[1]
    assert request.kind is RequestKind.LOGLIKELIHOOD
    assert request.continuations == (" blue", " green")
    assert sample.target == 1 and sample.choices == ("blue", "green")
    # the one few-shot example is the other item, answered with its right choice
    assert request.text == "Q: Sky colour?\nA: blue\n\nQ: Grass colour?\nA:"


@pytest.mark.parametrize("name", ["data.jsonl.gz", "data.json", "data.csv", "data.parquet"])
def test_data_formats(tmp_path: Path, name: str) -> None:
    rows = [{"id": r["id"], "question": r["question"], "answer": r["answer"]} for r in ROWS]
    if name == "data.json":
        (tmp_path / name).write_text(json.dumps(rows))
    elif name == "data.csv":
        lines = ["id,question,answer"] + [f'{r["id"]},"{r["question"]}",{r["answer"]}'
                                          for r in rows]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    elif name == "data.parquet":
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / name)
    else:
        _suite(tmp_path, GEN, rows, name)
    (tmp_path / "s.yaml").write_text(GEN.replace("data.jsonl", name))
    suite = load_suite(str(tmp_path / "s.yaml"))
    assert [r["id"] for r in suite.rows] == [r["id"] for r in rows]


def test_shipped_suites_load_and_build(tmp_path: Path) -> None:
    for name, count in (("smoke", 24), ("smoke-mc", 24), ("hellaswag", 100), ("gsm8k", 1319)):
        suite = load_suite(name)
        assert len(suite.rows) == count
        items = build_requests(suite, "m", 5, 0)
        assert len(items) == 5 and len({r.key for _, r in items}) == 5
    mmlu_suite = load_suite("mmlu")
    assert len(mmlu_suite.rows) == 14042  # 14,044 lines less two stray header rows
    sample, request = build_requests(mmlu_suite, "m", 1, 0)[0]
    assert request.continuations == (" A", " B", " C", " D")
    assert request.text is not None and request.text.count("The following are") == 1
    assert request.text.count("\nAnswer:") == 6  # five examples and the item
    assert f"about {sample.doc['topic']}." in request.text
    gsm = build_requests(load_suite("gsm8k"), "m", 1, 0)[0]
    assert gsm[1].text is not None and gsm[1].text.count("Question:") == 6  # 5 shots + item
    assert gsm[0].target == gsm[0].doc["answer"].split("####")[-1].strip()


def test_suite_hash_changes_with_data(tmp_path: Path) -> None:
    first = load_suite(str(_suite(tmp_path, GEN))).hash
    changed = [dict(r) for r in ROWS]
    changed[0]["answer"] = "x"
    assert load_suite(str(_suite(tmp_path, GEN, changed))).hash != first
