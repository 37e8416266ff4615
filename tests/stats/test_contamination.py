"""Contamination checks (harness/contamination): n-gram overlap by the GPT-3
definition, streamed from JSONL and text files (gzip too); membership scores by hand;
the stored signals, the report and `run --exclude-flagged` through the CLI.
benchmarks/contamination_validation.py holds the planted-corpus and fine-tune runs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from helpers import CliRun, ScriptedBackend

from harness.contamination import auroc, min_k, min_k_plus_plus, words
from harness.contamination import ngrams as ng
from harness.contamination.membership import TokenStatistics
from harness.runner import execute, plan_run
from harness.store import Store
from harness.suites.config import load_suite

LONG = ("the quick brown fox jumps over the lazy dog while the farmer sleeps under "
        "an old oak tree near the river")


def test_words_and_grams() -> None:
    assert words("It's 5 o'clock, Mr. Smith!") == ["it", "s", "5", "o", "clock", "mr", "smith"]
    assert len(ng.grams(words(LONG), 13)) == len(words(LONG)) - 12
    assert ng.grams(["a", "b"], 13) == {("a", "b")}  # shorter: the item itself


def test_overlap_coverage_and_near_misses(tmp_path: Path) -> None:
    tokens = words(LONG)
    index = ng.OverlapIndex({"hit": LONG, "short": "Two words", "miss": LONG.replace("fox", "cat")
                             + " extra words here"}, n=13)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": t}) for t in [
        "noise noise " + " ".join(tokens[:13]) + " noise",  # one 13-gram of 'hit' (and 'miss'?)
        " ".join(tokens[14:26]),  # 12 words: not an n-gram
        "TWO, words!",  # the short item, whole
    ]) + "\n")
    scan = ng.scan_corpus(index, [corpus])
    found = {o.sample_id: o for o in index.overlaps()}
    assert scan.documents == 3 and scan.bytes_read == corpus.stat().st_size
    assert found["hit"].matched == 1 and found["hit"].coverage == pytest.approx(13 / len(tokens))
    assert found["short"].dirty and found["short"].coverage == 1.0
    assert not found["miss"].dirty  # 'fox' -> 'cat' is inside the only shared 13 words


def test_text_files_see_ngrams_across_blocks_and_gzip(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ng, "TEXT_BLOCK_LINES", 2)
    tokens = words(LONG)
    lines = ["filler line one", "filler line two", " ".join(tokens[:7]),
             " ".join(tokens[7:13]), "filler"]
    plain, zipped = tmp_path / "a.txt", tmp_path / "b.txt.gz"
    plain.write_text("\n".join(lines) + "\n")
    with gzip.open(zipped, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    for path in (plain, zipped):
        index = ng.OverlapIndex({"x": LONG}, n=13)
        ng.scan_corpus(index, [path])
        assert index.overlaps()[0].matched == 1, path
    folder = tmp_path
    assert set(ng.corpus_files([folder])) == {plain, zipped}


def test_membership_scores_by_hand() -> None:
    stats = TokenStatistics((-1.0, -5.0, -2.0, -9.0, -0.5), (-2.0,) * 5, (1.0, 1.0, 2.0, 2.0, 1.0))
    assert min_k(stats, 0.4) == pytest.approx((-9.0 - 5.0) / 2)
    # standardised: 1, -3, 0, -3.5, 1.5; the lowest 40%: -3.5 and -3
    assert min_k_plus_plus(stats, 0.4) == pytest.approx(-3.25)
    assert auroc([3, 2, 1], [0, -1]) == 1.0
    assert auroc([1, 0], [1, 0]) == 0.5
    assert auroc([2], [1, 2, 3]) == pytest.approx((1 + 0.5) / 3)


@pytest.fixture
def scripted_run(tmp_path: Path) -> tuple[Path, str]:
    db = tmp_path / "c.db"
    plan = plan_run("smoke", "smollm2-135m")
    answers = {row["question"]: row["answer"] for row in load_suite("smoke").rows}
    with Store(db) as store:
        execute(store, plan, lambda: ScriptedBackend(
            "smollm2-135m", reply=lambda r: answers.get(r.messages[-1].content, "?")))
    return db, plan.run_id


def test_ngrams_report_and_exclude_flagged(cli: CliRun, scripted_run: tuple[Path, str],
                                           tmp_path: Path) -> None:
    db, run_id = scripted_run
    rows = load_suite("smoke").rows
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"blah {r['question']} {r['answer']} blah"})
                              + "\n" for r in rows[:3]))
    checked = cli("contamination", "ngrams", run_id, "--corpus", str(corpus), "--db", str(db))
    assert checked.returncode == 0, checked.stderr
    assert "24 items, 3 flagged" in checked.stdout
    with Store(db) as store:
        assert store.flagged_samples(run_id) == {r["id"] for r in rows[:3]}
    report = json.loads(cli("contamination", "report", run_id, "--db", str(db), "--format",
                            "json").stdout)
    [check] = report["checks"]
    assert check["method"] == "ngram" and check["flagged_share"]["value"] == pytest.approx(3 / 24)
    [split] = check["metrics"]
    assert split["unflagged"]["n"] == 21 and split["flagged"]["n"] == 3
    assert split["unflagged"]["value"] == 1.0  # the scripted model knows every answer
    rerun = cli("run", "--model", "smollm2-135m", "--suite", "smoke", "--exclude-flagged",
                "--db", str(db), "--quiet")
    assert rerun.returncode == 0, rerun.stderr
    assert "generated 0, reused 21" in " ".join(rerun.stdout.split())  # stored answers
    with Store(db) as store:
        [subset] = [r for r in store.list_runs() if r.id != run_id]
        assert subset.n_samples == 21 and len(subset.manifest["excluded"]) == 3


def test_bad_requests_are_one_line(cli: CliRun, scripted_run: tuple[Path, str],
                                   tmp_path: Path) -> None:
    db, run_id = scripted_run
    missing = cli("contamination", "ngrams", run_id, "--corpus", str(tmp_path / "nope.jsonl"),
                  "--db", str(db))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert missing.stderr.count("\n") == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    broken = cli("contamination", "ngrams", run_id, "--corpus", str(bad), "--db", str(db))
    assert broken.returncode == 2 and "line 2" in broken.stderr
    other_field = tmp_path / "body.jsonl"
    other_field.write_text('{"body": "some text"}\n')
    typo = cli("contamination", "ngrams", run_id, "--corpus", str(other_field), "--db", str(db))
    assert typo.returncode == 2 and "text field 'text'" in typo.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = cli("contamination", "ngrams", run_id, "--corpus", str(empty), "--db", str(db))
    assert nothing.returncode == 2 and "no .jsonl or .txt file" in nothing.stderr
    unchecked = cli("contamination", "report", run_id, "--db", str(db))
    assert unchecked.returncode == 2 and "no contamination check" in unchecked.stderr
    excluded = cli("run", "--model", "smollm2-135m", "--suite", "smoke", "--exclude-flagged",
                   "--db", str(db))
    assert excluded.returncode == 2 and "no contamination check" in excluded.stderr
    remote = cli("contamination", "membership", run_id, "--model",
                 "openai:http://127.0.0.1:9/v1@m?max_retries=0", "--db", str(db))
    assert remote.returncode == 1 and "no item could be scored (connection 24)" in remote.stderr
    assert remote.stderr.count("\n") == 1
    with Store(db) as store:
        assert store.checks(run_id) == []  # nothing stored


@pytest.mark.slow
def test_membership_on_the_embedded_model(cli: CliRun, scripted_run: tuple[Path, str]) -> None:
    db, run_id = scripted_run
    scored = cli("contamination", "membership", run_id, "--model", "smollm2-135m",
                 "--threshold", "-1.0", "--db", str(db))
    assert scored.returncode == 0, scored.stderr
    with Store(db) as store:
        signals = store.signals(run_id, "membership")
    assert len(signals) == 24
    for s in signals:
        assert s.detail["tokens"] > 0 and s.detail["min_k"] < 0
        assert s.flagged == (s.value > -1.0)
        assert s.detail["gap"] == pytest.approx(s.value - s.detail["perturbed"])
    report = json.loads(cli("contamination", "report", run_id, "--db", str(db), "--format",
                            "json").stdout)
    [check] = report["checks"]
    assert check["mean_gap"]["n"] == 24
