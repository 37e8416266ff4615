"""SQL for contamination checks and their per-item signals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.store.records import utc_now
from harness.store.tables import Tables


@dataclass(frozen=True)
class Signal:
    sample_id: str
    value: float
    flagged: bool
    detail: dict[str, Any]


@dataclass(frozen=True)
class Check:
    run_id: str
    method: str
    params: dict[str, Any]
    summary: dict[str, Any]
    created_at: str


class ContaminationTables(Tables):
    """Mixed into Store (the connection and transactions come from ``Tables``)."""

    def save_check(self, run_id: str, method: str, params: dict[str, Any],
                   summary: dict[str, Any], signals: Sequence[Signal]) -> None:
        """A check and all its signals in one transaction, replacing an earlier one."""
        with self.transaction():
            self.conn.execute("DELETE FROM contamination_signals WHERE run_id=? AND method=?",
                              (run_id, method))
            self.conn.execute(
                "INSERT OR REPLACE INTO contamination_checks (run_id, method, params, summary, "
                "created_at) VALUES (?,?,?,?,?)",
                (run_id, method, json.dumps(params, sort_keys=True), json.dumps(summary),
                 utc_now()))
            self.conn.executemany(
                "INSERT INTO contamination_signals (run_id, method, sample_id, value, flagged, "
                "detail) VALUES (?,?,?,?,?,?)",
                [(run_id, method, s.sample_id, s.value, int(s.flagged),
                  json.dumps(s.detail, ensure_ascii=False)) for s in signals])

    def checks(self, run_id: str) -> list[Check]:
        rows = self.conn.execute(
            "SELECT run_id, method, params, summary, created_at FROM contamination_checks "
            "WHERE run_id=? ORDER BY method", (run_id,)).fetchall()
        return [Check(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4]) for r in rows]

    def signals(self, run_id: str, method: str) -> list[Signal]:
        rows = self.conn.execute(
            "SELECT sample_id, value, flagged, detail FROM contamination_signals "
            "WHERE run_id=? AND method=? ORDER BY sample_id", (run_id, method)).fetchall()
        return [Signal(r[0], float(r[1]), bool(r[2]), json.loads(r[3])) for r in rows]

    def flagged_samples(self, run_id: str) -> set[str]:
        """Items any check of the run flags."""
        return {r[0] for r in self.conn.execute(
            "SELECT DISTINCT sample_id FROM contamination_signals WHERE run_id=? AND flagged=1",
            (run_id,))}
