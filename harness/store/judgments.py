"""SQL for the judge stage: named models, judgments, judge scores, battles, human votes.

Judge requests and answers live in the ordinary ``requests``/``completions``
tables (so they are cached and resumed like any generation); this mixin adds
the parsed verdicts on top. Judgments are upserted on their natural key, so a
rerun rewrites the same rows instead of adding new ones, and battles are keyed
by ``(source, ref)`` with a ref naming the item and the pair, so a rerun never
counts a battle twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import InputError
from harness.store.records import ScoreRow, chunks, dumps, utc_now
from harness.store.tables import Tables
from harness.types import MetricSummary, Request, SliceSummary


@dataclass(frozen=True)
class JudgmentRow:
    """One judge's verdict on one answer (single) or one ordered pair (pairwise)."""

    judge: str
    mode: str  # single | pairwise
    suite: str
    sample_id: str
    model_a: str
    model_b: str | None
    swapped: bool  # True when model_b's answer was shown first
    run_a: str
    run_b: str | None
    len_a: int  # answer lengths in characters
    len_b: int | None
    request_key: str  # the first attempt
    retry_key: str | None  # the retry after a malformed verdict, if any
    raw: str  # the reply that decided the row (the retry's when retried)
    outcome: str | None  # score "1".."10" or a>>b|a>b|tie|b>a|b>>a (model_a vs model_b)
    parse_error: str | None


@dataclass(frozen=True)
class BattleRow:
    ref: str  # unique per source: names the item and the pair
    model_a: str
    model_b: str
    outcome: str | None  # a | b | tie; None removes a battle a rerun no longer supports


@dataclass(frozen=True)
class HumanVerdict:
    suite: str  # the campaign's suite
    sample_id: str
    model_a: str
    model_b: str
    outcome: str  # a | b | tie: the majority of the item's current votes


_JUDGMENT_COLUMNS = ("judge", "mode", "suite", "sample_id", "model_a", "model_b", "swapped",
                     "run_a", "run_b", "len_a", "len_b", "request_key", "retry_key", "raw",
                     "outcome", "parse_error")


class JudgmentTables(Tables):
    """Mixed into Store (the connection and transactions come from ``Tables``)."""

    write_metric_slices: Callable[[str, str, Sequence[SliceSummary]], None]

    # -- requests made outside a run (judge prompts) -------------------------
    def add_requests(self, requests: Iterable[Request]) -> None:
        now = utc_now()
        with self.transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO requests (key, kind, model, payload, created_at) "
                "VALUES (?,?,?,?,?)",
                [(r.key, r.kind.value, r.model, dumps(r.to_dict()), now) for r in requests],
            )

    # -- named models (contestants and judges) -------------------------------
    def register_models(self, rows: Sequence[tuple[str, str | None, str, dict[str, Any]]]
                        ) -> None:
        """Record (name, spec, origin, meta) rows in one transaction.

        A name already standing for another model is refused before anything is
        written, so labels stay unambiguous across judgings.
        """
        for name, spec, origin, _ in rows:
            row = self.conn.execute("SELECT spec, origin FROM models WHERE name=?",
                                    (name,)).fetchone()
            if row is not None and (row[0], row[1]) != (spec, origin):
                raise InputError("--model", name, f"this name already stands for {row[1]} "
                                 f"model {row[0]!r}; choose another label (LABEL=RUN)")
        now = utc_now()
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO models (name, spec, origin, meta, created_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET meta=excluded.meta",
                [(name, spec, origin, dumps(meta), now) for name, spec, origin, meta in rows],
            )

    def named_models(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: {"spec": r["spec"], "origin": r["origin"],
                            "meta": json.loads(r["meta"])}
                for r in self.db.query("SELECT * FROM models ORDER BY name")}

    # -- judgments -------------------------------------------------------------
    def save_judgments(self, rows: Sequence[JudgmentRow]) -> None:
        """Upsert on (judge, mode, suite, sample, models, order): ids stay stable."""
        now = utc_now()
        columns = ", ".join(_JUDGMENT_COLUMNS)
        updates = ", ".join(f"{c}=excluded.{c}" for c in _JUDGMENT_COLUMNS[7:])
        with self.transaction():
            self.conn.executemany(
                f"INSERT INTO judgments ({columns}, created_at) "
                f"VALUES ({','.join('?' * (len(_JUDGMENT_COLUMNS) + 1))}) "
                "ON CONFLICT (judge, mode, suite, sample_id, model_a, COALESCE(model_b, ''), "
                f"swapped) DO UPDATE SET {updates}, created_at=excluded.created_at",
                [(*(_value(getattr(r, c)) for c in _JUDGMENT_COLUMNS), now) for r in rows],
            )

    def judgments(self, judge: str | None = None, suite: str | None = None,
                  mode: str | None = None) -> list[JudgmentRow]:
        where, args = [], []
        for column, value in (("judge", judge), ("suite", suite), ("mode", mode)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        sql = "SELECT * FROM judgments" + (" WHERE " + " AND ".join(where) if where else "")
        return [
            JudgmentRow(**_judgment_fields(r))
            for r in self.db.query(sql + " ORDER BY id", args)
        ]

    def judge_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT judge FROM judgments ORDER BY judge")]

    def token_usage(self, keys: Iterable[str]) -> tuple[int, int, int]:
        """(requests answered, prompt tokens, output tokens) over distinct request keys."""
        answered = prompt = output = 0
        for chunk in chunks(sorted(set(keys)), 500):
            marks = ",".join("?" * len(chunk))
            row = self.conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), "
                f"COALESCE(SUM(output_tokens), 0) FROM completions "
                f"WHERE request_key IN ({marks})", chunk).fetchone()
            answered, prompt, output = answered + row[0], prompt + row[1], output + row[2]
        return answered, prompt, output

    # -- judge scores in a contestant's run --------------------------------------
    def replace_judge_scores(self, run_id: str, metric: str, rows: Sequence[ScoreRow],
                             summary: MetricSummary, slices: Sequence[SliceSummary] = ()
                             ) -> None:
        """One judge metric of one run, with its breakdowns (a conversation's per turn),
        replaced whole (other metrics untouched)."""
        with self.transaction():
            self.conn.execute("DELETE FROM scores WHERE run_id=? AND metric=?", (run_id, metric))
            self.conn.execute("DELETE FROM metrics WHERE run_id=? AND metric=?",
                              (run_id, metric))
            self.write_metric_slices(run_id, metric, slices)  # harness/store/stats.py
            self.conn.executemany(
                "INSERT INTO scores (run_id, sample_id, metric, value, extracted) "
                "VALUES (?,?,?,?,?)",
                [(run_id, s.sample_id, metric, s.value, s.extracted) for s in rows],
            )
            if summary.n:
                self.conn.execute(
                    "INSERT INTO metrics (run_id, metric, value, ci_low, ci_high, n, n_errors) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (run_id, metric, summary.value, summary.ci_low, summary.ci_high,
                     summary.n, summary.n_errors),
                )

    # -- battles -------------------------------------------------------------------
    def save_battles(self, source: str, category: str, rows: Sequence[BattleRow]) -> None:
        now = utc_now()
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO battles (model_a, model_b, outcome, source, category, ref, "
                "created_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (source, ref) DO UPDATE SET "
                "outcome=excluded.outcome, model_a=excluded.model_a, "
                "model_b=excluded.model_b, created_at=excluded.created_at",
                [(b.model_a, b.model_b, b.outcome, source, category, b.ref, now)
                 for b in rows if b.outcome is not None],
            )
            self.conn.executemany(
                "DELETE FROM battles WHERE source=? AND ref=?",
                [(source, b.ref) for b in rows if b.outcome is None],
            )

    def battles(self, source: str) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM battles WHERE source=? ORDER BY id",
                                  [source]))

    # -- human votes ---------------------------------------------------------------
    def human_verdicts(self) -> list[HumanVerdict]:
        """Each pairwise review item's majority over its current votes.

        Votes are append-only: a vote cancelled by a later ``undo`` row no longer
        counts; ``both_bad`` counts as a tie; skips and ratings are ignored.
        An item whose votes split evenly between two outcomes is left out.
        """
        rows = self.db.query(
            """SELECT c.suite, i.id AS item, i.sample_id, i.model_a, i.model_b, v.outcome
               FROM votes v JOIN campaign_items i ON i.id = v.item_id
               JOIN campaigns c ON c.id = i.campaign_id
               WHERE i.model_b IS NOT NULL AND v.outcome IN ('a', 'b', 'tie', 'both_bad')
                 AND NOT EXISTS (SELECT 1 FROM votes u
                                 WHERE u.supersedes = v.id AND u.outcome = 'undo')""")
        items: dict[int, tuple[str, str, str, str, dict[str, int]]] = {}
        for r in rows:
            if r["item"] not in items:
                items[r["item"]] = (r["suite"], r["sample_id"], r["model_a"], r["model_b"], {})
            outcome = "tie" if r["outcome"] == "both_bad" else r["outcome"]
            counts = items[r["item"]][4]
            counts[outcome] = counts.get(outcome, 0) + 1
        verdicts = []
        for suite, sample_id, model_a, model_b, counts in items.values():
            ranked = sorted(counts.values(), reverse=True)
            if len(ranked) > 1 and ranked[0] == ranked[1]:
                continue
            verdicts.append(HumanVerdict(suite, sample_id, model_a, model_b,
                                         max(counts, key=counts.__getitem__)))
        return verdicts


def _value(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def _judgment_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {c: (bool(row[c]) if c == "swapped" else row[c]) for c in _JUDGMENT_COLUMNS}
