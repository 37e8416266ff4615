"""The store against fresh database files: migrations, WAL, whole-row writes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import RunNotFoundError, StoreError
from harness.store import RunRecord, Store, utc_now
from harness.store.migrations import MIGRATIONS
from harness.types import (
    Completion,
    ErrorKind,
    GenerationParams,
    Message,
    Request,
    RequestKind,
    Sample,
)

EXPECTED_TABLES = {
    "runs", "requests", "run_samples", "completions", "request_errors", "scores", "metrics",
    "models", "judgments", "campaigns", "campaign_items", "annotators", "votes", "battles",
    "rating_snapshots", "slice_metrics", "run_invocations", "review_sessions",
    "contamination_checks", "contamination_signals",
}


def _request(text: str) -> Request:
    return Request(RequestKind.GENERATE, "m", messages=(Message("user", text),),
                   params=GenerationParams(max_tokens=4))


def _run(store: Store, run_id: str = "r1") -> None:
    now = utc_now()
    store.upsert_run(RunRecord(run_id, "m", "s", "h", "running", None, 0, 2, {"x": 1}, now, now))


def test_fresh_database_is_fully_migrated_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    assert store.schema_version == len(MIGRATIONS)
    assert set(store.db.table_names()) == EXPECTED_TABLES
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    # reopening applies nothing twice
    again = Store(tmp_path / "a.db")
    assert again.schema_version == len(MIGRATIONS)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this evalarena"):
        Store(path)


OPEN_WHEN_TOLD = """
import sys, time
from pathlib import Path
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
from harness.store import Store
with Store(sys.argv[1]) as store:
    store.conn.execute("INSERT INTO annotators (name, role, password_hash, created_at) "
                       "VALUES (?, 'annotator', 'x', 'now')", (sys.argv[3],))
    print(store.schema_version)
"""


def test_two_processes_opening_an_old_database_at_once_both_work(tmp_path: Path) -> None:
    """The write lock is taken before the schema version is read: one process migrates,
    the other waits and finds nothing left to do."""
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_WHEN_TOLD, str(db), str(go), name],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("first", "second")]
    # hold the write lock while both open the database: each can still read the old
    # schema version, so both would migrate if the version were read before the lock
    conn.execute("BEGIN IMMEDIATE")
    go.touch()
    time.sleep(3)
    conn.execute("COMMIT")
    conn.close()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    assert [out.strip() for out, _ in results] == [str(len(MIGRATIONS))] * 2
    with Store(db) as store:
        assert store.schema_version == len(MIGRATIONS)
        names = {r[0] for r in store.conn.execute("SELECT name FROM annotators")}
    assert names == {"first", "second"}


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable evalarena database"):
        Store(path)


def test_completions_and_errors_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    _run(store)
    ok, bad = _request("a"), _request("b")
    store.add_run_samples("r1", [(Sample("1", {"q": "a"}, "x"), ok),
                                 (Sample("2", {"q": "b"}, "y"), bad)])
    answer = Completion(texts=("hi",), finish_reasons=("stop",), prompt_tokens=3,
                        output_tokens=1, latency_s=0.5)
    store.save_completions("r1", "m", [(ok.key, answer),
                                       (bad.key, Completion.failed(ErrorKind.TIMEOUT, "slow", 3))])
    assert store.completed_keys([ok.key, bad.key]) == {ok.key}
    assert store.completions([ok.key])[ok.key] == answer
    errors = store.latest_errors("r1")
    assert list(errors) == [bad.key]
    assert errors[bad.key].kind is ErrorKind.TIMEOUT and errors[bad.key].attempts == 3
    assert store.get_request(bad.key) == bad
    # once the failed request is answered, it is no longer an error of the run
    store.save_completions("r1", "m", [(bad.key, answer)])
    assert store.latest_errors("r1") == {}


def test_a_failed_transaction_leaves_no_partial_rows(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    _run(store)
    req = _request("a")
    store.add_run_samples("r1", [(Sample("1", {}, "x"), req)])
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as conn:
        conn.execute("INSERT INTO scores VALUES ('r1','1','m',1.0,NULL)")
        conn.execute("INSERT INTO scores VALUES ('r1','1','m',1.0,NULL)")  # duplicate key
    assert store.db["scores"].count == 0


def test_run_lookup_by_prefix(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    _run(store, "abc123")
    _run(store, "abd456")
    assert store.get_run("abc").id == "abc123"
    with pytest.raises(RunNotFoundError):
        store.get_run("ab")  # ambiguous
    with pytest.raises(RunNotFoundError):
        store.get_run("zzz")


def test_request_key_is_stable_and_covers_everything_that_changes_the_answer() -> None:
    base = _request("a")
    assert base.key == _request("a").key
    assert Request.from_dict(base.to_dict()) == base
    different = [
        Request(RequestKind.GENERATE, "m2", messages=base.messages, params=base.params),
        _request("b"),
        Request(RequestKind.GENERATE, "m", messages=base.messages,
                params=GenerationParams(max_tokens=4, temperature=0.5)),
        Request(RequestKind.GENERATE, "m", messages=base.messages,
                params=GenerationParams(max_tokens=4, seed=1)),
        Request(RequestKind.GENERATE, "m", text="a", params=base.params),
    ]
    assert len({r.key for r in different} | {base.key}) == len(different) + 1
