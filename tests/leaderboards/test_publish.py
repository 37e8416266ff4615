"""Boards from a real SQLite database: filters, hashes, breakdowns, task metrics,
and the published files (params and hash recorded, reproducible, escaped)."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import (
    EVIL,
    STRENGTHS,
    battle_rows,
    seed_battles,
    seed_scored_run,
    seed_uncategorised,
)

from harness.errors import InputError
from harness.store import Store
from harness.store.judgments import BattleRow
from leaderboards.board import BoardSpec, assemble, build_board
from leaderboards.publish import publish, slug

SPEC = BoardSpec(rounds=200, seed=7)
DATA_FILES = ("leaderboard.json", "leaderboard.md", "leaderboard.csv")


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two judges and human votes on two categories, plus finished and unfinished runs."""
    db = tmp_path_factory.mktemp("arena") / "arena.db"
    with Store(db) as store:
        seed_battles(store, "judge:j1", "smoke", 400, seed=1)
        seed_battles(store, "judge:j1", "mt-bench", 300, seed=2)
        seed_battles(store, "judge:j2", "smoke", 150, seed=3)
        seed_battles(store, "human", "smoke", 200, seed=4)
        seed_scored_run(store, "run-a-small", "alpha", "smoke", 10, {"accuracy": 0.9},
                 updated_at="2030-01-01T00:00:00")
        seed_scored_run(store, "run-a-full", "alpha", "smoke", 24, {"accuracy": 0.75, "f1": 0.7})
        seed_scored_run(store, "run-g", "gamma", "smoke", 24, {"accuracy": 0.5})
        seed_scored_run(store, "run-e", EVIL, "gsm8k", 16, {"exact_match": 0.25})
        seed_scored_run(store, "run-b-running", "beta", "smoke", 24, {"accuracy": 0.99},
                 status="running")
    return db


def test_selection_filters_by_source_prefix_and_category(arena: Path) -> None:
    with Store(arena) as store:
        assert store.battle_sources() == {"human": 200, "judge:j1": 700, "judge:j2": 150}
        assert store.battle_categories("judge") == {"mt-bench": 300, "smoke": 550}
        total = {(s, c): store.battle_selection(s, c).total
                 for s in ("all", "judge", "judge:j1", "human", "hum")
                 for c in (None, "smoke", "mt-bench")}
        again = store.battle_selection("judge", "smoke")
        rows = store.battle_selection().rows
    assert total[("all", None)] == 1050 and total[("judge", None)] == 850
    assert total[("judge:j1", None)] == 700 and total[("judge", "smoke")] == 550
    assert total[("human", "mt-bench")] == 0 and total[("all", "mt-bench")] == 300
    assert total[("hum", None)] == 0  # a prefix only matches whole source segments
    # aggregated in SQL: one row per (ordered pair, outcome), not per battle
    assert len(rows) <= 12 * 3 and sum(r[3] for r in rows) == 1050
    assert again.data_hash == store_hash(arena, "judge", "smoke")
    assert again.data_hash != store_hash(arena, "judge", None)


def store_hash(db: Path, source: str, category: str | None) -> str:
    with Store(db) as store:
        return store.battle_selection(source, category).data_hash


def test_data_hash_follows_the_battles(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    with Store(db) as store:
        seed_battles(store, "judge:j", "smoke", 50, seed=1)
        first = store.battle_selection().data_hash
        store.save_battles("judge:j", "smoke", battle_rows(50, seed=1, ref_prefix="smoke-"))
        assert store.battle_selection().data_hash == first  # rerun: same refs, same rows
        store.save_battles("judge:j", "smoke", battle_rows(1, seed=9, ref_prefix="new-"))
        assert store.battle_selection().data_hash != first


def test_board_recovers_known_strength_order(arena: Path) -> None:
    with Store(arena) as store:
        board = build_board(store, SPEC)
    records = board.records()
    assert [r["model"] for r in records] == list(STRENGTHS)
    assert board.n_battles == 1050
    assert all(r["ci_low"] < r["rating"] < r["ci_high"] for r in records)
    gaps = [records[i]["rating"] - records[i + 1]["rating"] for i in range(3)]
    assert all(40 < g < 160 for g in gaps), gaps  # true gaps are 100 points
    assert board.ratings.params["seed"] == 7 and board.ratings.params["rounds"] == 200


def test_breakdowns_per_source_and_category(arena: Path) -> None:
    with Store(arena) as store:
        everything = assemble(store, SPEC)
        judges = assemble(store, replace(SPEC, source="judge"))
        smoke = assemble(store, replace(SPEC, category="smoke"))
        human = build_board(store, replace(SPEC, source="human"))
    assert [b.key for b in everything.breakdowns] == [
        "source:human", "source:judge:j1", "source:judge:j2",
        "category:mt-bench", "category:smoke"]
    assert [b.key for b in judges.breakdowns] == [
        "source:judge:j1", "source:judge:j2", "category:mt-bench", "category:smoke"]
    assert judges.main.n_battles == 850
    assert [b.key for b in smoke.breakdowns] == [
        "source:human", "source:judge:j1", "source:judge:j2"]
    by_key = {b.key: b for b in everything.breakdowns}
    assert by_key["source:human"].records() == human.records()  # fitted on its own battles
    assert by_key["category:mt-bench"].n_battles == 300
    assert by_key["category:mt-bench"].spec.category == "mt-bench"


def test_task_metric_board_reads_finished_runs(arena: Path) -> None:
    with Store(arena) as store:
        cells, data_hash = store.task_metric_cells()
    got = {(c.model, c.suite, c.metric): (c.value, c.run_id, c.n) for c in cells}
    assert got == {
        ("alpha", "smoke", "accuracy"): (0.75, "run-a-full", 24),  # most items beats newest
        ("alpha", "smoke", "f1"): (0.7, "run-a-full", 24),
        ("gamma", "smoke", "accuracy"): (0.5, "run-g", 24),
        (EVIL, "gsm8k", "exact_match"): (0.25, "run-e", 16),
    }  # beta's run is still running: not on the board
    assert all(c.ci_low < c.value < c.ci_high for c in cells)
    assert data_hash.startswith("sha256:")


@pytest.fixture(scope="module")
def site(arena: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("site")
    with Store(arena) as store:
        lb = assemble(store, SPEC)
    publish(lb, out)
    return out, {"data_hash": lb.data_hash, "main_hash": lb.main.data_hash,
                 "task_hash": lb.tasks.data_hash}


def _all_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def test_every_published_file_records_params_and_data_hash(site: tuple[Path, dict]) -> None:
    out, hashes = site
    files = _all_files(out)
    pages = [f for f in files if f.startswith("models/")]
    assert {"index.html", *DATA_FILES} <= set(files) and len(pages) == 4
    for name, content in files.items():
        text = content.decode("utf-8")
        assert hashes["data_hash"] in text, name
        for needle in ("bootstrap", "200", "7"):
            assert needle in text, (name, needle)
    doc = json.loads(files["leaderboard.json"])
    assert doc["params"] == {"source": "all", "category": None, "method": "bt",
                             "ci": "bootstrap", "rounds": 200, "seed": 7, "anchor": None,
                             "anchor_value": 1000.0, "level": 0.95}
    assert doc["data_hash"] == hashes["data_hash"]
    assert doc["board"]["data_hash"] == hashes["main_hash"]
    assert doc["task_metrics"]["data_hash"] == hashes["task_hash"]
    assert [r["model"] for r in doc["board"]["ratings"]] == list(STRENGTHS)
    matrices = doc["board"]["matrices"]
    assert matrices["models"] == list(STRENGTHS)
    assert sum(map(sum, matrices["battles"])) == 2 * 1050
    assert matrices["win_rate"][0][0] is None and matrices["win_rate"][0][3] > 0.6
    assert len(doc["breakdowns"]) == 5 and sorted(doc["files"]) == sorted(files)
    rows = list(csv.DictReader(io.StringIO(files["leaderboard.csv"].decode())))
    assert len(rows) == 4 * 6 and {r["board"] for r in rows} >= {"main", "source:human"}
    assert all(r["data_hash"] == hashes["data_hash"] and r["seed"] == "7" for r in rows)
    markdown = files["leaderboard.md"].decode()
    assert "| method | bt |" in markdown and "## Task metrics" in markdown


def test_publishing_again_rewrites_identical_bytes(arena: Path, site: tuple[Path, dict],
                                                   tmp_path: Path) -> None:
    out, _ = site
    with Store(arena) as store:
        publish(assemble(store, SPEC), tmp_path / "again")
        other_seed = assemble(store, replace(SPEC, seed=8))
    assert _all_files(tmp_path / "again") == _all_files(out)
    publish(other_seed, tmp_path / "seed8")
    doc = json.loads((tmp_path / "seed8" / "leaderboard.json").read_text())
    assert doc["data_hash"] == site[1]["data_hash"]  # same data, other intervals
    assert (tmp_path / "seed8" / "index.html").read_bytes() != (out / "index.html").read_bytes()


def test_model_names_are_escaped_everywhere(site: tuple[Path, dict]) -> None:
    out, _ = site
    files = _all_files(out)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    for name, content in files.items():
        text = content.decode("utf-8")
        if name.endswith((".html", ".md")):
            assert "<script" not in text.lower(), name
    assert escaped in files["index.html"].decode()
    assert escaped in files["leaderboard.md"].decode()
    assert EVIL in json.loads(files["leaderboard.json"])["board"]["matrices"]["models"]
    page = out / "models" / slug(EVIL)
    assert re.fullmatch(r"[A-Za-z0-9._-]+\.html", page.name) and page.is_file()
    assert escaped in page.read_text()
    assert "Content-Security-Policy" in files["index.html"].decode()


def test_site_has_plots_and_task_board(site: tuple[Path, dict]) -> None:
    index = (site[0] / "index.html").read_text()
    for plot_id in ("ratings-plot", "win-rate-heatmap", "predicted-heatmap",
                    "battle-count-matrix", "task-plot-1"):
        assert f'id="{plot_id}"' in index
    assert index.count('class="ci-bar"') >= 4 * 6 + 4  # main, 5 breakdowns, task plots
    assert index.count('class="model-row') == 4 * 6
    task_table = index.split('id="task-metrics"')[1].split("</table>")[0]
    assert task_table.count('class="task-row"') == 3 and "0.750" in task_table
    assert "0.990" not in task_table  # beta's unfinished run
    alpha = (site[0] / "models" / slug("alpha")).read_text()
    assert "run-a-full" in alpha and 'id="opponents"' in alpha
    assert alpha.count("<tr>") >= 3 + 5  # three opponents, five breakdown boards


def test_elo_uses_the_battle_order_and_its_own_hash(arena: Path) -> None:
    with Store(arena) as store:
        elo = build_board(store, replace(SPEC, method="elo", ci="none"))
        bt = build_board(store, replace(SPEC, ci="none"))
        with pytest.raises(InputError, match="--ci"):
            build_board(store, replace(SPEC, method="elo", ci="sandwich"))
    assert elo.data_hash != bt.data_hash
    assert elo.records()[0]["model"] == "alpha" and elo.records()[-1]["model"] == EVIL
    assert all(r["ci_low"] == r["rating"] for r in elo.records())


def test_anchor_pins_a_model_and_breakdowns_without_it_fall_back(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    with Store(db) as store:
        seed_battles(store, "judge:j", "x", 200, seed=1)
        seed_battles(store, "judge:j", "y", 200, seed=2,
                     strengths={"alpha": 0.0, "beta": -50.0})
        lb = assemble(store, replace(SPEC, anchor="gamma", anchor_value=1200.0, ci="sandwich"))
        with pytest.raises(InputError, match="--anchor"):
            build_board(store, replace(SPEC, anchor="nobody"))
    assert lb.main.ratings["gamma"] == pytest.approx(1200.0)
    boards = {b.key: b for b in lb.breakdowns}
    assert boards["category:x"].spec.anchor == "gamma"
    assert boards["category:y"].spec.anchor is None  # gamma never played there


def test_no_matching_battles_is_an_input_error_that_lists_what_exists(arena: Path) -> None:
    with Store(arena) as store, pytest.raises(InputError) as caught:
        build_board(store, replace(SPEC, source="human", category="mt-bench"))
    message = str(caught.value)
    assert "no battles match" in message and "judge:j1 (700)" in message
    assert "mt-bench (300)" in message and caught.value.exit_code == 2
    with pytest.raises(InputError, match="--method"):
        BoardSpec(method="glicko").validate()


def test_self_battles_and_uncategorised_battles(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Store(db) as store:
        seed_battles(store, "human", "x", 100, seed=1)
        seed_uncategorised(store, "human", 60, seed=2)
        store.save_battles("human", "x", [BattleRow("self-1", "alpha", "alpha", "tie")])
        lb = assemble(store, SPEC)
    assert lb.main.n_battles == 160  # the self-battle is read but not fitted
    assert any("against itself" in w for w in lb.main.ratings.warnings)
    assert [b.key for b in lb.breakdowns] == []  # one source, one named category


def test_stale_model_pages_are_removed_and_other_files_kept(tmp_path: Path) -> None:
    db, out = tmp_path / "p.db", tmp_path / "site"
    with Store(db) as store:
        seed_battles(store, "judge:j", "x", 120, seed=1)
        seed_battles(store, "judge:j", "y", 120, seed=2,
                     strengths={"alpha": 0.0, "beta": -50.0})
        publish(assemble(store, SPEC), out)
        (out / "models" / "notes.html").write_text("mine")
        assert (out / "models" / slug("gamma")).exists()
        publish(assemble(store, replace(SPEC, category="y")), out)
    assert not (out / "models" / slug("gamma")).exists()
    assert (out / "models" / slug("beta")).exists()
    assert (out / "models" / "notes.html").read_text() == "mine"


def test_a_tampered_leaderboard_json_never_deletes_outside_the_site(tmp_path: Path) -> None:
    """leaderboard.json is read back from --out: its file list is input, not trusted."""
    db, out = tmp_path / "p.db", tmp_path / "site"
    victims = [tmp_path / "victim.txt", out / "keep.txt"]
    with Store(db) as store:
        seed_battles(store, "human", "x", 60, seed=1)
        publish(assemble(store, SPEC), out)
        for victim in victims:
            victim.write_text("precious")
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        (outside / f"{slug('x')}").write_text("precious")
        (out / "models" / slug("linked")).symlink_to(outside / slug("x"))
        doc = json.loads((out / "leaderboard.json").read_text())
        doc["files"] += ["models/../../victim.txt", "models/../keep.txt", "../victim.txt",
                         "/etc/hostname", f"models/{slug('linked')}", "models/",
                         "models/sub/" + slug("x")]
        (out / "leaderboard.json").write_text(json.dumps(doc))
        publish(assemble(store, SPEC), out)
    assert all(v.read_text() == "precious" for v in victims)
    assert (outside / slug("x")).read_text() == "precious"
    assert (out / "models" / slug("linked")).is_symlink()  # not ours to remove


def test_snapshots_are_recorded_once_per_fit(tmp_path: Path) -> None:
    db = tmp_path / "snap.db"
    with Store(db) as store:
        seed_battles(store, "human", "x", 30, seed=1)
        board = build_board(store, replace(SPEC, ci="none"))
        ratings = [{"model": r["model"], "rating": r["rating"]} for r in board.records()]
        first = store.save_rating_snapshot("bt", board.spec.params(), board.data_hash, ratings)
        again = store.save_rating_snapshot("bt", board.spec.params(), board.data_hash, ratings)
        stored = store.rating_snapshots(board.data_hash)
    assert first == again and len(stored) == 1
    assert stored[0].params["seed"] == 7 and stored[0].ratings == ratings
