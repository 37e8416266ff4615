"""The one place that talks SQL. Everything else gets and gives typed values.

A single SQLite file in WAL mode holds the whole pipeline. Writes that belong
together go in one transaction, so a crash (even kill -9) leaves whole rows
only, and a rerun finds exactly what is done by looking for request keys.

``Store`` is assembled from one mixin per area of the pipeline (``runs.py``
for runs and their answers; later stages add theirs), all built on ``Tables``
(``tables.py``: the connection and the transaction helper) and these migrations.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from types import ModuleType

from harness.errors import StoreError
from harness.store.contamination import Check, ContaminationTables, Signal
from harness.store.judgments import JudgmentTables
from harness.store.migrations import MIGRATIONS
from harness.store.ratings import RatingTables
from harness.store.records import RunRecord, ScoreRow, StoredSample, utc_now
from harness.store.review import ReviewTables
from harness.store.runs import RunTables
from harness.store.stats import StatsTables


def _statements(script: str) -> list[str]:
    """A migration's statements, one by one (``executescript`` would commit the open
    transaction first, dropping the lock). ``sqlite3.complete_statement`` keeps a
    trigger's ``BEGIN ... END;`` body in one piece."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n\t;"):
                statements.append(pending.strip())
            pending = ""
    return statements


def _sqlite_utils() -> ModuleType:
    """sqlite-utils, imported on first use and without pandas.

    When pandas is installed, sqlite-utils imports it (0.6 s, more than the rest of
    a read-only command) only to accept DataFrame values, which the store never
    writes. So unless pandas is already loaded, its import is refused while
    sqlite-utils loads, then allowed again for everyone else."""
    if "sqlite_utils" in sys.modules:
        return sys.modules["sqlite_utils"]
    blocked = "pandas" not in sys.modules
    if blocked:
        sys.modules["pandas"] = None  # type: ignore[assignment]  # makes `import pandas` fail
    try:
        import sqlite_utils
    finally:
        if blocked:
            del sys.modules["pandas"]
    return sqlite_utils


class Store(RunTables, ReviewTables, JudgmentTables, RatingTables, StatsTables,
            ContaminationTables):
    """A connection to one evalarena database, migrated to the current schema."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                               check_same_thread=False)
        self.db = _sqlite_utils().Database(conn)
        self.conn = conn
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{self.path}: not a usable evalarena database ({exc})") from exc

    def _migrate(self) -> None:
        """Apply the pending migrations, holding the write lock from the first read of
        the schema version to the last statement: two processes opening an old
        database at once, one migrates and the other waits, then finds nothing to do."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this evalarena "
                    f"({len(MIGRATIONS)}); upgrade evalarena"
                )
            for number in range(version, len(MIGRATIONS)):
                for statement in _statements(MIGRATIONS[number]):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number + 1}")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Check", "RunRecord", "ScoreRow", "Signal", "Store", "StoredSample", "utc_now"]
