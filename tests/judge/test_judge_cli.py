"""`evalarena import`, `judge` and `judge-report` through the real command.

Bad input is one line on stderr naming the file or option and the field,
exit code 2, and the database exactly as it was.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import CliRun

from harness.suites.config import load_suite

SUITE = """\
name: tiny-judge
license: test data
kind: generate
data: {path: data.jsonl, id_field: id}
prompt:
  user: "{{ question }}"
target: "{{ answer }}"
metrics: [exact_match]
judge:
  single: mt-bench-single
  pairwise: mt-bench-pair
"""
QUESTIONS = [{"id": f"q{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)}
             for i in range(4)]


def _answers(path: Path, name: str, rows: list[dict] | None = None) -> Path:
    rows = rows if rows is not None else [
        {"id": q["id"], "model": name, "answer": q["answer"]} for q in QUESTIONS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A suite, its data, and a database holding two imported models (built once)."""
    import os
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("judge-cli")
    (folder / "data.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    (folder / "suite.yaml").write_text(SUITE)
    for name in ("alpha", "beta"):
        result = subprocess.run(
            [sys.executable, "-m", "harness", "import",
             str(_answers(folder / f"{name}.jsonl", name)), "--suite", "suite.yaml",
             "--db", "j.db"], capture_output=True, text=True, cwd=folder, check=False,
            env={**os.environ, "COLUMNS": "200"})
        assert result.returncode == 0, result.stderr
        assert f"import:{name}: 4 answers" in result.stdout
    return folder


@pytest.fixture
def project(prepared: Path, tmp_path: Path) -> Path:
    """A private copy of the prepared project (the `cli` fixture runs in tmp_path)."""
    for path in prepared.iterdir():
        if path.is_file() and not path.name.endswith(("-wal", "-shm")):
            shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_import_is_a_first_class_run_and_idempotent(project: Path, cli: CliRun) -> None:
    listing = cli("runs", "--db", "j.db", "--format", "json").stdout
    runs = {r["model"]: r for r in json.loads(listing)}
    assert runs.keys() == {"import:alpha", "import:beta"}
    assert runs["import:alpha"]["metric"] == "exact_match" and runs["import:alpha"]["value"] == 1.0
    again = cli("import", "alpha.jsonl", "--suite", "suite.yaml", "--db", "j.db")
    assert again.returncode == 0 and "new 0, already stored 4" in again.stdout
    changed = _answers(project / "alpha2.jsonl", "alpha",
                       [{"id": "q0", "model": "alpha", "answer": "five"}])
    clash = cli("import", str(changed), "--suite", "suite.yaml", "--db", "j.db")
    assert clash.returncode == 2 and "already has different answers" in clash.stderr


def _bad_import_cases(folder: Path) -> list[tuple[str, list[str], str, str]]:
    good = {"id": "q0", "model": "m", "answer": "0"}
    return [
        ("missing-file", ["nope.jsonl"], "nope.jsonl", "no such file"),
        ("not-json", [str(_raw(folder / "a.jsonl", '{"id": "q0"\n'))], "line 1", "not JSON"),
        ("missing-id", [str(_answers(folder / "b.jsonl", "m", [{"model": "m", "answer": "x"}]))],
         "line 1: id", "missing"),
        ("missing-answer", [str(_answers(folder / "c.jsonl", "m", [{"id": "q0", "model": "m"}]))],
         "line 1: answer", "missing"),
        ("answer-not-text", [str(_answers(folder / "d.jsonl", "m",
                                          [{**good, "answer": {"text": "x"}}]))],
         "line 1: answer", "must be a string"),
        ("unknown-item", [str(_answers(folder / "e.jsonl", "m", [{**good, "id": "q99"}]))],
         "line 1: id", "not an item of suite"),
        ("duplicate-item", [str(_answers(folder / "f.jsonl", "m", [good, good]))],
         "line 2: id", "appears twice"),
        ("no-model-name", [str(_answers(folder / "g.jsonl", "m", [{"id": "q0", "answer": "x"}]))],
         "line 1: model", "give --name"),
        ("two-model-names", [str(_answers(folder / "h.jsonl", "m",
                                          [good, {**good, "id": "q1", "model": "n"}]))],
         "model", "2 different models"),
        ("bad-name", [str(_answers(folder / "i.jsonl", "m")), "--name", "has space"],
         "--name", "letters"),
        ("bad-answer-path", [str(_answers(folder / "j.jsonl", "m")), "--answer-field",
                             "messages.-1.content"], "line 1: messages.-1.content", "missing"),
    ]


def _raw(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_bad_imports_are_one_line_exit_2_and_leave_the_database(project: Path,
                                                               cli: CliRun) -> None:
    before = (project / "j.db").read_bytes()
    for case, args, field, words in _bad_import_cases(project):
        result = cli("import", *args, "--suite", "suite.yaml", "--db", "j.db")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (case, result.stderr)
        assert field in lines[0] and words in lines[0], (case, lines[0])
    assert (project / "j.db").read_bytes() == before


BAD_JUDGE = [
    ("suite-without-judge-block", ["--suite", "smoke", "--model", "import:alpha"],
     "judge", "no judge block"),
    ("unknown-mode", ["--mode", "triple"], "--mode", "not one of"),
    ("unknown-policy", ["--policy", "coin"], "--policy", "not one of"),
    ("unknown-combine", ["--combine", "vote"], "--combine", "not one of"),
    ("unknown-contestant", ["--model", "import:gamma"], "import:gamma", "no run of suite"),
    ("duplicate-contestant", ["--model", "import:alpha", "--model", "import:alpha"],
     "import:alpha", "two contestants"),
    ("baseline-not-a-contestant", ["--mode", "pairwise", "--baseline", "import:gamma"],
     "--baseline", "must also be one of"),
    ("baseline-in-single-mode", ["--baseline", "import:beta", "--model", "import:beta"],
     "--baseline", "only applies"),
    ("pairwise-needs-two", ["--mode", "pairwise", "--model", "import:alpha"],
     "--model", "at least two"),
    ("bad-judge-spec", ["--judge", "gpt:4"], "--model", "unknown model spec"),
    ("same-judge-twice", ["--judge", "smollm2-135m", "--judge", "smollm2-135m"], "--judge",
     "named twice"),
    ("bad-label", ["--label", "a b"], "--label", "letters"),
    ("unknown-template", ["--template", "mt-bench-grade"], "--template",
     "unknown judge template"),
    ("template-for-the-other-mode", ["--template", "mt-bench-pair"], "--template",
     "is for pairwise judging"),
    ("template-needs-a-missing-field", ["--mode", "pairwise", "--template",
                                        "arena-hard-package"], "--template", "'category'"),
]


@pytest.mark.parametrize(("case", "args", "field", "words"), BAD_JUDGE,
                         ids=[c[0] for c in BAD_JUDGE])
def test_bad_judge_input_is_one_line_exit_2_and_leaves_the_database(
        project: Path, cli: CliRun, case: str, args: list[str], field: str, words: str) -> None:
    before = (project / "j.db").read_bytes()
    defaults = {"--suite": ["suite.yaml"], "--judge": ["smollm2-135m"],
                "--model": ["import:alpha", "--model", "import:beta"]}
    extra = [x for option, values in defaults.items() if option not in args
             for x in (option, *values)]
    result = cli("judge", *extra, *args, "--db", "j.db", "--quiet")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("evalarena: error: ")
    assert field in lines[0] and words in lines[0], lines[0]
    assert (project / "j.db").read_bytes() == before


BAD_JUDGE_BLOCKS = [
    ("unknown-field", "  single: mt-bench-single\n  polcy: drop\n", "judge.polcy",
     "unknown field"),
    ("unknown-template", "  single: mt-bench-grade\n", "judge.single", "unknown judge template"),
    ("template-for-the-other-mode", "  single: mt-bench-pair\n", "judge.single",
     "is for pairwise judging"),
    ("missing-template-file", "  pairwise: mine.yaml\n", "judge.pairwise", "no judge template"),
    ("question-names-missing-field", "  single: mt-bench-single\n  question: '{{ prompt }}'\n",
     "judge.question", "'prompt'"),
    ("reference-syntax-error", "  single: mt-bench-single\n  reference: '{{ answer '\n",
     "judge.reference", "syntax error"),
    ("bad-policy", "  single: mt-bench-single\n  policy: coin\n", "judge.policy",
     "'tie' or 'drop'"),
    ("no-template", "  max_tokens: 8\n", "judge", "name a template"),
]


@pytest.mark.parametrize(("case", "block", "field", "words"), BAD_JUDGE_BLOCKS,
                         ids=[c[0] for c in BAD_JUDGE_BLOCKS])
def test_bad_judge_block_is_a_suite_error(tmp_path: Path, case: str, block: str,
                                          field: str, words: str) -> None:
    from harness.errors import SuiteError

    (tmp_path / "data.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    (tmp_path / "s.yaml").write_text(SUITE.partition("judge:\n")[0] + "judge:\n" + block)
    with pytest.raises(SuiteError) as caught:
        load_suite(str(tmp_path / "s.yaml"))
    assert field in str(caught.value) and words in str(caught.value), str(caught.value)


def test_judge_block_on_multiple_choice_suite_is_refused(tmp_path: Path) -> None:
    from harness.errors import SuiteError

    (tmp_path / "data.jsonl").write_text(json.dumps(
        {"q": "x", "options": ["a", "b"], "label": 0}) + "\n")
    (tmp_path / "s.yaml").write_text(
        "name: mc\nlicense: t\nkind: multiple_choice\ndata: {path: data.jsonl}\n"
        "prompt: {text: '{{ q }}'}\nchoices: {field: options}\ntarget: '{{ label }}'\n"
        "metrics: [accuracy]\njudge: {single: mt-bench-single}\n")
    with pytest.raises(SuiteError, match="only a generate suite can be judged"):
        load_suite(str(tmp_path / "s.yaml"))


def test_judge_block_does_not_change_the_suite_hash(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    (tmp_path / "a.yaml").write_text(SUITE)
    (tmp_path / "b.yaml").write_text(SUITE.partition("judge:\n")[0])
    assert load_suite(str(tmp_path / "a.yaml")).hash == load_suite(str(tmp_path / "b.yaml")).hash


def test_judge_report_on_empty_and_unknown(project: Path, cli: CliRun) -> None:
    empty = cli("judge-report", "--db", "j.db")
    assert empty.returncode == 0 and "no judgments yet" in empty.stdout
    unknown = cli("judge-report", "--db", "j.db", "--judge", "nobody")
    assert unknown.returncode == 2 and "--judge" in unknown.stderr
    assert cli("judge-report", "--db", "none.db").returncode == 2


def test_shipped_judge_suites_load() -> None:
    mt = load_suite("mt-bench")
    assert len(mt.rows) == 80 and mt.config.judge is not None and mt.config.metrics == []
    assert "Apache" in mt.config.license
    arena = load_suite("arena-hard")
    assert len(arena.rows) == 750 and arena.config.judge is not None


@pytest.mark.slow
def test_judge_where_takes_a_subset_and_widening_reuses_it(project: Path, cli: CliRun) -> None:
    """--where judges only the matching items; judging more later asks the judge only
    about the new ones. The embedded model judges by its verdict probabilities."""
    base = ["judge", "--suite", "suite.yaml", "--mode", "pairwise", "--verdict", "likelihood",
            "--judge", "smollm2-135m", "--model", "import:alpha", "--model", "import:beta",
            "--quiet", "--db", "j.db"]
    first = cli(*base, "--where", "id=q1", cwd=project, env={"COLUMNS": "200"})
    assert first.returncode == 0, first.stderr
    judgments, generated, reused = _counts(first.stdout)
    # both orders show two equal answers here, so they may be one request
    assert judgments == 2 and generated >= 1 and reused == 0
    wider = cli(*base, "--where", "id=q1,q2", cwd=project, env={"COLUMNS": "200"})
    assert wider.returncode == 0, wider.stderr
    assert _counts(wider.stdout) == (4, generated, generated)  # q1's verdicts reused
    unknown = cli(*base, "--where", "nope=1", cwd=project)
    assert unknown.returncode == 2 and "--where" in unknown.stderr and "nope" in unknown.stderr


def _counts(stdout: str) -> tuple[int, ...]:
    row = re.search(r"│ smollm2-135m\S*\s*│\s*(\d+)\s*│\s*(\d+)\s*│\s*(\d+)", stdout)
    assert row, stdout
    return tuple(int(g) for g in row.groups())
