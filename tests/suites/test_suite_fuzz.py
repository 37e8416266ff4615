"""Property: whatever a suite file or its data holds, loading it and building its
requests gives a valid suite or one input error (exit 2, one line), never a
traceback. Hypothesis mutates a working suite and writes random data files; the
seed is fixed (derandomize) so CI sees the same few hundred cases every time."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import InputError
from harness.suites.config import load_suite
from harness.suites.requests import build_requests

SUITE = """\
name: fuzz
license: test data
kind: generate
data:
  path: data.jsonl
  id_field: id
fewshot:
  n: 1
  answer: "{{ answer }}"
prompt:
  system: "Answer briefly."
  user: "{{ question }} {{ doc.extra | default('') }}"
target: "{{ answer }}"
generation:
  max_tokens: 8
  stop: ["\\n"]
extract:
  regex: "^(\\\\w+)"
metrics: [exact_match, token_f1]
"""
ROWS = [{"id": f"r{i}", "question": f"q{i}?", "answer": f"a{i}", "extra": i} for i in range(4)]
SETTINGS = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
# pieces a hostile or careless file would contain
FRAGMENTS = ["{{", "}}", "{%", "%}", "{{ x }}", ":", "- ", "\n", "  ", "\"", "'", "#", "&a",
             "*a", "!!python/object:os.system", "\x00", "\ud800", "\ufeff", "é", "\t",
             "kind: multiple_choice", "metrics: [nope]", "n: -1", "max_tokens: 0",
             "regex: \"(\"", "path: ../../etc/passwd", "{{ 'x' * 10**9 }}"]


def _outcome(suite_text: bytes, data: bytes, name: str = "data.jsonl") -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "suite.yaml").write_bytes(suite_text)
        (Path(folder) / name).write_bytes(data)
        try:
            suite = load_suite(str(Path(folder) / "suite.yaml"))
            build_requests(suite, "m", None, 0)
        except InputError as exc:
            assert exc.exit_code == 2 and "\n" not in str(exc), str(exc)


def _data(rows: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@st.composite
def mutated(draw: st.DrawFn, text: str) -> bytes:
    """The text with a few random edits: cuts, insertions, duplicated or dropped lines."""
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["cut", "insert", "line"]))
        if edit == "cut":
            text = text[:where] + text[where + draw(st.integers(1, 20)):]
        elif edit == "insert":
            text = text[:where] + draw(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8))
                                       ) + text[where:]
        else:
            lines = text.split("\n")
            index = draw(st.integers(0, len(lines) - 1))
            lines.insert(index, lines[index]) if draw(st.booleans()) else lines.pop(index)
            text = "\n".join(lines)
    return text.encode("utf-8", errors="surrogatepass")


@SETTINGS
@given(suite_text=mutated(SUITE))
def test_a_mutated_suite_file_is_valid_or_one_input_error(suite_text: bytes) -> None:
    _outcome(suite_text, _data(ROWS))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) |
    st.text(st.characters(codec=None), max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                               max_size=3),
    max_leaves=6)


@SETTINGS
@given(rows=st.lists(st.dictionaries(st.sampled_from(["id", "question", "answer", "extra", "x"]),
                                     JSON_VALUES, max_size=5), max_size=5),
       noise=st.lists(st.binary(max_size=12), max_size=2))
def test_random_data_rows_are_valid_or_one_input_error(rows: list[dict[str, object]],
                                                       noise: list[bytes]) -> None:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8", "surrogatepass")
    _outcome(SUITE.encode(), data + b"\n".join(noise))


@SETTINGS
@given(table=st.text(st.characters(codec="utf-8"), max_size=120))
def test_random_csv_is_valid_or_one_input_error(table: str) -> None:
    _outcome(SUITE.replace("data.jsonl", "data.csv").encode(),
             ("id,question,answer,extra\n" + table).encode(), "data.csv")
