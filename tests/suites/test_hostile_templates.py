"""Suite files and judge templates are shared like code; their templates run in
Jinja's immutable sandbox with bounds on what one expression may build
(harness/suites/templates.py). Each hostile template is one line naming file and
field, exit 2, nothing written, and no side effect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import CliRun

from harness.errors import SuiteError
from harness.judge.parse import SCORE10
from harness.judge.prompts import JudgeTemplate
from harness.suites.config import load_suite
from harness.suites.judge_block import render
from harness.suites.requests import build_requests

SHELL = "{{ cycler.__init__.__globals__.os.popen('touch PWNED').read() }}"
HOSTILE = {
    "python-internals": (SHELL, "unsafe"),
    "class-walk": ("{{ question.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
    "huge-repeat": ("{{ 'x' * 10**10 }}", "would build"),
    "huge-list": ("{{ [0] * 10**9 }}", "would build"),
    "huge-range": ("{% for i in range(10**9) %}x{% endfor %}", "range of"),
    "huge-power": ("{{ 7 ** 100000000 }}", "exponent"),
    "percent-width": ("{{ '%9999999999d' % 1 }}", "format width"),
    "brace-width": ("{{ '{:>9999999999}'.format(1) }}", "format width"),
    "filter-width": ("{{ question|center(10**10) }}", "filter center"),
    "format-filter-width": ("{{ '%9999999999s'|format(question) }}", "format width"),
    "mutate-data": ("{{ doc.update({'answer': 'x'}) }}", "unsafe"),
}


def _suite(tmp_path: Path, prompt: str) -> Path:
    (tmp_path / "data.jsonl").write_text(json.dumps({"id": "a", "question": "hi",
                                                     "answer": "x"}) + "\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: hostile\nlicense: test data\nkind: generate\n"
                     "data: {path: data.jsonl}\n"
                     f"prompt: {{user: {json.dumps(prompt)}}}\n"
                     'target: "{{ answer }}"\nmetrics: [exact_match]\n')
    return suite


@pytest.mark.parametrize(("template", "says"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_suite_template_is_an_input_error(tmp_path: Path, template: str,
                                                  says: str) -> None:
    suite = load_suite(str(_suite(tmp_path, template)))
    with pytest.raises(SuiteError) as raised:
        build_requests(suite, "m", None, 0)
    message = str(raised.value)
    assert "suite.yaml" in message and "prompt.user" in message and says in message
    assert "\n" not in message
    assert not (tmp_path / "PWNED").exists()


def test_ordinary_templates_still_work(tmp_path: Path) -> None:
    template = ("{{ question|upper }} {{ '%5.2f' % 3.14159 }} {{ '{:>4}'.format(7) }} "
                "{% for i in range(3) %}{{ i }}{% endfor %} {{ 'ab' * 3 }} {{ 2 ** 10 }}")
    _, request = build_requests(load_suite(str(_suite(tmp_path, template))), "m", None, 0)[0]
    assert request.messages[-1].content == "HI  3.14    7 012 ababab 1024"  # type: ignore[index]


def test_the_shell_attack_on_the_command_line(cli: CliRun, tmp_path: Path) -> None:
    result = cli("run", "--model", "smollm2-135m", "--suite", str(_suite(tmp_path, SHELL)),
                 "--db", "h.db")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "prompt.user" in result.stderr and "unsafe" in result.stderr
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "h.db").exists()


def test_judge_block_and_judge_template_files_are_sandboxed(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"judge\.question.*unsafe"):
        render("suite.yaml", "judge.question", SHELL, {"question": "q"}, "a")
    template = JudgeTemplate("mine", "single", SCORE10, "Grade fairly.", "{{ 'x' * 10**10 }}")
    with pytest.raises(SuiteError, match=r"judge template mine: user: .*would build"):
        template.render("q", ("an answer",), None)
    assert not (tmp_path / "PWNED").exists()


def test_format_syntax_prompts_take_plain_fields_only() -> None:
    package_like = JudgeTemplate("pkg", "single", SCORE10, "sys", "{answer.__class__}",
                                 syntax="format")
    with pytest.raises(SuiteError, match="not a plain name"):
        package_like.render("q", ("a",), None)
    plain = JudgeTemplate("pkg", "single", SCORE10, "sys", "Q: {question} A: {answer}",
                          syntax="format")
    assert plain.render("q", ("a",), None)[1].content == "Q: q A: a"
