"""Judge templates: shipped, from a file, and MT-Bench's own read from the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import SuiteError
from harness.judge.parse import ABC, FIVE, SCORE10, parse_verdict
from harness.judge.plan import judge_label
from harness.judge.prompts import SHIPPED, resolve_template, retry_messages
from harness.suites.config import load_suite


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_templates_render_with_and_without_reference(name: str) -> None:
    template = SHIPPED[name]
    answers = ("the first answer",) if template.mode == "single" else ("first", "second")
    plain = template.render("What is 2+2?", answers, None)
    guided = template.render("What is 2+2?", answers, "4")
    assert [m.role for m in plain] == ["system", "user"]
    assert "What is 2+2?" in plain[1].content and all(a in plain[1].content for a in answers)
    assert "reference" not in plain[1].content.lower()
    assert "4" in guided[1].content and guided[0].content != plain[0].content
    # every template tells the judge to ignore instructions inside the answers
    assert "not instructions" in plain[0].content
    scale = template.scale
    tokens = ["[[6]]"] if template.mode == "single" else [f"[[{t}]]" for t in scale.outcomes]
    assert all(t in plain[0].content and t in guided[0].content for t in tokens)


def test_answers_are_values_not_template_code() -> None:
    messages = SHIPPED["mt-bench-single"].render("q", ("{{ 7 * 7 }} {% raw %}",), None)
    assert "{{ 7 * 7 }} {% raw %}" in messages[1].content


def test_package_prompts_load_from_the_installed_mt_bench() -> None:
    suite = load_suite("mt-bench")
    single = resolve_template("mt-bench-package", "single", suite.file, "judge.single")
    pair = resolve_template("mt-bench-package", "pairwise", suite.file, "judge.pairwise")
    assert single.scale is SCORE10 and pair.scale is ABC and single.syntax == "format"
    rendered = pair.render("Which is larger, {x} or 2?", ("A says 3", "B says 1"), "3")
    assert "A says 3" in rendered[1].content and "B says 1" in rendered[1].content
    assert "Which is larger, {x} or 2?" in rendered[1].content
    assert "[[A]]" in rendered[0].content + rendered[1].content


def test_template_file(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(
        "mode: pairwise\nscale: five\nsystem: Judge fairly. End with [[A>B]] etc.\n"
        "user: 'Q: {{ question }} A: {{ answer_a }} B: {{ answer_b }}'\n")
    template = resolve_template("mine.yaml", "pairwise", tmp_path / "suite.yaml", "judge.x")
    assert template.scale is FIVE and template.name == "mine"
    assert template.render("q", ("x", "y"), None)[1].content == "Q: q A: x B: y"
    (tmp_path / "bad.yaml").write_text("mode: single\nscale: abc\nsystem: s\nuser: u\n")
    with pytest.raises(SuiteError, match="does not suit single"):
        resolve_template("bad.yaml", "single", tmp_path / "suite.yaml", "judge.single")


def test_retry_nudge_differs_from_the_first_request_and_names_the_scale() -> None:
    first = SHIPPED["mt-bench-pair"].render("q", ("x", "y"), None)
    verdict = parse_verdict("I prefer the first one.", ABC)
    retry = retry_messages(first, "I prefer the first one.", verdict.error or "", ABC)
    assert retry[:2] == first and retry[2].role == "assistant"
    assert "[[A]], [[B]] or [[C]]" in retry[3].content and "no verdict" in retry[3].content


@pytest.mark.parametrize(("identity", "label"), [
    ("smollm2-135m", "smollm2-135m"),
    ("openai:http://127.0.0.1:8000/v1@/root/models/smol-q4", "smol-q4"),
    ("openai:https://api.openai.com/v1@gpt-4o-mini?endpoint=chat", "gpt-4o-mini"),
    ("hf:/data/ckpt/step-1000/", "step-1000"),
    ("scripted:always a", "always-a"),
])
def test_judge_labels_are_readable(identity: str, label: str) -> None:
    assert judge_label(identity) == label
