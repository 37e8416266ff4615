"""SQL for leaderboards: battles selected by source and category, rating snapshots,
and the task-metric board read from runs and metrics.

Battles are aggregated in SQL (``GROUP BY model_a, model_b, outcome``), so what
leaves the database grows with the number of model pairs, not battles. Every
selection comes with a content hash (sha256 over the filter and the rows in a
fixed order) so a published leaderboard can say exactly which data it was
fitted on, and a rerun on the same data can be recognised.

Source filters: ``all``; a source name such as ``human`` or ``judge:<id>``
matches that source and any source below it (``judge`` matches every
``judge:<id>``). Category ``None`` means every category.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from harness.store.records import dumps, utc_now
from harness.store.tables import Tables

ALL_SOURCES = "all"
# outcomes the rating code understands; anything else in the table is ignored
_OUTCOMES = ("a", "b", "tie", "tie_bad")
_DONE = ("completed", "completed_with_errors")


@dataclass(frozen=True)
class BattleSelection:
    """Battles matching a filter, aggregated per (model_a, model_b, outcome)."""

    source: str
    category: str | None
    rows: tuple[tuple[str, str, str, int], ...]  # (model_a, model_b, outcome, count), sorted
    data_hash: str

    @property
    def total(self) -> int:
        return sum(r[3] for r in self.rows)


@dataclass(frozen=True)
class SnapshotRecord:
    id: int
    method: str
    params: dict[str, Any]
    data_hash: str
    ratings: list[dict[str, Any]]
    created_at: str


@dataclass(frozen=True)
class TaskCell:
    """One model's headline number on one suite metric, from its chosen run."""

    model: str
    suite: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    n_errors: int
    run_id: str


def _hash(payload: Any) -> str:
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _where(source: str, category: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause of a battle filter (prefix match without LIKE's wildcards)."""
    marks = ",".join("?" * len(_OUTCOMES))
    clauses: list[str] = [f"outcome IN ({marks})"]
    args: list[object] = list(_OUTCOMES)
    if source != ALL_SOURCES:
        clauses.append("(source = ? OR substr(source, 1, ?) = ?)")
        args += [source, len(source) + 1, source + ":"]
    if category is not None:
        clauses.append("category = ?")
        args.append(category)
    return " AND ".join(clauses), args


class RatingTables(Tables):
    """Mixed into Store (the connection and transactions come from ``Tables``)."""

    # -- battles ------------------------------------------------------------------
    def battle_selection(self, source: str = ALL_SOURCES,
                         category: str | None = None) -> BattleSelection:
        """Counts per (model_a, model_b, outcome) of the matching battles, with their hash."""
        where, args = _where(source, category)
        rows = tuple(
            (r[0], r[1], r[2], int(r[3])) for r in self.conn.execute(
                f"SELECT model_a, model_b, outcome, COUNT(*) FROM battles WHERE {where} "
                "GROUP BY model_a, model_b, outcome ORDER BY model_a, model_b, outcome", args)
        )
        payload = {"filter": {"source": source, "category": category},
                   "rows": [list(r) for r in rows]}
        return BattleSelection(source, category, rows, _hash(payload))

    def battle_sequence(self, source: str = ALL_SOURCES, category: str | None = None
                        ) -> tuple[list[tuple[str, str, str]], str]:
        """The matching battles in insertion order (for online Elo) and a hash of that order."""
        where, args = _where(source, category)
        digest = hashlib.sha256(dumps({"source": source, "category": category}).encode())
        battles = []
        for a, b, outcome in self.conn.execute(
                f"SELECT model_a, model_b, outcome FROM battles WHERE {where} ORDER BY id", args):
            battles.append((a, b, outcome))
            digest.update(dumps([a, b, outcome]).encode("utf-8") + b"\n")
        return battles, "sha256:" + digest.hexdigest()

    def battle_sources(self, category: str | None = None) -> dict[str, int]:
        """Battle count per source (optionally within one category), by name."""
        where, args = _where(ALL_SOURCES, category)
        return {r[0]: int(r[1]) for r in self.conn.execute(
            f"SELECT source, COUNT(*) FROM battles WHERE {where} GROUP BY source "
            "ORDER BY source", args)}

    def battle_categories(self, source: str = ALL_SOURCES) -> dict[str | None, int]:
        """Battle count per category (None for battles without one) among a source filter."""
        where, args = _where(source, None)
        return {r[0]: int(r[1]) for r in self.conn.execute(
            f"SELECT category, COUNT(*) FROM battles WHERE {where} GROUP BY category "
            "ORDER BY category IS NULL, category", args)}

    # -- rating snapshots ------------------------------------------------------------
    def save_rating_snapshot(self, method: str, params: dict[str, Any], data_hash: str,
                             ratings: list[dict[str, Any]]) -> int:
        """Record a fitted board; the same fit on the same data is recorded once."""
        params_json = json.dumps(params, ensure_ascii=False, sort_keys=True)
        ratings_json = json.dumps(ratings, ensure_ascii=False, sort_keys=True)
        with self.transaction():
            row = self.conn.execute(
                "SELECT id FROM rating_snapshots WHERE method=? AND params=? AND data_hash=? "
                "AND ratings=?", (method, params_json, data_hash, ratings_json)).fetchone()
            if row is not None:
                return int(row[0])
            cursor = self.conn.execute(
                "INSERT INTO rating_snapshots (method, params, data_hash, ratings, created_at) "
                "VALUES (?,?,?,?,?)", (method, params_json, data_hash, ratings_json, utc_now()))
        return int(cursor.lastrowid or 0)

    def rating_snapshots(self, data_hash: str | None = None) -> list[SnapshotRecord]:
        """Stored boards, oldest first, optionally only those fitted on one data hash."""
        sql, args = "SELECT * FROM rating_snapshots", []
        if data_hash is not None:
            sql, args = sql + " WHERE data_hash=?", [data_hash]
        return [
            SnapshotRecord(r["id"], r["method"], json.loads(r["params"]), r["data_hash"],
                           json.loads(r["ratings"]), r["created_at"])
            for r in self.db.query(sql + " ORDER BY id", args)
        ]

    # -- task metrics -----------------------------------------------------------------
    def task_metric_cells(self) -> tuple[list[TaskCell], str]:
        """Each (model, suite, metric) from one finished run, and a hash of the cells.

        When a model ran a suite several times (different limits or seeds) the
        run that scored the most items wins, then the most recently updated one,
        so a full run is preferred over a quick subset.
        """
        marks = ",".join("?" * len(_DONE))
        rows = self.conn.execute(
            f"""WITH ranked AS (
                   SELECT r.model, r.suite, m.metric, m.value, m.ci_low, m.ci_high, m.n,
                          m.n_errors, r.id AS run_id,
                          ROW_NUMBER() OVER (PARTITION BY r.model, r.suite, m.metric
                                             ORDER BY m.n DESC, r.updated_at DESC, r.id DESC)
                              AS pick
                   FROM runs r JOIN metrics m ON m.run_id = r.id
                   WHERE r.status IN ({marks}))
               SELECT model, suite, metric, value, ci_low, ci_high, n, n_errors, run_id
               FROM ranked WHERE pick = 1 ORDER BY suite, metric, model""", _DONE).fetchall()
        cells = [TaskCell(r[0], r[1], r[2], float(r[3]), float(r[4]), float(r[5]), int(r[6]),
                          int(r[7]), r[8]) for r in rows]
        return cells, _hash([list(r) for r in rows])
