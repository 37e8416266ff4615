"""SQL for runs: samples, requests, completions, errors and scores."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from harness.errors import RunNotFoundError
from harness.store.records import (
    RunRecord,
    ScoreRow,
    StoredSample,
    chunks,
    dumps,
    run_from_row,
    utc_now,
)
from harness.store.tables import Tables
from harness.types import (
    BackendError,
    Completion,
    ErrorKind,
    MetricSummary,
    Request,
    Sample,
    SliceSummary,
)


class RunTables(Tables):
    """Mixed into Store (the connection and transactions come from ``Tables``)."""

    write_slices: Callable[[str, Sequence[SliceSummary]], None]  # harness/store/stats.py

    # -- runs -------------------------------------------------------------
    def upsert_run(self, run: RunRecord) -> None:
        """Create the run, or mark an existing one as running again (a resume)."""
        with self.transaction():
            self.conn.execute(
                """INSERT INTO runs (id, model, suite, suite_hash, status, limit_n, seed,
                       n_samples, manifest, created_at, updated_at)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(id) DO UPDATE SET status=excluded.status,
                       manifest=excluded.manifest, updated_at=excluded.updated_at""",
                (run.id, run.model, run.suite, run.suite_hash, run.status, run.limit_n,
                 run.seed, run.n_samples, dumps(run.manifest), run.created_at,
                 run.updated_at),
            )

    def set_run_status(self, run_id: str, status: str) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE runs SET status=?, updated_at=? WHERE id=?", (status, utc_now(), run_id)
            )

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id or unique id prefix."""
        rows = list(self.db.query(
            "SELECT * FROM runs WHERE id LIKE ? ORDER BY created_at", [run_id + "%"]
        ))
        if len(rows) != 1:
            raise RunNotFoundError(run_id, str(self.path))
        return run_from_row(rows[0])

    def list_runs(self) -> list[RunRecord]:
        return [run_from_row(r) for r in self.db.query("SELECT * FROM runs ORDER BY created_at")]

    # -- samples and requests ---------------------------------------------
    def add_run_samples(self, run_id: str, items: Sequence[tuple[Sample, Request]],
                        positions: Sequence[int] | None = None) -> None:
        """Record a run's samples and their requests (idempotent); ``positions`` order
        them in the run (default: as given)."""
        order = list(positions) if positions is not None else list(range(len(items)))
        now = utc_now()
        with self.transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO requests (key, kind, model, payload, created_at) "
                "VALUES (?,?,?,?,?)",
                [(r.key, r.kind.value, r.model, dumps(r.to_dict()), now) for _, r in items],
            )
            self.conn.executemany(
                "INSERT OR REPLACE INTO run_samples (run_id, sample_id, position, request_key, "
                "doc, target, choices) VALUES (?,?,?,?,?,?,?)",
                [(run_id, s.id, order[i], r.key, dumps(s.doc), dumps(s.target),
                  dumps(list(s.choices))) for i, (s, r) in enumerate(items)],
            )

    def run_samples(self, run_id: str) -> list[StoredSample]:
        rows = self.db.query(
            "SELECT * FROM run_samples WHERE run_id=? ORDER BY position", [run_id]
        )
        return [
            StoredSample(
                Sample(r["sample_id"], json.loads(r["doc"]), json.loads(r["target"]),
                       tuple(json.loads(r["choices"] or "[]"))),
                r["position"], r["request_key"],
            )
            for r in rows
        ]

    def get_request(self, key: str) -> Request:
        row = self.conn.execute("SELECT payload FROM requests WHERE key=?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return Request.from_dict(json.loads(row[0]))

    # -- completions --------------------------------------------------------
    def completed_keys(self, keys: Iterable[str]) -> set[str]:
        done: set[str] = set()
        for chunk in chunks(list(keys), 500):
            marks = ",".join("?" * len(chunk))
            done.update(r[0] for r in self.conn.execute(
                f"SELECT request_key FROM completions WHERE request_key IN ({marks})", chunk))
        return done

    def save_completions(
        self, run_id: str, backend: str, results: Sequence[tuple[str, Completion]]
    ) -> None:
        """Store answers and errors of one batch in one transaction."""
        now = utc_now()
        ok = [(k, c) for k, c in results if c.ok]
        failed = [(k, c.error) for k, c in results if c.error is not None]
        with self.transaction():
            self.conn.executemany(
                """INSERT OR IGNORE INTO completions (request_key, texts, finish_reasons,
                       loglikelihoods, greedy_matches, continuation_tokens, prompt_tokens,
                       output_tokens, latency_s, backend, run_id, created_at, ttft_s)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                [(k, _json_list(c.texts), _json_list(c.finish_reasons),
                  _json_list(c.loglikelihoods), _json_list(c.greedy_matches),
                  _json_list(c.continuation_tokens), c.prompt_tokens, c.output_tokens,
                  c.latency_s, backend, run_id, now, c.ttft_s) for k, c in ok],
            )
            self.conn.executemany(
                "INSERT INTO request_errors (request_key, run_id, kind, message, attempts, "
                "created_at) VALUES (?,?,?,?,?,?)",
                [(k, run_id, e.kind.value, e.message, e.attempts, now) for k, e in failed],
            )

    def completions(self, keys: Iterable[str]) -> dict[str, Completion]:
        found: dict[str, Completion] = {}
        for chunk in chunks(list(keys), 500):
            marks = ",".join("?" * len(chunk))
            for r in self.db.query(
                f"SELECT * FROM completions WHERE request_key IN ({marks})", chunk
            ):
                found[r["request_key"]] = Completion(
                    texts=tuple(json.loads(r["texts"])),
                    finish_reasons=tuple(json.loads(r["finish_reasons"])),
                    loglikelihoods=tuple(json.loads(r["loglikelihoods"])),
                    greedy_matches=tuple(json.loads(r["greedy_matches"])),
                    continuation_tokens=tuple(json.loads(r["continuation_tokens"])),
                    prompt_tokens=r["prompt_tokens"],
                    output_tokens=r["output_tokens"],
                    latency_s=r["latency_s"],
                    ttft_s=r["ttft_s"],
                )
        return found

    def latest_errors(self, run_id: str) -> dict[str, BackendError]:
        """The last recorded error of each of the run's requests that has no answer."""
        rows = self.db.query(
            """SELECT e.request_key, e.kind, e.message, e.attempts FROM request_errors e
               JOIN run_samples s ON s.request_key = e.request_key AND s.run_id = ?
               LEFT JOIN completions c ON c.request_key = e.request_key
               WHERE c.request_key IS NULL ORDER BY e.id""",
            [run_id],
        )
        return {
            r["request_key"]: BackendError(ErrorKind(r["kind"]), r["message"], r["attempts"])
            for r in rows
        }

    # -- scores -------------------------------------------------------------
    def replace_scores(
        self, run_id: str, scores: Sequence[ScoreRow], summaries: Sequence[MetricSummary],
        slices: Sequence[SliceSummary] = (),
    ) -> None:
        """Scoring is cheap and deterministic, so it is redone whole each time.

        Judge metrics (``judge:...``) are left alone: they come from the judge stage
        (``replace_judge_scores``), and rescoring must not throw them away.
        """
        with self.transaction():
            self.conn.execute("DELETE FROM scores WHERE run_id=? AND metric NOT LIKE 'judge:%'",
                              (run_id,))
            self.conn.execute("DELETE FROM metrics WHERE run_id=? AND metric NOT LIKE 'judge:%'",
                              (run_id,))
            self.conn.executemany(
                "INSERT INTO scores (run_id, sample_id, metric, value, extracted) "
                "VALUES (?,?,?,?,?)",
                [(run_id, s.sample_id, s.metric, s.value, s.extracted) for s in scores],
            )
            self.conn.executemany(
                "INSERT INTO metrics (run_id, metric, value, ci_low, ci_high, n, n_errors) "
                "VALUES (?,?,?,?,?,?,?)",
                [(run_id, m.metric, _null(m.value), _null(m.ci_low), _null(m.ci_high), m.n,
                  m.n_errors) for m in summaries],
            )
            self.write_slices(run_id, slices)  # harness/store/stats.py, same transaction

    def metric_summaries(self, run_id: str) -> list[MetricSummary]:
        return [
            MetricSummary(r["metric"], _nan(r["value"]), _nan(r["ci_low"]),
                          _nan(r["ci_high"]), r["n"], r["n_errors"])
            for r in self.db.query(
                "SELECT * FROM metrics WHERE run_id=? ORDER BY metric", [run_id])
        ]

    def scores(self, run_id: str) -> list[ScoreRow]:
        return [
            ScoreRow(r["sample_id"], r["metric"], r["value"], r["extracted"])
            for r in self.db.query(
                "SELECT * FROM scores WHERE run_id=? ORDER BY sample_id, metric", [run_id])
        ]

    def export_rows(self, run_id: str) -> Iterator[dict[str, Any]]:
        """One flat row per sample: prompt, answer, scores, error. For export."""
        scores: dict[str, dict[str, float]] = {}
        extracted: dict[str, str | None] = {}
        for s in self.scores(run_id):
            scores.setdefault(s.sample_id, {})[s.metric] = s.value
            extracted.setdefault(s.sample_id, s.extracted)
        samples = self.run_samples(run_id)
        keys = [s.request_key for s in samples]
        answers = self.completions(keys)
        errors = self.latest_errors(run_id)
        for stored in samples:
            key = stored.request_key
            completion = answers.get(key)
            error = errors.get(key) if completion is None else None
            yield {
                "run_id": run_id,
                "sample_id": stored.sample.id,
                "request_key": key,
                "request": self.get_request(key).to_dict(),
                "target": stored.sample.target,
                "texts": list(completion.texts) if completion else None,
                "loglikelihoods": list(completion.loglikelihoods) if completion else None,
                "extracted": extracted.get(stored.sample.id),
                "scores": scores.get(stored.sample.id, {}),
                "error": f"{error.kind.value}: {error.message}" if error else None,
            }


# one encoder for every completion column: json.dumps(..., ensure_ascii=False) builds a
# new encoder per call, five calls per stored answer, which showed in the HTTP benchmark
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def _json_list(values: Sequence[Any]) -> str:
    """A tuple of texts, numbers or booleans as a JSON list (same text as ``dumps``)."""
    return _ENCODE(values) if values else "[]"


def _null(value: float) -> float | None:
    """A mean over no samples is no number: stored as NULL, never as 0."""
    return None if math.isnan(value) else value


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
