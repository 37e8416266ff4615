"""SQL for per-slice aggregates and per-invocation efficiency measurements."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from harness.store.tables import Tables
from harness.types import Invocation, SliceSummary


class StatsTables(Tables):
    """Mixed into Store (the connection and transactions come from ``Tables``)."""

    # -- slices ---------------------------------------------------------------
    def write_slices(self, run_id: str, slices: Sequence[SliceSummary]) -> None:
        """Called inside ``replace_scores``'s transaction: slices follow the scores."""
        self.conn.execute("DELETE FROM slice_metrics WHERE run_id=? AND metric NOT LIKE 'judge:%'",
                          (run_id,))
        self._insert_slices(run_id, slices)

    def write_metric_slices(self, run_id: str, metric: str,
                            slices: Sequence[SliceSummary]) -> None:
        """One metric's breakdowns (a judge metric's), replaced inside the caller's
        transaction."""
        self.conn.execute("DELETE FROM slice_metrics WHERE run_id=? AND metric=?",
                          (run_id, metric))
        self._insert_slices(run_id, slices)

    def _insert_slices(self, run_id: str, slices: Sequence[SliceSummary]) -> None:
        self.conn.executemany(
            "INSERT INTO slice_metrics (run_id, metric, slice, slice_group, value, ci_low, "
            "ci_high, n, n_errors) VALUES (?,?,?,?,?,?,?,?,?)",
            [(run_id, s.metric, s.slice, s.group, _null(s.value), _null(s.ci_low),
              _null(s.ci_high), s.n, s.n_errors) for s in slices],
        )

    def slice_summaries(self, run_id: str) -> list[SliceSummary]:
        """In the order they were computed (slices by name, groups in display order)."""
        return [
            SliceSummary(r["metric"], r["slice"], r["slice_group"], _nan(r["value"]),
                         _nan(r["ci_low"]), _nan(r["ci_high"]), r["n"], r["n_errors"])
            for r in self.db.query(
                "SELECT * FROM slice_metrics WHERE run_id=? ORDER BY metric, rowid", [run_id])
        ]

    # -- efficiency -----------------------------------------------------------
    def record_invocation(self, run_id: str, measured: Invocation) -> Invocation:
        """Store one invocation, counting the answers and errors it stored itself."""
        with self.transaction():
            rows = self.conn.execute(
                "SELECT prompt_tokens, output_tokens, continuation_tokens FROM completions "
                "WHERE run_id=? AND created_at>=?", (run_id, measured.started_at)).fetchall()
            errors = self.conn.execute(
                "SELECT COUNT(*) FROM request_errors WHERE run_id=? AND created_at>=?",
                (run_id, measured.started_at)).fetchone()[0]
            stored = measured.with_counts(
                len(rows), errors, sum(p + sum(json.loads(c)) for p, _, c in rows),
                sum(o for _, o, _ in rows))
            self.conn.execute(
                "INSERT INTO run_invocations (run_id, backend, started_at, finished_at, load_s, "
                "generate_s, answers, errors, prompt_tokens, output_tokens, peak_rss_mb, "
                "gpu_peak_mb, gpu_energy_j) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, stored.backend, stored.started_at, stored.finished_at, stored.load_s,
                 stored.generate_s, stored.answers, stored.errors, stored.prompt_tokens,
                 stored.output_tokens, stored.peak_rss_mb, stored.gpu_peak_mb,
                 stored.gpu_energy_j))
        return stored

    def invocations(self, run_id: str) -> list[Invocation]:
        return [
            Invocation(r["backend"], r["started_at"], r["finished_at"], r["load_s"],
                       r["generate_s"], r["peak_rss_mb"], r["gpu_peak_mb"], r["gpu_energy_j"],
                       r["answers"], r["errors"], r["prompt_tokens"], r["output_tokens"])
            for r in self.db.query(
                "SELECT * FROM run_invocations WHERE run_id=? ORDER BY id", [run_id])
        ]

    def answer_timings(self, run_id: str) -> tuple[list[float], list[float]]:
        """Latencies and times to first token of the run's answers (imported ones have none)."""
        rows = self.conn.execute(
            """SELECT c.latency_s, c.ttft_s FROM run_samples s
               JOIN completions c ON c.request_key = s.request_key
               WHERE s.run_id = ? AND c.backend != 'import'""", (run_id,)).fetchall()
        return ([lat for lat, _ in rows if lat > 0],
                [ttft for _, ttft in rows if ttft is not None])

    def output_rates(self) -> dict[str, float]:
        """Output tokens per second of generation, per run with a measured invocation."""
        return {
            r[0]: r[1] / r[2]
            for r in self.conn.execute(
                "SELECT run_id, SUM(output_tokens), SUM(generate_s) FROM run_invocations "
                "GROUP BY run_id")
            if r[1] and r[2]
        }


def _null(value: float) -> float | None:
    return None if math.isnan(value) else value


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
