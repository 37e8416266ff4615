"""What every table mixin of ``Store`` shares: the connection, sqlite-utils' view of
it, the database's path and the transaction helper. ``Store`` opens them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


class Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


class Tables:
    """The base of every mixin (``runs.py``, ``judgments.py``, ``review.py``,
    ``ratings.py``, ``stats.py``); the attributes are set by ``Store.__init__``."""

    conn: sqlite3.Connection
    db: sqlite_utils.Database
    path: Path

    def transaction(self) -> Transaction:
        return Transaction(self.conn)
