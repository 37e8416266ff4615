"""SQL for human review: campaigns, their items, annotators and votes.

Votes are append-only. An undo is a new ``undo`` row whose ``supersedes``
points at the vote it cancels, so the full history of what an annotator
clicked survives for audit. A pairwise vote also writes one row in
``battles`` (source ``human``, ref = the vote id) in the same transaction,
and its undo deletes that battle in the undo's transaction: the battles
table always equals "one battle per live pairwise vote", whatever crashes.

A vote is only written if the annotator has no live row (vote or skip not
undone) on the item; the check and the insert share one ``BEGIN IMMEDIATE``
transaction, so two racing requests (two tabs, a retried POST, two app
processes) cannot both land.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import EvalarenaError, InputError
from harness.store.records import dumps, utc_now
from harness.store.tables import Tables

PAIR_OUTCOMES = ("a", "b", "tie", "both_bad")
# how a pairwise vote becomes a battle outcome (see leaderboards/battles.py)
BATTLE_OUTCOME = {"a": "a", "b": "b", "tie": "tie", "both_bad": "tie_bad"}
HUMAN_SOURCE = "human"


class VoteConflictError(EvalarenaError):
    """The vote cannot be recorded as asked (already voted, nothing to undo...)."""

    exit_code = 1


@dataclass(frozen=True)
class CampaignRecord:
    id: int
    name: str
    kind: str  # pairwise | single
    suite: str
    config: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class NewItem:
    sample_id: str
    prompt: str
    model_a: str
    output_a: str
    model_b: str | None = None
    output_b: str | None = None
    gold: str | None = None


@dataclass(frozen=True)
class ItemRecord:
    id: int
    campaign_id: int
    sample_id: str
    prompt: str
    model_a: str
    output_a: str
    model_b: str | None
    output_b: str | None
    gold: str | None
    target_votes: int


@dataclass(frozen=True)
class AnnotatorRecord:
    name: str
    role: str
    password_hash: str
    disabled: bool
    created_at: str


@dataclass(frozen=True)
class SessionRow:
    token_hash: str
    annotator: str
    created_at: float
    last_seen_at: float
    expires_at: float


@dataclass(frozen=True)
class VoteRecord:
    id: int
    campaign_id: int
    item_id: int
    annotator: str
    outcome: str
    left_is_a: bool | None
    reason: str | None
    flags: tuple[str, ...]
    supersedes: int | None
    seconds: float | None
    created_at: str


def _campaign(row: dict[str, Any]) -> CampaignRecord:
    return CampaignRecord(row["id"], row["name"], row["kind"], row["suite"],
                          json.loads(row["config"]), row["created_at"])


def _vote(row: dict[str, Any]) -> VoteRecord:
    left = row["left_is_a"]
    return VoteRecord(
        row["id"], row["campaign_id"], row["item_id"], row["annotator"], row["outcome"],
        None if left is None else bool(left), row["reason"],
        tuple(json.loads(row["flags"] or "[]")), row["supersedes"], row["seconds"],
        row["created_at"],
    )


_LIVE_ROW = """SELECT v.id FROM votes v
    WHERE v.item_id = ? AND v.annotator = ? AND v.outcome != 'undo'
      AND NOT EXISTS (SELECT 1 FROM votes u WHERE u.supersedes = v.id AND u.outcome = 'undo')"""


class ReviewTables(Tables):
    """Mixed into Store (the connection and transactions come from ``Tables``)."""

    # -- campaigns ------------------------------------------------------------
    def create_campaign(self, name: str, kind: str, suite: str, config: dict[str, Any],
                        items: Sequence[NewItem], target_votes: int) -> CampaignRecord:
        """The campaign and all its items, in one transaction (all or nothing)."""
        now = utc_now()
        with self.transaction():
            if self.conn.execute("SELECT 1 FROM campaigns WHERE name=?", (name,)).fetchone():
                raise InputError("--name", None, f"a campaign named {name!r} already exists")
            cursor = self.conn.execute(
                "INSERT INTO campaigns (name, kind, suite, config, created_at) VALUES (?,?,?,?,?)",
                (name, kind, suite, dumps(config), now))
            campaign_id = int(cursor.lastrowid or 0)
            self.conn.executemany(
                """INSERT INTO campaign_items (campaign_id, sample_id, prompt, model_a, output_a,
                       model_b, output_b, gold, target_votes) VALUES (?,?,?,?,?,?,?,?,?)""",
                [(campaign_id, i.sample_id, i.prompt, i.model_a, i.output_a, i.model_b,
                  i.output_b, i.gold, target_votes) for i in items])
        return CampaignRecord(campaign_id, name, kind, suite, config, now)

    def campaigns(self) -> list[CampaignRecord]:
        return [_campaign(r) for r in self.db.query("SELECT * FROM campaigns ORDER BY id")]

    def campaign(self, key: str | int) -> CampaignRecord | None:
        """A campaign by id, or by name when ``key`` is a string that is not all digits."""
        if isinstance(key, int) or key.isdigit():
            rows = list(self.db.query("SELECT * FROM campaigns WHERE id=?", [int(key)]))
        else:
            rows = list(self.db.query("SELECT * FROM campaigns WHERE name=?", [key]))
        return _campaign(rows[0]) if rows else None

    def campaign_items(self, campaign_id: int) -> list[ItemRecord]:
        return [ItemRecord(**r) for r in self.db.query(
            "SELECT * FROM campaign_items WHERE campaign_id=? ORDER BY id", [campaign_id])]

    # -- annotators -------------------------------------------------------------
    def add_annotator(self, name: str, role: str, password_hash: str) -> None:
        with self.transaction():
            if self.conn.execute("SELECT 1 FROM annotators WHERE name=?", (name,)).fetchone():
                raise InputError("NAME", None, f"an annotator named {name!r} already exists")
            self.conn.execute(
                "INSERT INTO annotators (name, role, password_hash, disabled, created_at) "
                "VALUES (?,?,?,0,?)", (name, role, password_hash, utc_now()))

    def annotator(self, name: str) -> AnnotatorRecord | None:
        row = self.conn.execute(
            "SELECT name, role, password_hash, disabled, created_at FROM annotators "
            "WHERE name=?", (name,)).fetchone()
        return AnnotatorRecord(row[0], row[1], row[2], bool(row[3]), row[4]) if row else None

    def annotators(self) -> list[AnnotatorRecord]:
        return [AnnotatorRecord(r["name"], r["role"], r["password_hash"], bool(r["disabled"]),
                                r["created_at"])
                for r in self.db.query("SELECT * FROM annotators ORDER BY name")]

    def set_annotator_password_hash(self, name: str, password_hash: str) -> None:
        """Replace an account's stored hash (a rehash at login; the password is unchanged)."""
        with self.transaction():
            self.conn.execute("UPDATE annotators SET password_hash=? WHERE name=?",
                              (password_hash, name))

    def set_annotator_disabled(self, name: str, disabled: bool) -> bool:
        """False when there is no such annotator."""
        with self.transaction():
            cursor = self.conn.execute("UPDATE annotators SET disabled=? WHERE name=?",
                                       (int(disabled), name))
        return cursor.rowcount == 1

    # -- sessions (review_ui/auth.py hashes the tokens) ---------------------------
    def add_session(self, token_hash: str, annotator: str, now: float,
                    expires_at: float) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO review_sessions (token_hash, annotator, created_at, last_seen_at, "
                "expires_at) VALUES (?,?,?,?,?)", (token_hash, annotator, now, now, expires_at))

    def session_row(self, token_hash: str) -> SessionRow | None:
        row = self.conn.execute(
            "SELECT annotator, created_at, last_seen_at, expires_at FROM review_sessions "
            "WHERE token_hash=?", (token_hash,)).fetchone()
        return SessionRow(token_hash, *row) if row else None

    def touch_session(self, token_hash: str, now: float) -> None:
        with self.transaction():
            self.conn.execute("UPDATE review_sessions SET last_seen_at=? WHERE token_hash=?",
                              (now, token_hash))

    def delete_session(self, token_hash: str) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM review_sessions WHERE token_hash=?", (token_hash,))

    def delete_sessions(self, annotator: str | None = None, *,
                        ended_before: float | None = None, idle_since: float | None = None
                        ) -> int:
        """Sign out one annotator everywhere (``annotator``), or drop sessions past
        their end or idle limit; returns how many went."""
        where: list[str] = []
        args: list[str | float] = []
        if annotator is not None:
            where.append("annotator=?")
            args.append(annotator)
        if ended_before is not None or idle_since is not None:
            where.append("(expires_at < ? OR last_seen_at < ?)")
            args += [ended_before or 0.0, idle_since or 0.0]
        with self.transaction():
            cursor = self.conn.execute(
                "DELETE FROM review_sessions" + (" WHERE " + " AND ".join(where) if where else ""),
                args)
        return cursor.rowcount

    def session_counts(self) -> dict[str, int]:
        return dict(self.conn.execute(
            "SELECT annotator, COUNT(*) FROM review_sessions GROUP BY annotator").fetchall())

    # -- votes ------------------------------------------------------------------
    def add_vote(self, item: ItemRecord, annotator: str, outcome: str, *,
                 left_is_a: bool | None = None, reason: str | None = None,
                 flags: Sequence[str] = (), seconds: float | None = None,
                 category: str | None = None) -> VoteRecord:
        """Record a vote, rating or skip, and its battle for a pairwise vote.

        Raises VoteConflictError if the annotator already has a live row on the item.
        """
        now = utc_now()
        left = None if left_is_a is None else int(left_is_a)
        with self.transaction():
            if self.conn.execute(_LIVE_ROW, (item.id, annotator)).fetchone():
                raise VoteConflictError(f"{annotator} already answered item {item.id}")
            cursor = self.conn.execute(
                """INSERT INTO votes (campaign_id, item_id, annotator, outcome, left_is_a, reason,
                       flags, supersedes, seconds, created_at) VALUES (?,?,?,?,?,?,?,NULL,?,?)""",
                (item.campaign_id, item.id, annotator, outcome, left, reason,
                 dumps(list(flags)), seconds, now))
            vote_id = int(cursor.lastrowid or 0)
            if outcome in PAIR_OUTCOMES and item.model_b is not None:
                self._insert_battle(item, outcome, bool(left_is_a), vote_id, category, now)
        return VoteRecord(vote_id, item.campaign_id, item.id, annotator, outcome, left_is_a,
                          reason, tuple(flags), None, seconds, now)

    def _insert_battle(self, item: ItemRecord, outcome: str, left_is_a: bool, vote_id: int,
                       category: str | None, now: str) -> None:
        # battles keep the pair in the order it was shown (left = battle's a), so
        # position bias stays measurable; the vote row keeps the item's own order
        assert item.model_b is not None
        if left_is_a:
            left, right, shown = item.model_a, item.model_b, outcome
        else:
            left, right = item.model_b, item.model_a
            shown = {"a": "b", "b": "a"}.get(outcome, outcome)
        self.conn.execute(
            "INSERT INTO battles (model_a, model_b, outcome, source, category, ref, created_at) "
            "VALUES (?,?,?,?,?,?,?)",
            (left, right, BATTLE_OUTCOME[shown], HUMAN_SOURCE, category, str(vote_id), now))

    def undo_vote(self, vote: VoteRecord, seconds: float | None = None) -> VoteRecord:
        """Cancel a vote with a new ``undo`` row and remove its battle, in one transaction."""
        now = utc_now()
        with self.transaction():
            if self.conn.execute("SELECT 1 FROM votes WHERE supersedes=? AND outcome='undo'",
                                 (vote.id,)).fetchone():
                raise VoteConflictError(f"vote {vote.id} is already undone")
            cursor = self.conn.execute(
                """INSERT INTO votes (campaign_id, item_id, annotator, outcome, left_is_a, reason,
                       flags, supersedes, seconds, created_at)
                   VALUES (?,?,?,'undo',?,NULL,'[]',?,?,?)""",
                (vote.campaign_id, vote.item_id, vote.annotator,
                 None if vote.left_is_a is None else int(vote.left_is_a), vote.id, seconds, now))
            self.conn.execute("DELETE FROM battles WHERE source=? AND ref=?",
                              (HUMAN_SOURCE, str(vote.id)))
        return VoteRecord(int(cursor.lastrowid or 0), vote.campaign_id, vote.item_id,
                          vote.annotator, "undo", vote.left_is_a, None, (), vote.id, seconds, now)

    def campaign_votes(self, campaign_id: int, after_id: int = 0) -> list[VoteRecord]:
        """Every row of a campaign (votes, skips, undos) in the order they were written."""
        return [_vote(r) for r in self.db.query(
            "SELECT * FROM votes WHERE campaign_id=? AND id>? ORDER BY id",
            [campaign_id, after_id])]

    def battle_rows(self, source: str | None = None) -> list[tuple[str, str, str]]:
        """(model_a, model_b, outcome) of every battle, oldest first, optionally one source."""
        if source is None:
            rows = self.conn.execute("SELECT model_a, model_b, outcome FROM battles ORDER BY id")
        else:
            rows = self.conn.execute(
                "SELECT model_a, model_b, outcome FROM battles WHERE source=? ORDER BY id",
                (source,))
        return [(r[0], r[1], r[2]) for r in rows]
