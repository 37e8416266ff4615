"""Bad suites and model specs: one line naming file and field, exit 2, no database.

Each case runs the real command in a subprocess, because exit code, stderr and
the untouched database are what the user sees.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import CliRun

GOOD_SUITE = """\
name: tiny
license: test data
kind: generate
data:
  path: data.jsonl
  id_field: id
prompt:
  user: "{{ question }}"
target: "{{ answer }}"
metrics: [exact_match]
"""

MC_SUITE = """\
name: tiny-mc
license: test data
kind: multiple_choice
data:
  path: data.jsonl
prompt:
  text: "{{ question }}"
choices:
  field: options
target: "{{ label }}"
metrics: [accuracy]
"""


def _write_data(folder: Path, rows: list[dict] | None = None) -> None:
    rows = rows if rows is not None else [
        {"id": "1", "question": "2+2?", "answer": "4", "options": ["3", "4"], "label": 1},
        {"id": "2", "question": "3+3?", "answer": "6", "options": ["6", "7"], "label": 0},
    ]
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


# (case id, suite text, model spec, field the message must name, words it must contain)
CASES = [
    ("yaml-syntax", GOOD_SUITE.replace("kind: generate", "kind: [generate"), "smollm2-135m",
     "line", "YAML syntax error"),
    ("unknown-top-level-field", GOOD_SUITE + "temprature: 0.5\n", "smollm2-135m",
     "temprature", "unknown field"),
    ("unknown-nested-field", GOOD_SUITE + "generation:\n  max_tokenz: 5\n", "smollm2-135m",
     "generation.max_tokenz", "unknown field"),
    ("wrong-type", GOOD_SUITE + "generation:\n  max_tokens: many\n", "smollm2-135m",
     "generation.max_tokens", "integer"),
    ("missing-required-field", GOOD_SUITE.replace("license: test data\n", ""), "smollm2-135m",
     "license", "required"),
    ("missing-data-file", GOOD_SUITE.replace("data.jsonl", "nope.jsonl"), "smollm2-135m",
     "data.path", "no data file"),
    ("missing-second-data-file",
     GOOD_SUITE.replace("  path: data.jsonl\n", "  path: data.jsonl\n  more_paths: [x.jsonl]\n"),
     "smollm2-135m", "data.more_paths.0", "no data file"),
    ("template-names-missing-field", GOOD_SUITE.replace("{{ question }}", "{{ questoin }}"),
     "smollm2-135m", "prompt.user", "questoin"),
    ("target-names-missing-field", GOOD_SUITE.replace("{{ answer }}", "{{ solution }}"),
     "smollm2-135m", "target", "solution"),
    ("template-syntax-error", GOOD_SUITE.replace("{{ question }}", "{{ question "),
     "smollm2-135m", "prompt.user", "template syntax error"),
    ("unknown-metric", GOOD_SUITE.replace("[exact_match]", "[exact_mtach]"), "smollm2-135m",
     "metrics", "exact_mtach"),
    ("invalid-regex", GOOD_SUITE + "extract:\n  regex: '(unclosed'\n", "smollm2-135m",
     "extract.regex", "invalid regex"),
    ("package-not-installed",
     GOOD_SUITE.replace("  path: data.jsonl", "  package: no_such_pkg_xyz\n  path: d.jsonl"),
     "smollm2-135m", "data.package", "not installed"),
    ("id-field-missing", GOOD_SUITE.replace("id_field: id", "id_field: uid"), "smollm2-135m",
     "data.id_field", "uid"),
    ("mc-without-choices", MC_SUITE.replace("choices:\n  field: options\n", ""), "smollm2-135m",
     "choices", "multiple_choice needs"),
    ("mc-choice-field-missing", MC_SUITE.replace("field: options", "field: opts"),
     "smollm2-135m", "choices", "opts"),
    ("mc-target-not-a-choice", MC_SUITE.replace("{{ label }}", "{{ question }}"),
     "smollm2-135m", "target", "neither a choice index nor a label"),
    ("chat-and-text-prompt", GOOD_SUITE.replace('  user: "{{ question }}"',
                                                '  user: "{{ question }}"\n  text: "x"'),
     "smollm2-135m", "prompt", "give one of"),
    ("chat-and-turns-prompt", GOOD_SUITE.replace('  user: "{{ question }}"',
                                                 '  user: "{{ question }}"\n  turns: ["x"]'),
     "smollm2-135m", "prompt", "give one of"),
    ("unknown-model-scheme", GOOD_SUITE, "gpt:foo", "--model", "unknown model spec"),
    ("openai-spec-without-model-name", GOOD_SUITE, "openai:http://127.0.0.1:9/v1",
     "--model", "<model name>"),
    ("openai-spec-bad-url", GOOD_SUITE, "openai:127.0.0.1:9/v1@m", "--model", "http"),
    ("hf-path-missing", GOOD_SUITE, "hf:./no/such/model", "--model", "no model directory"),
    ("bad-spec-option", GOOD_SUITE, "openai:http://127.0.0.1:9/v1@m?timeout=soon", "--model",
     "not a number"),
]


@pytest.mark.parametrize(("case", "suite", "model", "field", "words"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_no_database(
    cli: CliRun, tmp_path: Path, case: str, suite: str, model: str, field: str, words: str
) -> None:
    _write_data(tmp_path)
    (tmp_path / "suite.yaml").write_text(suite)
    db = tmp_path / "out.db"
    result = cli("run", "--model", model, "--suite", str(tmp_path / "suite.yaml"),
                 "--db", str(db), "--quiet")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("evalarena: error: ")
    source = "--model" if field == "--model" else "suite.yaml"
    assert source in line and field in line and words in line, line
    assert result.stdout == ""
    assert not db.exists(), "bad input must not create or touch the database"


def test_bad_data_line_names_the_file(cli: CliRun, tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text(GOOD_SUITE)
    (tmp_path / "data.jsonl").write_text('{"id": "1", "question": "q", "answer": "a"}\n{oops\n')
    result = cli("run", "--model", "smollm2-135m", "--suite", str(tmp_path / "suite.yaml"),
                 "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2
    assert "data.path" in result.stderr and "line 2 is not JSON" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_empty_data_is_refused(cli: CliRun, tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text(GOOD_SUITE)
    _write_data(tmp_path, [])
    result = cli("run", "--model", "smollm2-135m", "--suite", str(tmp_path / "suite.yaml"),
                 "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2 and "no rows" in result.stderr


def test_unknown_suite_name_lists_shipped_suites(cli: CliRun, tmp_path: Path) -> None:
    result = cli("run", "--model", "smollm2-135m", "--suite", "no-such-suite",
                 "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2
    assert "--suite" in result.stderr and "smoke" in result.stderr


def test_existing_database_is_untouched_by_bad_input(cli: CliRun, tmp_path: Path) -> None:
    from harness.store import Store

    db = tmp_path / "keep.db"
    Store(db).close()
    before = db.read_bytes()
    _write_data(tmp_path)
    (tmp_path / "suite.yaml").write_text(GOOD_SUITE + "bogus: 1\n")
    result = cli("run", "--model", "smollm2-135m", "--suite", str(tmp_path / "suite.yaml"),
                 "--db", str(db))
    assert result.returncode == 2
    assert db.read_bytes() == before


# data files as they arrive from elsewhere: (case, file name, bytes, words the error says)
DATA_FILES = [
    ("jsonl-line-is-a-list", "data.jsonl",
     b'{"id": "1", "question": "q", "answer": "a"}\n["not", "an", "object"]\n',
     "line 2 is an array, not a JSON object"),
    ("lone-surrogate", "data.jsonl",
     b'{"id": "1", "question": "bad \\ud800 text", "answer": "a"}\n',
     "line 1: field 'question' holds an unpaired surrogate"),
    ("not-utf8", "data.jsonl", b'{"id": "1", "question": "caf\xe9", "answer": "a"}\n',
     "line 1 is not UTF-8 (byte 0xe9)"),
    ("csv-unterminated-quote", "data.csv",
     b'id,question,answer\n1,q,a\n2,"never closed,b\n3,c,d\n', "line 3: unexpected end of data"),
    ("csv-row-with-extra-cells", "data.csv", b'id,question,answer\n1,q,a\n2,q,a,EXTRA\n',
     "line 3: 4 fields, the header has 3"),
    ("csv-row-with-missing-cells", "data.csv", b'id,question,answer\n1,q\n',
     "line 2: 2 fields, the header has 3"),
    ("jsonl-line-is-a-number", "data.jsonl", b'{"id": "1", "question": "q", "answer": "a"}\n3\n',
     "line 2 is a number, not a JSON object"),
    ("jsonl-truncated-line", "data.jsonl", b'{"id": "1", "question": \n',
     "line 1 is not JSON"),
    ("only-blank-lines", "data.jsonl", b'\n\n   \n', "has no rows"),
    ("csv-header-only", "data.csv", b'id,question,answer\n', "has no rows"),
]


# item ids key runs, answers and votes: (case, rows, words the error says)
BAD_IDS = [
    ("duplicate-id", [{"id": "1", "question": "q", "answer": "a"},
                      {"id": "1", "question": "q2", "answer": "b"}],
     "id '1' is used by items 1 and 2"),
    ("duplicate-across-types", [{"id": 7, "question": "q", "answer": "a"},
                                {"id": "7", "question": "q2", "answer": "b"}],
     "id '7' is used by items 1 and 2"),
    ("object-id", [{"id": {"x": 1}, "question": "q", "answer": "a"}],
     "item 1: id {'x': 1} is dict"),
    ("null-id", [{"id": "1", "question": "q", "answer": "a"},
                 {"id": None, "question": "q", "answer": "a"}], "item 2: id None is NoneType"),
]


@pytest.mark.parametrize(("rows", "says"), [c[1:] for c in BAD_IDS], ids=[c[0] for c in BAD_IDS])
def test_bad_item_ids_are_refused(tmp_path: Path, rows: list[dict], says: str) -> None:
    from harness.errors import SuiteError
    from harness.suites.config import load_suite

    (tmp_path / "suite.yaml").write_text(GOOD_SUITE)
    _write_data(tmp_path, rows)
    with pytest.raises(SuiteError) as raised:
        load_suite(str(tmp_path / "suite.yaml"))
    assert says in str(raised.value) and "data.id_field" in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("name", "content", "says"), [c[1:] for c in DATA_FILES],
                         ids=[c[0] for c in DATA_FILES])
def test_bad_data_file_is_one_line_naming_the_line(tmp_path: Path, name: str, content: bytes,
                                                    says: str) -> None:
    from harness.errors import DataError
    from harness.suites.config import load_suite

    (tmp_path / "suite.yaml").write_text(GOOD_SUITE.replace("data.jsonl", name))
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError) as raised:
        load_suite(str(tmp_path / "suite.yaml"))
    # the suite file, then the field: data.path for the file, data for what it holds
    assert says in str(raised.value)
    assert str(raised.value).startswith((f"{tmp_path / 'suite.yaml'}: data.path: ",
                                         f"{tmp_path / 'suite.yaml'}: data: "))
    assert raised.value.exit_code == 2 and "\n" not in str(raised.value)


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    from harness.suites.config import load_suite

    (tmp_path / "suite.yaml").write_bytes(b"\xef\xbb\xbf" + GOOD_SUITE.encode())
    (tmp_path / "data.jsonl").write_bytes(
        b'\xef\xbb\xbf{"id": "1", "question": "q", "answer": "a"}\n')
    (tmp_path / "data.csv").write_bytes(b"\xef\xbb\xbfid,question,answer\n1,q,a\n")
    assert load_suite(str(tmp_path / "suite.yaml")).rows[0]["id"] == "1"
    (tmp_path / "suite.yaml").write_text(GOOD_SUITE.replace("data.jsonl", "data.csv"))
    assert load_suite(str(tmp_path / "suite.yaml")).rows == [
        {"id": "1", "question": "q", "answer": "a"}]


@pytest.mark.parametrize("case", ["suite-not-utf8", "data-lone-surrogate"])
def test_undecodable_input_on_the_command_line_writes_nothing(cli: CliRun, tmp_path: Path,
                                                              case: str) -> None:
    _write_data(tmp_path)
    if case == "suite-not-utf8":
        (tmp_path / "suite.yaml").write_bytes(GOOD_SUITE.encode() + b"# caf\xe9\n")
        says = "line 11: not UTF-8 text (byte 0xe9"
    else:
        (tmp_path / "suite.yaml").write_text(GOOD_SUITE)
        (tmp_path / "data.jsonl").write_bytes(b'{"id": "1", "question": "\\udfff", '
                                              b'"answer": "a"}\n')
        says = "unpaired surrogate"
    result = cli("run", "--model", "smollm2-135m", "--suite", str(tmp_path / "suite.yaml"),
                 "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr and "suite.yaml" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_nul_in_data_is_kept_in_requests_and_stored_and_shown_safely(tmp_path: Path) -> None:
    """NUL is text: the prompt keeps it, a run stores the answer whole, the review app
    shows it as U+FFFD (what CommonMark does) instead of cutting the text there."""
    from helpers import ScriptedBackend

    from harness.runner import execute, plan_run
    from harness.store import Store
    from review_ui.render import markdown_html, text_html

    (tmp_path / "suite.yaml").write_text(GOOD_SUITE)
    (tmp_path / "data.jsonl").write_text(json.dumps(
        {"id": "1", "question": "before\x00after", "answer": "a"}) + "\n")
    # a remote spec: the manifest then skips torch, and the scripted backend answers
    plan = plan_run(str(tmp_path / "suite.yaml"), "openai:http://127.0.0.1:9/v1@m")
    (_, request), = plan.items
    assert "before\x00after" in request.messages[-1].content  # type: ignore[index]
    backend = ScriptedBackend(plan.model.identity, reply=lambda r: "an\x00swer")
    with Store(tmp_path / "nul.db") as store:
        assert execute(store, plan, lambda: backend).errors == 0
        assert store.completions([request.key])[request.key].texts == ("an\x00swer",)
    assert "before\ufffdafter" in markdown_html("before\x00after")
    assert text_html("a\x00b") == "a\ufffdb"
