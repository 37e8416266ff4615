"""Bootstrap CIs cover the truth; clustered data needs the clustered bootstrap; slices."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, CliRun

from harness.errors import SuiteError
from harness.runner import score_all
from harness.stats.bootstrap import bootstrap_mean_ci
from harness.stats.slices import StatsConfig, bucket_label, check_stats, item_groups
from harness.store import Store
from harness.store.migrations import MIGRATIONS
from harness.suites.config import SuiteConfig, load_suite
from harness.types import Completion, Sample

REPEATS = 2000


def _coverage(datasets: list[tuple[np.ndarray, np.ndarray | None]], truth: float,
              rounds: int = 1000) -> float:
    covered = 0
    for seed, (values, clusters) in enumerate(datasets):
        _, low, high = bootstrap_mean_ci(values, seed=seed, rounds=rounds, clusters=clusters)
        covered += low <= truth <= high
    return covered / len(datasets)


def _clustered(rng: np.random.Generator, clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """0/1 outcomes whose success odds share a per-cluster effect (strong intra-cluster
    correlation), clusters of 2-8 items; by symmetry the true mean is 0.5."""
    sizes = rng.integers(2, 9, clusters)
    labels = np.repeat(np.arange(clusters), sizes)
    effect = rng.normal(0.0, 2.0, clusters)[labels]
    values = (rng.random(labels.size) < 1 / (1 + np.exp(-effect))).astype(float)
    return values, labels


def test_plain_bootstrap_covers_a_known_mean_93_to_97_percent() -> None:
    rng = np.random.default_rng(20240501)
    truth = 0.3
    datasets = [((rng.random(200) < truth).astype(float), None) for _ in range(REPEATS)]
    coverage = _coverage(datasets, truth)
    print(f"plain bootstrap, independent 0/1 items: coverage {coverage:.3f}")
    assert 0.93 <= coverage <= 0.97, coverage


def test_clustered_data_naive_bootstrap_undercovers_clustered_one_does_not() -> None:
    rng = np.random.default_rng(7)
    datasets = [_clustered(rng, 100) for _ in range(REPEATS)]
    clustered = _coverage(datasets, 0.5)
    naive = _coverage([(values, None) for values, _ in datasets[:500]], 0.5)
    print(f"clustered data: naive coverage {naive:.3f}, clustered {clustered:.3f}")
    assert naive < 0.88, naive  # items treated as independent: intervals far too narrow
    assert 0.93 <= clustered <= 0.97, clustered


def test_singleton_clusters_are_the_plain_bootstrap() -> None:
    values = np.random.default_rng(1).random(50)
    plain = bootstrap_mean_ci(values, seed=4)
    singletons = bootstrap_mean_ci(values, seed=4, clusters=list(range(50)))
    assert plain[0] == singletons[0]
    assert np.allclose(plain[1:], singletons[1:])


def test_clustered_edge_cases() -> None:
    assert bootstrap_mean_ci([1.0, 0.0, 1.0], clusters=["a", "a", "a"]) == (2 / 3,) * 3
    with pytest.raises(ValueError, match="2 cluster labels for 3 values"):
        bootstrap_mean_ci([1.0, 0.0, 1.0], clusters=["a", "b"])
    # the clustered interval is wider when clusters are internally alike
    values = [1.0] * 5 + [0.0] * 5 + [1.0] * 5 + [0.0] * 5
    labels = [i // 5 for i in range(20)]
    _, low_c, high_c = bootstrap_mean_ci(values, clusters=labels)
    _, low, high = bootstrap_mean_ci(values)
    assert high_c - low_c > high - low


def test_length_buckets_and_groups() -> None:
    assert [bucket_label(n, [64, 256]) for n in (1, 63, 64, 255, 256, 10_000)] == [
        "<64", "<64", "64-255", "64-255", ">=256", ">=256"]
    stats = StatsConfig.model_validate(
        {"slices": ["subject", "tags"], "length": {"of": "prompt_tokens", "edges": [10]}})
    sample = Sample("1", {"subject": "math", "tags": ["b", "a", "b"]}, "x")
    assert item_groups(stats, sample, Completion(texts=("x",), prompt_tokens=12)) == [
        ("subject", "math"), ("tags", "a"), ("tags", "b"), ("length", ">=10")]
    # an unanswered item has no token length: it is in its data slices only
    assert item_groups(stats, sample, None) == [("subject", "math"), ("tags", "a"),
                                                ("tags", "b")]
    with pytest.raises(ValueError, match="strictly increasing"):
        StatsConfig.model_validate({"length": {"edges": [5, 5]}})


def test_stats_block_is_checked_against_the_data(tmp_path: Path) -> None:
    rows = [{"id": str(i), "subject": f"s{i % 3}", "uid": str(i)} for i in range(300)]
    check_stats(StatsConfig(cluster="subject", slices=["subject"]), tmp_path / "s.yaml", rows)
    with pytest.raises(SuiteError, match=r"stats.cluster: the data has no field 'passage'"):
        check_stats(StatsConfig(cluster="passage"), tmp_path / "s.yaml", rows)
    with pytest.raises(SuiteError, match=r"stats.slices.0: 'uid' has 300 distinct values"):
        check_stats(StatsConfig(slices=["uid"]), tmp_path / "s.yaml", rows)


def _suite_with_stats(tmp_path: Path, stats: str) -> Path:
    """The smoke suite with a subject and a passage field, and a stats block."""
    rows = [json.loads(line) for line in (REPO / "tasks" / "smoke.jsonl").read_text()
            .splitlines() if line.strip()]
    with (tmp_path / "data.jsonl").open("w") as out:
        for i, row in enumerate(rows):
            row.update(subject=row["id"].split("-")[0], passage=f"p{i // 3}")
            out.write(json.dumps(row) + "\n")
    text = (REPO / "tasks" / "smoke.yaml").read_text().replace("path: smoke.jsonl",
                                                                "path: data.jsonl")
    path = tmp_path / "sliced.yaml"
    path.write_text(text.replace("name: smoke\n", "name: sliced\n") + stats)
    return path


def test_score_all_slices_and_clustered_summaries(tmp_path: Path) -> None:
    suite = load_suite(str(_suite_with_stats(
        tmp_path, "stats:\n  cluster: passage\n  slices: [subject]\n")))
    rows = suite.rows
    scored = [(Sample(r["id"], r, r["answer"]), None if i == 0 else
               Completion(texts=(r["answer"] if i % 2 else "no",), output_tokens=1))
              for i, r in enumerate(rows)]
    scoring = score_all(suite.config, scored, seed=0)
    (summary,) = scoring.summaries
    assert summary.n == len(rows) - 1 and summary.n_errors == 1
    plain = score_all(suite.config.model_copy(update={"stats": None}), scored, seed=0)
    assert plain.slices == []
    assert summary.value == plain.summaries[0].value
    assert summary.ci_low != plain.summaries[0].ci_low  # clustered resampling differs
    subjects = {r["subject"] for r in rows}
    assert {s.group for s in scoring.slices} == subjects
    assert sum(s.n for s in scoring.slices) == summary.n
    assert sum(s.n_errors for s in scoring.slices) == 1
    first = next(s for s in scoring.slices if s.group == rows[0]["subject"])
    assert first.n_errors == 1


def test_stats_block_does_not_change_the_suite_hash(tmp_path: Path) -> None:
    plain = load_suite(str(_suite_with_stats(tmp_path, "")))
    sliced = load_suite(str(_suite_with_stats(tmp_path, "stats:\n  slices: [subject]\n")))
    assert plain.hash == sliced.hash
    assert isinstance(sliced.config, SuiteConfig) and sliced.config.stats is not None


def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(f"BEGIN;\n{MIGRATIONS[0]}\nPRAGMA user_version = 1;\nCOMMIT;")
    conn.execute("INSERT INTO requests VALUES ('k', 'generate', 'm', '{}', 'now')")
    conn.execute("INSERT INTO completions VALUES ('k', '[\"hi\"]', '[\"stop\"]', '[]', '[]', "
                 "'[]', 3, 1, 0.5, 'b', 'r', 'now')")
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        (answer,) = store.completions(["k"]).values()
        assert answer.texts == ("hi",) and answer.latency_s == 0.5 and answer.ttft_s is None


def test_show_prints_slices_of_an_imported_run(cli: CliRun, tmp_path: Path) -> None:
    suite = _suite_with_stats(tmp_path, "stats:\n  slices: [subject]\n  length:\n"
                                        "    of: question\n    edges: [20]\n")
    rows = [json.loads(line) for line in (tmp_path / "data.jsonl").read_text().splitlines()]
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"id": r["id"], "answer": r["answer"]}) + "\n"
                               for r in rows))
    db = str(tmp_path / "s.db")
    imported = cli("import", str(answers), "--suite", str(suite), "--name", "x", "--db", db)
    assert imported.returncode == 0, imported.stderr
    run_id = imported.stdout.split(" as run ")[1].split()[0]
    shown = cli("show", run_id, "--db", db, env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "slices" in shown.stdout and " <20 " in shown.stdout and " >=20 " in shown.stdout
    for subject in {r["subject"] for r in rows}:
        assert f" {subject} " in shown.stdout
    assert "latency p50/p90/p99: not measured" in shown.stdout  # imported answers: no timing
    with Store(db) as store:
        stored = store.slice_summaries(run_id)
        assert {s.slice for s in stored} == {"subject", "length"}
        assert all(s.value == 1.0 for s in stored)
