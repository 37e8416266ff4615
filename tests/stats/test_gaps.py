"""Group gaps: per-group means with CIs, the largest gap with a bootstrap CI, and the
`gaps --max-gap` gate, on a real run stored in a fresh database."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import CliRun, ScriptedBackend

from harness.runner import execute, plan_run
from harness.stats.gaps import group_gap
from harness.store import Store

SUITE = """\
name: grouped
license: test data
kind: generate
data:
  path: data.jsonl
  id_field: id
prompt:
  text: "{{ question }}"
target: "yes"
metrics: [exact_match]
"""


def _run(tmp_path: Path, right: dict[str, float], name: str = "gaps.db") -> tuple[Path, str]:
    """A stored run of 40 items per group; group g answers right at the rate right[g]."""
    rows = [{"id": f"{g}{i}", "question": f"{g} {i}", "dialect": g,
             "tags": [g, "all"]} for g in right for i in range(40)]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "suite.yaml").write_text(SUITE)

    def reply(request):  # type: ignore[no-untyped-def]
        group, number = request.text.split()
        return "yes" if int(number) < right[group] * 40 else "no"

    db = tmp_path / name
    plan = plan_run(str(tmp_path / "suite.yaml"), "smollm2-135m")
    with Store(db) as store:
        execute(store, plan, lambda: ScriptedBackend(reply=reply))
    return db, plan.run_id


def test_gap_and_its_interval() -> None:
    rng = np.random.default_rng(0)
    values = {"a": list(rng.binomial(1, 0.9, 200)), "b": list(rng.binomial(1, 0.5, 200)),
              "tiny": [0.0, 0.0]}
    gap = group_gap("acc", "g", values, min_items=5)
    assert gap.best == "a" and gap.worst == "b"  # "tiny" is shown, not in the gap
    assert [g.group for g in gap.groups] == ["a", "b", "tiny"]
    # the interval holds the observed gap and the true one (0.4), and is far from 0
    assert gap.ci_low < gap.gap < gap.ci_high and gap.ci_low < 0.4 < gap.ci_high
    assert gap.ci_low > 0.15
    assert np.isnan(group_gap("acc", "g", {"a": [1.0] * 9}).gap)


def test_gaps_command_reports_and_gates(cli: CliRun, tmp_path: Path) -> None:
    db, run_id = _run(tmp_path, {"north": 1.0, "south": 0.5, "west": 0.75})
    shown = cli("gaps", run_id, "--by", "dialect", "--db", str(db), env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "largest gap 0.5000" in shown.stdout and "(north − south)" in shown.stdout
    gated = cli("gaps", run_id, "--by", "dialect", "--max-gap", "0.03", "--db", str(db))
    assert gated.returncode == 3
    assert "the gap between dialect groups is above 0.03 on exact_match" in gated.stderr
    assert cli("gaps", run_id, "--by", "dialect", "--max-gap", "0.9",
               "--db", str(db)).returncode == 0
    listed = json.loads(cli("gaps", run_id, "--by", "tags", "--format", "json",
                            "--db", str(db)).stdout)
    (metric,) = listed["metrics"]
    assert {g["group"] for g in metric["groups"]} == {"north", "south", "west", "all"}


def test_equal_groups_pass_the_gate(cli: CliRun, tmp_path: Path) -> None:
    db, run_id = _run(tmp_path, {"north": 0.5, "south": 0.5})
    done = cli("gaps", run_id, "--by", "dialect", "--max-gap", "0.03", "--db", str(db))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("args", "says"), [
    (("--by", "accent"), "--by: accent: the run's items have no such field"),
    (("--by", "dialect", "--metric", "bleu"), "--metric: bleu: the run has no per-item scores"),
])
def test_bad_gap_requests_are_one_line(cli: CliRun, tmp_path: Path, args: tuple[str, ...],
                                       says: str) -> None:
    db, run_id = _run(tmp_path, {"north": 1.0, "south": 0.5})
    done = cli("gaps", run_id, *args, "--db", str(db))
    assert done.returncode == 2 and says in done.stderr
    assert done.stderr.strip().count("\n") == 0
