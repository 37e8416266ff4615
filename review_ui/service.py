"""The review app's one source of behaviour, shared by the Gradio pages and the JSON API.

Every method takes the *server-side* user name (from the session, never from
the request body), so what one annotator can do or see is decided here, once:
an item is only voted on by the annotator it was served to, model names leave
this module only in the answer to a recorded vote, and nothing returns another
annotator's votes except the admin report.

Threads: the web server calls in from a thread pool. One lock guards the
writing connection and the in-memory campaign states (writes are serialised by
SQLite anyway, and a commit in WAL mode takes well under a millisecond); a
second connection, with its own lock, serves the heavier admin reads so they
never hold up a vote.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.store import Store
from harness.store.review import (
    PAIR_OUTCOMES,
    AnnotatorRecord,
    CampaignRecord,
    VoteConflictError,
    VoteRecord,
)
from review_ui.assign import Assignment, CampaignState, choose_item
from review_ui.auth import (
    LoginThrottle,
    Session,
    SessionStore,
    burn_decoy,
    hash_password,
    needs_rehash,
    verify_password,
)

ANNOTATOR_CACHE_S = 5.0  # how long a disabled account may keep a live session
MAX_REASON = 2000


class ReviewError(Exception):
    """A request the service refuses; ``status`` is the HTTP status it maps to."""

    status = 400


class NotFoundError(ReviewError):
    status = 404


class ConflictError(ReviewError):
    status = 409


class TooManyLoginsError(ReviewError):
    status = 429

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"too many failed logins; try again in {retry_after_s:.0f} s")


class ReviewService:
    def __init__(self, db_path: str | Path, *, undo_window_s: float = 60.0,
                 lease_s: float = 600.0, seed: int | None = None,
                 session_idle_s: float = 12 * 3600,
                 session_max_age_s: float = 7 * 24 * 3600) -> None:
        self.db_path = Path(db_path)
        self.store = Store(self.db_path)
        self.reader = Store(self.db_path)
        self._write = threading.Lock()
        self._read = threading.Lock()
        self.sessions = SessionStore(self.db_path, session_idle_s, session_max_age_s)
        self.throttle = LoginThrottle()
        self.undo_window_s = undo_window_s
        self.lease_s = lease_s
        self._states: dict[int, CampaignState] = {}
        self._accounts: dict[str, tuple[float, AnnotatorRecord | None]] = {}
        self._rng = random.Random(seed)

    def close(self) -> None:
        self.store.close()
        self.reader.close()
        self.sessions.close()

    # -- accounts -------------------------------------------------------------------
    def _account(self, name: str, fresh: bool = False) -> AnnotatorRecord | None:
        now = time.monotonic()
        cached = self._accounts.get(name)
        if cached is not None and not fresh and now - cached[0] < ANNOTATOR_CACHE_S:
            return cached[1]
        with self._read:
            record = self.reader.annotator(name)
        self._accounts[name] = (now, record)
        return record

    def login(self, name: str, password: str, client: str = "local") -> Session | None:
        """A new session, or None; the caller says only "wrong name or password".
        Raises TooManyLoginsError past the throttle's limits (``client``: the
        caller's address)."""
        wait = self.throttle.retry_after(name, client)
        if wait is not None:
            raise TooManyLoginsError(wait)
        record = self._account(name, fresh=True)
        if record is None:
            burn_decoy(password)
            self.throttle.failed(name, client)
            return None
        if not verify_password(password, record.password_hash) or record.disabled:
            self.throttle.failed(name, client)
            return None
        self.throttle.succeeded(name)
        if needs_rehash(record.password_hash):  # an old scheme: argon2id from now on
            self._rehash(record.name, password)
        return self.sessions.create(record.name, record.role)

    def _rehash(self, name: str, password: str) -> None:
        new_hash = hash_password(password)  # outside the lock: hashing takes ~0.1-0.3 s
        with self._write:
            self.store.set_annotator_password_hash(name, new_hash)
        self._accounts.pop(name, None)

    def session(self, token: str | None) -> Session | None:
        """The live session for a cookie, with the account's current role."""
        session = self.sessions.get(token)
        if session is None:
            return None
        record = self._account(session.name)
        if record is None or record.disabled:
            self.sessions.revoke(token)
            return None
        return Session(session.token, session.name, record.role, session.created)

    # -- campaigns ------------------------------------------------------------------
    def campaigns(self) -> list[CampaignRecord]:
        with self._read:
            return self.reader.campaigns()

    def _state(self, campaign_id: int) -> CampaignState:
        """Caller holds the write lock."""
        state = self._states.get(campaign_id)
        if state is None:
            campaign = self.store.campaign(campaign_id)
            if campaign is None:
                raise NotFoundError(f"no campaign {campaign_id}")
            state = CampaignState.build(campaign, self.store.campaign_items(campaign_id),
                                        self.store.campaign_votes(campaign_id), self.lease_s)
            self._states[campaign_id] = state
        return state

    def warm(self) -> None:
        """Build every campaign's state now, so the first annotators do not wait for it."""
        with self._write:
            for campaign in self.store.campaigns():
                self._state(campaign.id)

    def describe(self, user: str, campaign_id: int) -> dict[str, Any]:
        """What an annotator may know about a campaign (no model names)."""
        with self._write:
            state = self._state(campaign_id)
            config = state.campaign.config
            return {"id": state.campaign.id, "name": state.campaign.name,
                    "kind": state.campaign.kind, "suite": state.campaign.suite,
                    "guidelines": config.get("guidelines", ""), "scale": config.get("scale"),
                    "flags": config.get("flags", []), "undo_window_s": self.undo_window_s,
                    "progress": self._progress(state, user)}

    def _progress(self, state: CampaignState, user: str) -> dict[str, int]:
        done, wanted = state.campaign_progress()
        return {"done": state.done[user], "target": state.annotator_target(),
                "campaign_done": done, "campaign_target": wanted}

    def progress(self, user: str, campaign_id: int) -> dict[str, int]:
        with self._write:
            return self._progress(self._state(campaign_id), user)

    # -- serving and voting -------------------------------------------------------------
    def _view(self, state: CampaignState, assignment: Assignment, user: str) -> dict[str, Any]:
        item = state.items[assignment.item_id]
        view: dict[str, Any] = {"campaign_id": state.campaign.id, "item_id": item.id,
                                "kind": state.campaign.kind, "prompt": item.prompt,
                                "progress": self._progress(state, user)}
        if item.model_b is None:
            view.update(output=item.output_a, scale=state.campaign.config.get("scale"),
                        flags=state.campaign.config.get("flags", []))
        elif assignment.left_is_a:
            view.update(a=item.output_a, b=item.output_b)
        else:
            view.update(a=item.output_b, b=item.output_a)
        return view

    def next_item(self, user: str, campaign_id: int) -> dict[str, Any] | None:
        """The annotator's open item, or a newly chosen one; None when nothing is left."""
        now = time.monotonic()
        with self._write:
            state = self._state(campaign_id)
            current = state.current.get(user)
            if current is not None and not current.answered:
                state.leases[current.item_id][user] = now + state.lease_s
                return self._view(state, current, user)
            item_id = choose_item(state, user, now, self._rng)
            if item_id is None:
                state.release(user)
                state.current.pop(user, None)
                return None
            assignment = state.hold(user, item_id, self._rng.random() < 0.5, now)
            return self._view(state, assignment, user)

    def _open(self, state: CampaignState, user: str, item_id: int) -> Assignment:
        current = state.current.get(user)
        if current is None or current.answered or current.item_id != item_id:
            raise ConflictError(f"item {item_id} is not the item open for you; ask for the next")
        return current

    def vote(self, user: str, campaign_id: int, item_id: int, *, choice: str | None = None,
             rating: int | None = None, flags: list[str] | tuple[str, ...] = (),
             reason: str | None = None) -> dict[str, Any]:
        """Record a vote on the open item; returns its id and the models' names."""
        reason = (reason or "").strip()[:MAX_REASON] or None
        with self._write:
            state = self._state(campaign_id)
            campaign = state.campaign
            if campaign.kind == "pairwise":
                if choice not in PAIR_OUTCOMES:
                    raise ReviewError(f"choice must be one of {', '.join(PAIR_OUTCOMES)}")
                outcome, flags = str(choice), ()
            else:
                low, high = campaign.config.get("scale", [1, 5])
                if not isinstance(rating, int) or isinstance(rating, bool) \
                        or not low <= rating <= high:
                    raise ReviewError(f"rating must be an integer from {low} to {high}")
                unknown = set(flags) - set(campaign.config.get("flags", []))
                if unknown:
                    raise ReviewError(f"unknown flags: {', '.join(sorted(unknown))}")
                outcome = f"rating:{rating}"
            current = self._open(state, user, item_id)
            item = state.items[item_id]
            if outcome in ("a", "b") and not current.left_is_a:  # shown swapped
                outcome = "b" if outcome == "a" else "a"
            record = self._write_vote(state, current, user, outcome, reason, list(flags))
            if item.model_b is None:
                reveal = {"model": item.model_a}
            elif current.left_is_a:
                reveal = {"a": item.model_a, "b": item.model_b}
            else:
                reveal = {"a": item.model_b, "b": item.model_a}
            return {"vote_id": record, "reveal": reveal,
                    "progress": self._progress(state, user)}

    def skip(self, user: str, campaign_id: int, item_id: int) -> dict[str, Any]:
        with self._write:
            state = self._state(campaign_id)
            current = self._open(state, user, item_id)
            vote_id = self._write_vote(state, current, user, "skip", None, [])
            return {"vote_id": vote_id, "progress": self._progress(state, user)}

    def _write_vote(self, state: CampaignState, current: Assignment, user: str, outcome: str,
                    reason: str | None, flags: list[str]) -> int:
        item = state.items[current.item_id]
        try:
            record = self.store.add_vote(
                item, user, outcome, left_is_a=current.left_is_a if item.model_b else None,
                reason=reason, flags=flags, seconds=round(time.monotonic() - current.served_at, 3),
                category=state.campaign.suite)
        except VoteConflictError as exc:
            current.answered = True
            raise ConflictError(str(exc)) from None
        state.apply(record)
        state.release(user)
        current.answered = True
        return record.id

    def undo(self, user: str, campaign_id: int) -> dict[str, Any]:
        """Take back the annotator's last vote or skip, if recent; its item is open again."""
        with self._write:
            state = self._state(campaign_id)
            history = state.history.get(user)
            last = state.live[history[-1]] if history else None
            age = time.time() - datetime.fromisoformat(last.created_at).timestamp() \
                if last else None
            if last is None or age is None or age > self.undo_window_s:
                raise ConflictError(f"nothing to undo from the last {self.undo_window_s:g} s")
            try:
                record = self.store.undo_vote(last)
            except VoteConflictError as exc:
                raise ConflictError(str(exc)) from None
            state.apply(record)
            left_is_a = True if last.left_is_a is None else last.left_is_a
            assignment = state.hold(user, last.item_id, left_is_a, time.monotonic())
            return {"undone": last.id, "undo_id": record.id,
                    "item": self._view(state, assignment, user)}

    # -- reading for admins and the leaderboard ----------------------------------------------
    def snapshot(self, campaign_id: int) -> tuple[CampaignState, list[VoteRecord]]:
        """A fresh picture of a campaign, and all its rows, from the database alone."""
        with self._read:
            campaign = self.reader.campaign(campaign_id)
            if campaign is None:
                raise NotFoundError(f"no campaign {campaign_id}")
            items = self.reader.campaign_items(campaign_id)
            rows = self.reader.campaign_votes(campaign_id)
        return CampaignState.build(campaign, items, rows), rows

    def battles(self, source: str | None) -> list[tuple[str, str, str]]:
        with self._read:
            return self.reader.battle_rows(source)

    def annotator_list(self) -> list[AnnotatorRecord]:
        with self._read:
            return self.reader.annotators()
