"""The robustness report (harness/robustness.py, `evalarena robustness`): a clean run
against its perturbed runs, from the database alone.

A scripted model that knows only the clean questions makes the numbers known in
advance (every edited question is answered wrong): the paired difference, the
consistency, the worst case and both gates (`robustness --fail-if-worse`, `compare
--fail-if-worse`) are checked against them. The embedded model then runs the smoke
suites with every perturbation they list, through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import CliRun, ScriptedBackend

from harness.robustness import robustness_report
from harness.runner import execute, plan_run
from harness.store import Store
from harness.suites.config import load_suite
from harness.suites.robustness_block import Perturbation

MODEL = "smollm2-135m"  # the spec the runs are planned for; the scripted backend answers


def _known_answers() -> dict[str, str]:
    return {row["question"]: row["answer"] for row in load_suite("smoke").rows}


@pytest.fixture(scope="module")
def scripted_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    answers = _known_answers()

    def reply(request) -> str:  # type: ignore[no-untyped-def]
        return answers.get(request.messages[-1].content, "no idea")

    db = tmp_path_factory.mktemp("robust") / "r.db"
    runs: dict[str, str] = {}
    with Store(db) as store:
        for label, perturbation in [("clean", None),
                                    ("typos", Perturbation(kind="typos", rate=0.3)),
                                    ("case", Perturbation(kind="case", mode="upper")),
                                    ("numbers", Perturbation(kind="numbers", mode="words"))]:
            plan = plan_run("smoke", MODEL, perturbation=perturbation)
            execute(store, plan, lambda: ScriptedBackend(MODEL, reply=reply))
            runs[label] = plan.run_id
    return db, runs


def test_the_report_holds_the_numbers_a_known_model_gives(
        scripted_db: tuple[Path, dict[str, str]]) -> None:
    db, runs = scripted_db
    questions = [row["question"] for row in load_suite("smoke").rows]
    digits = sum(any(c.isdigit() for c in q) for q in questions)
    with Store(db) as store:
        report = robustness_report(store, runs["clean"])
        by_label = {row.label: row for row in report.rows}
        assert sorted(by_label) == ["case-upper", "numbers-words", "typos@0.3"]
        assert report.metric == "exact_match" and report.higher_is_better
        for row in by_label.values():
            scores = {s.sample_id: s.value for s in store.scores(row.run_id)}
            assert row.paired.a == 1.0 and row.paired.n == 24  # the clean run is all right
            assert row.paired.b == pytest.approx(sum(scores.values()) / 24)
            assert row.consistency.value == pytest.approx(row.paired.b)  # right iff unchanged
            assert row.consistency.ci_low <= row.consistency.value <= row.consistency.ci_high
        # upper case changes every question: all wrong, and significantly so
        case = by_label["case-upper"]
        assert case.paired.b == 0.0 and case.paired.verdict == "worse"
        assert case.paired.diff == -1.0 and case.paired.p_holm < 1e-4
        # number words change exactly the questions with digits in them
        assert by_label["numbers-words"].paired.b == pytest.approx(1 - digits / 24)
        assert report.worst_case.value == 0.0 and report.worst_case.n == 24
        assert report.worse == ["case-upper", "numbers-words", "typos@0.3"]


def test_gates_and_json(cli: CliRun, scripted_db: tuple[Path, dict[str, str]]) -> None:
    db, runs = scripted_db
    gate = cli("robustness", runs["clean"], "--db", str(db), "--fail-if-worse",
               "--format", "json")
    assert gate.returncode == 3, gate.stderr
    body = json.loads(gate.stdout)
    assert body["worse"] == ["case-upper", "numbers-words", "typos@0.3"]
    assert {p["run"] for p in body["perturbations"]} == {runs["typos"], runs["case"],
                                                         runs["numbers"]}
    assert all(not math.isnan(p["ci_low"]) for p in body["perturbations"])
    lenient = cli("robustness", runs["clean"], "--db", str(db), "--fail-if-worse",
                  "--min-delta", "1.0", env={"COLUMNS": "250"})
    assert lenient.returncode == 0, lenient.stderr
    assert "within min-delta" in lenient.stdout and "worst case 0.0000" in lenient.stdout
    compared = cli("compare", runs["clean"], runs["case"], "--db", str(db), "--fail-if-worse")
    assert compared.returncode == 3 and "significantly worse" in compared.stderr
    assert "warning" not in compared.stderr  # a perturbed run of the suite: expected


def test_bad_requests_are_one_line(cli: CliRun, scripted_db: tuple[Path, dict[str, str]],
                                   tmp_path: Path) -> None:
    db, runs = scripted_db
    derived = cli("robustness", runs["typos"], "--db", str(db))
    assert derived.returncode == 2 and "give the clean run" in derived.stderr
    assert derived.stderr.count("\n") == 1
    metric = cli("robustness", runs["clean"], "--metric", "bleu", "--db", str(db))
    assert metric.returncode == 2 and "bleu" in metric.stderr
    alone = tmp_path / "alone.db"
    with Store(alone) as store:
        plan = plan_run("smoke", MODEL, limit=3)
        execute(store, plan, lambda: ScriptedBackend(MODEL))
    lonely = cli("robustness", plan.run_id, "--db", str(alone))
    assert lonely.returncode == 2 and "run it with --perturb first" in lonely.stderr


@pytest.mark.slow
def test_embedded_model_on_both_smoke_suites_with_their_perturbations(
        cli: CliRun, tmp_path: Path) -> None:
    """Acceptance: a multiple-choice and a generation suite, each with every perturbation
    its file lists, on the embedded model; the report is recomputed from the database."""
    db = str(tmp_path / "e.db")
    run = cli("run", "--model", MODEL, "--suite", "smoke-mc", "--suite", "smoke",
              "--perturb", "suite", "--limit", "12", "--quiet", "--db", db,
              env={"COLUMNS": "200"}, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    with Store(Path(db)) as store:
        clean = {r.suite: r.id for r in store.list_runs() if "~" not in r.suite}
        assert set(clean) == {"smoke", "smoke-mc"}
        assert len(store.list_runs()) == 2 + 5 + 4  # smoke-mc lists 5, smoke 4
    for suite, run_id in sorted(clean.items()):
        first = cli("robustness", run_id, "--db", db, "--format", "json")
        again = cli("robustness", run_id, "--db", db, "--format", "json")
        assert first.returncode == 0 and first.stdout == again.stdout, first.stderr
        body = json.loads(first.stdout)
        assert len(body["perturbations"]) == (5 if suite == "smoke-mc" else 4)
        for row in body["perturbations"]:
            assert row["n"] == 12 and row["ci_low"] <= row["diff"] <= row["ci_high"]
            assert 0.0 <= row["consistency"]["value"] <= 1.0
        if suite == "smoke-mc":  # the prompt does not show the choices: order cannot matter
            [moved] = [r for r in body["perturbations"] if r["label"] == "shuffle_choices"]
            assert moved["diff"] == 0.0 and moved["consistency"]["value"] == 1.0
        table = cli("robustness", run_id, "--db", db, env={"COLUMNS": "200"})
        print(f"\n{table.stdout}")


def test_the_site_shows_the_robustness_table(cli: CliRun,
                                             scripted_db: tuple[Path, dict[str, str]],
                                             tmp_path: Path) -> None:
    from helpers import seed_battles

    db, runs = scripted_db
    copy = tmp_path / "site.db"
    copy.write_bytes(db.read_bytes())
    with Store(copy) as store:
        seed_battles(store, "judge:j1", "smoke", 60, seed=1)
    published = cli("publish", "--out", str(tmp_path / "site"), "--db", str(copy))
    assert published.returncode == 0, published.stderr
    index = (tmp_path / "site" / "index.html").read_text()
    table = index.split('id="robustness-table"')[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + 3 and "case-upper" in table and "worse" in table
    assert "No contamination check" in index
    doc = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    rows = doc["beyond_accuracy"]["robustness"]
    assert {r["run"] for r in rows} == {runs["clean"]} and len(rows) == 3
    assert all(r["worst_case"] == 0.0 for r in rows)
