"""Every shipped suite loads from its installed data package, builds requests
for a --limit 3 subset, and has the known number of items; `evalarena suites`
lists them with counts and licences and survives a missing data package."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from helpers import CliRun
from typer.testing import CliRunner

from harness.suites.config import TASKS_DIR, load_suite
from harness.suites.requests import build_requests
from harness.types import RequestKind

KNOWN_SIZES = {
    "smoke": 24, "smoke-mc": 24, "gsm8k": 1319, "gsm8k-0shot": 1319, "mmlu": 14042,
    "mmlu-gen": 14042, "hellaswag": 100, "truthfulqa-mc1": 100, "ifeval": 541,
    "boolq": 3270, "piqa": 1500, "nq-open": 1769, "mt-bench": 80, "arena-hard": 750,
    "humaneval": 164, "gpqa-diamond": 198, "aime2025": 30,
}
SHIPPED = sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_suite_loads_and_builds_a_limited_run(name: str) -> None:
    suite = load_suite(name)
    assert suite.config.license.strip()
    if name in KNOWN_SIZES:
        assert len(suite.rows) == KNOWN_SIZES[name]
    items = build_requests(suite, "m", 3, 0)
    assert len(items) == 3 and len({r.key for _, r in items}) == 3
    assert build_requests(suite, "m", 3, 0) == items  # the same subset every time
    for sample, request in items:
        if suite.config.kind == "multiple_choice":
            assert request.kind is RequestKind.LOGLIKELIHOOD
            assert isinstance(sample.target, int) and 0 <= sample.target < len(sample.choices)
            assert len(request.continuations) == len(sample.choices) >= 2


def test_all_new_suites_are_shipped() -> None:
    assert {"gsm8k-0shot", "mmlu-gen", "truthfulqa-mc1", "boolq", "piqa", "ifeval",
            "nq-open"} <= set(SHIPPED)


def test_new_suites_targets_and_prompts() -> None:
    boolq = build_requests(load_suite("boolq"), "m", None, 0)
    assert {r.continuations for _, r in boolq} == {(" no", " yes")}
    assert sum(s.target == 1 for s, _ in boolq) == 2033  # the dev split's "True" answers
    for sample, _ in build_requests(load_suite("piqa"), "m", None, 0):
        assert sample.doc["answer"][3:].strip() == sample.choices[int(sample.target or 0)]
    gen_sample, gen_request = build_requests(load_suite("mmlu-gen"), "m", 1, 0)[0]
    assert gen_sample.target in {"A", "B", "C", "D"}
    assert gen_request.kind is RequestKind.GENERATE and gen_request.text is not None
    assert gen_request.text.count("\nAnswer:") == 6
    nq_sample, _ = build_requests(load_suite("nq-open"), "m", 1, 0)[0]
    assert str(nq_sample.target).startswith("[")
    ifeval_sample, ifeval_request = build_requests(load_suite("ifeval"), "m", 1, 0)[0]
    assert ifeval_request.messages is not None
    assert ifeval_request.messages[-1].content == ifeval_sample.doc["prompt"]


def test_suites_command_lists_counts_and_licences(cli: CliRun) -> None:
    result = cli("suites", env={"COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    for name in ("gsm8k-0shot", "mmlu-gen", "truthfulqa-mc1", "boolq", "piqa", "ifeval",
                 "nq-open"):
        line = next(li for li in result.stdout.splitlines() if f" {name} " in li)
        assert f" {KNOWN_SIZES[name]} " in line
        assert any(lic in line for lic in ("MIT", "Apache-2.0", "CC BY-SA 3.0", "AFL-3.0"))


def test_suites_command_shows_a_missing_data_package(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import cli
    from harness.suites import config as suite

    config = yaml.safe_load((TASKS_DIR / "boolq.yaml").read_text())
    config["data"]["package"] = "no_such_data_package_xyz"
    (tmp_path / "gone.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "smoke.yaml").write_text((TASKS_DIR / "smoke.yaml").read_text())
    (tmp_path / "smoke.jsonl").write_text((TASKS_DIR / "smoke.jsonl").read_text())
    monkeypatch.setattr(suite, "TASKS_DIR", tmp_path)
    result = CliRunner().invoke(cli.app, ["suites"])
    assert result.exit_code == 0, result.output
    assert "unavailable" in next(li for li in result.output.splitlines() if " gone " in li)
    assert " 24 " in next(li for li in result.output.splitlines() if " smoke " in li)
    listed = {s["name"]: s for s in json.loads(
        CliRunner().invoke(cli.app, ["suites", "--format", "json"]).output)}
    assert listed["gone"]["items"] is None and listed["smoke"]["items"] == 24
    assert "no_such_data_package_xyz" in listed["gone"]["description"]


def _quick_copy(name: str, tmp_path: Path, max_tokens: int) -> Path:
    """A copy of a shipped suite with a small generation budget (same data, in place)."""
    config = yaml.safe_load((TASKS_DIR / f"{name}.yaml").read_text())
    config["generation"]["max_tokens"] = max_tokens
    path = tmp_path / f"{name}-quick.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.slow
def test_new_suites_end_to_end_on_the_embedded_model(cli: CliRun, tmp_path: Path) -> None:
    db = tmp_path / "e2e.db"
    runs = [
        ("truthfulqa-mc1", ["--limit", "4"], ("accuracy", "acc_norm", "ece")),
        (str(_quick_copy("ifeval", tmp_path, 32)), ["--limit", "2"],
         ("ifeval_prompt_strict", "ifeval_prompt_loose", "ifeval_instruction_strict",
          "ifeval_instruction_loose")),
    ]
    for suite_arg, extra, metrics in runs:
        result = cli("run", "--model", "smollm2-135m", "--suite", suite_arg, *extra,
                     "--db", str(db), "--quiet", env={"COLUMNS": "200", "OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stderr
        for metric in metrics:
            assert metric in result.stdout
        assert "errors 0" in result.stdout
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT metric, value, ci_low, ci_high, n FROM metrics").fetchall()
    by_metric = {r[0]: r[1:] for r in rows}
    assert set(by_metric) >= {"ece", "ifeval_instruction_loose"}
    for value, low, high, n in by_metric.values():
        assert 0.0 <= low <= value <= high <= 1.0 and n in (2, 4)
    # loose is never below strict on the same responses
    assert by_metric["ifeval_prompt_loose"][0] >= by_metric["ifeval_prompt_strict"][0]
    assert by_metric["ifeval_instruction_loose"][0] >= by_metric["ifeval_instruction_strict"][0]


@pytest.mark.parametrize(("choices", "field"), [
    ({"values": ["no", "yes"], "pattern": "(.*)"}, "choices.pattern"),  # nothing to split
    ({"field": "options", "pattern": "(unclosed"}, "choices.pattern"),
    ({"values": ["no", "yes"], "field": "options"}, "choices"),  # two sources of choices
])
def test_bad_choice_sources_name_the_field(tmp_path: Path, choices: dict[str, object],
                                           field: str) -> None:
    from harness.errors import SuiteError

    (tmp_path / "d.jsonl").write_text('{"q": "x", "options": "A. a\\nB. b", "t": 0}\n')
    suite = {"name": "bad", "license": "x", "kind": "multiple_choice",
             "data": {"path": "d.jsonl"}, "prompt": {"text": "{{ q }}"}, "target": "{{ t }}",
             "choices": choices, "metrics": ["accuracy"]}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(suite))
    with pytest.raises(SuiteError) as info:
        load_suite(str(tmp_path / "bad.yaml"))
    assert info.value.field == field


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("gsm8k-0shot", "6 * 3 = 18 eggs.\nThe answer is **$1,234**.", "1234"),
    ("gsm8k-0shot", "The answer is: 18.", "18"),
    ("gsm8k-0shot", "She pays 5 + 3 = 8 dollars", "8"),  # no phrase: the last number
    ("gsm8k-0shot", "I am not sure.", None),
    ("mmlu-gen", " B.", "b"),  # lm_eval's rule: the first line, case and punctuation ignored
    ("mmlu-gen", " (C)\nbecause", "c"),
    ("mmlu-gen", " B. Because the contract was void", "b because the contract was void"),
])
def test_new_generate_suites_extract_answers(name: str, text: str, expected: str | None
                                             ) -> None:
    assert load_suite(name).config.extract.read(text) == expected
