"""Assemble leaderboards from a database: which battles, which fit, which breakdowns.

A :class:`BoardSpec` is everything that decides the numbers (battle filter,
method, interval, rounds, seed, anchor). :func:`build_board` reads the
matching battles from the store (aggregated in SQL), fits them with
:func:`~.ratings.fit_ratings` and keeps the data hash next to the result, so
every number shown later can be traced to its data and parameters.
:func:`assemble` adds the breakdown boards (one per source and per category
when there are several) and the task-metric board, which is what the
``leaderboard`` and ``publish`` commands show.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import InputError

from .battles import BattleCounts
from .diagnostics import diagnose
from .ratings import Ratings, fit_ratings, predicted_win_rate, win_rate_matrix

if TYPE_CHECKING:
    from harness.store import Store
    from harness.store.ratings import TaskCell

METHODS = ("bt", "elo")
CI_METHODS = ("bootstrap", "sandwich", "none")
FORMAT = "evalarena-leaderboard/1"


@dataclass(frozen=True)
class BoardSpec:
    """The parameters of one board; recorded in every published file."""

    source: str = "all"  # all | human | judge | judge:<id> | any source name
    category: str | None = None  # suite or tag; None = every category
    method: str = "bt"
    ci: str = "bootstrap"
    rounds: int = 1000
    seed: int = 0
    anchor: str | None = None  # model pinned at anchor_value; None = pool mean
    anchor_value: float = 1000.0
    level: float = 0.95

    def validate(self) -> None:
        """Reject bad parameters before any data is read (input errors, exit 2)."""
        if self.method not in METHODS:
            raise InputError("--method", None, f"{self.method!r} is not one of "
                             f"{', '.join(METHODS)}")
        if self.ci not in CI_METHODS:
            raise InputError("--ci", None, f"{self.ci!r} is not one of {', '.join(CI_METHODS)}")
        if self.method == "elo" and self.ci == "sandwich":
            raise InputError("--ci", None, "sandwich intervals exist for bt only; use "
                             "bootstrap or none with elo")
        if self.rounds < 1:
            raise InputError("--rounds", None, f"must be at least 1, got {self.rounds}")
        if not self.source:
            raise InputError("--source", None, "must not be empty")
        if not np.isfinite(self.anchor_value):
            raise InputError("--anchor-value", None, "must be a finite number")

    def params(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def anchor_arg(self) -> str | tuple[str, float] | None:
        return None if self.anchor is None else (self.anchor, self.anchor_value)


@dataclass(frozen=True)
class Board:
    """One fitted leaderboard with its data hash and the matrices the site plots."""

    key: str  # "main", "source:<name>" or "category:<name>"
    title: str
    spec: BoardSpec
    ratings: Ratings
    counts: BattleCounts  # ordered (model_a, model_b) pairs as stored
    data_hash: str
    flagged: frozenset[str]  # models whose numbers are partly set by the prior

    @property
    def n_battles(self) -> int:
        return int(self.counts.total)

    def records(self) -> list[dict[str, Any]]:
        """Best first; adds the prior flag to :meth:`Ratings.records`."""
        return [{**r, "flagged": r["model"] in self.flagged} for r in self.ratings.records()]

    def order(self) -> list[int]:
        """Model indices, best rating first (the order of every matrix on the site)."""
        return [self.ratings.models.index(r["model"]) for r in self.ratings.records()]

    def matrices(self) -> dict[str, Any]:
        """Battles, observed and predicted win rates, rows and columns best first."""
        idx = self.order()
        games = np.zeros((self.counts.n_models,) * 2)
        np.add.at(games, (self.counts.pair_a, self.counts.pair_b), self.counts.n)
        games += games.T
        pick = np.ix_(idx, idx)
        return {
            "models": [self.ratings.models[i] for i in idx],
            "battles": games[pick],
            "win_rate": win_rate_matrix(self.counts)[pick],
            "predicted_win_rate": predicted_win_rate(self.ratings)[pick],
        }


@dataclass(frozen=True)
class TaskBoard:
    """Model × (suite, metric) cells from finished runs, with the hash of those cells."""

    cells: tuple[TaskCell, ...]
    data_hash: str

    @property
    def models(self) -> list[str]:
        return sorted({c.model for c in self.cells})

    @property
    def columns(self) -> list[tuple[str, str]]:
        return sorted({(c.suite, c.metric) for c in self.cells})

    def cell(self, model: str, column: tuple[str, str]) -> TaskCell | None:
        return next((c for c in self.cells if c.model == model
                     and (c.suite, c.metric) == column), None)


@dataclass(frozen=True)
class Leaderboard:
    """Everything one publish shows: the main board, breakdowns, task metrics."""

    spec: BoardSpec
    main: Board
    breakdowns: tuple[Board, ...]
    tasks: TaskBoard

    @property
    def data_hash(self) -> str:
        """One hash over every piece of data shown (the boards' and the task cells')."""
        parts = {"battles": self.main.data_hash, "tasks": self.tasks.data_hash,
                 "breakdowns": {b.key: b.data_hash for b in self.breakdowns}}
        text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _counts(rows: tuple[tuple[str, str, str, int], ...]) -> tuple[BattleCounts, int]:
    """BattleCounts from SQL-aggregated rows; self-battles are dropped and counted."""
    table: dict[tuple[str, str], list[float]] = {}
    slot = {"a": 0, "b": 1, "tie": 2, "tie_bad": 2}
    dropped = 0
    for a, b, outcome, n in rows:
        if a == b:
            dropped += n
            continue
        table.setdefault((a, b), [0.0, 0.0, 0.0])[slot[outcome]] += n
    models = sorted({m for pair in table for m in pair})
    pos = {m: i for i, m in enumerate(models)}
    keys = list(table)
    values = np.array([table[k] for k in keys], dtype=float).reshape(-1, 3)
    counts = BattleCounts(tuple(models), np.array([pos[a] for a, _ in keys], dtype=int),
                          np.array([pos[b] for _, b in keys], dtype=int),
                          values[:, 0], values[:, 1], values[:, 2])
    return counts, dropped


def _flagged(counts: BattleCounts) -> frozenset[str]:
    d = diagnose(counts)
    names = set(d.no_battles) | set(d.never_won) | set(d.never_lost)
    for group in d.unbounded_groups:
        names.update(group)
    for component in d.components[1:]:  # all but the largest: offset set by the prior
        names.update(component)
    return frozenset(names)


def _describe(store: Store, spec: BoardSpec) -> str:
    sources = ", ".join(f"{s} ({n})" for s, n in store.battle_sources().items()) or "none"
    categories = ", ".join(f"{c} ({n})" for c, n in store.battle_categories().items()
                           if c is not None) or "none"
    return (f"no battles match --source {spec.source}"
            + (f" --category {spec.category}" if spec.category is not None else "")
            + f"; sources: {sources}; categories: {categories}")


def build_board(store: Store, spec: BoardSpec, key: str = "main",
                title: str = "Leaderboard") -> Board:
    """Read, aggregate and fit the battles that match ``spec``; InputError if none do."""
    board = _build(store, spec, key, title, lenient=False)
    assert board is not None
    return board


def _build(store: Store, spec: BoardSpec, key: str, title: str,
           lenient: bool) -> Board | None:
    """``lenient`` (breakdowns): no battles gives None, a missing anchor the pool mean."""
    spec.validate()
    selection = store.battle_selection(spec.source, spec.category)
    counts, dropped = _counts(selection.rows)
    if counts.total == 0:
        if lenient:
            return None
        raise InputError("--source/--category", None, _describe(store, spec))
    if spec.anchor is not None and spec.anchor not in counts.models:
        if not lenient:
            raise InputError("--anchor", spec.anchor, "is not among the rated models ("
                             + ", ".join(counts.models[:10])
                             + (", …" if counts.n_models > 10 else "") + ")")
        spec = replace(spec, anchor=None)
    data_hash = selection.data_hash
    data: Any = counts
    if spec.method == "elo":
        sequence, data_hash = store.battle_sequence(spec.source, spec.category)
        data = [b for b in sequence if b[0] != b[1]]
    ratings = fit_ratings(data, method=spec.method, ci=spec.ci,  # type: ignore[arg-type]
                          rounds=spec.rounds, seed=spec.seed, anchor=spec.anchor_arg,
                          level=spec.level, models=counts.models)
    if dropped:
        note = f"{dropped} battle(s) of a model against itself were ignored"
        ratings = replace(ratings, warnings=(*ratings.warnings, note))
    flagged = _flagged(counts) if spec.method == "bt" else frozenset()
    return Board(key, title, spec, ratings, counts, data_hash, flagged)


def breakdown_specs(store: Store, spec: BoardSpec) -> list[tuple[str, str, BoardSpec]]:
    """(key, title, spec) of one board per source and per category, when there are several.

    An anchor model absent from a breakdown falls back to the pool mean there
    (the breakdown's recorded params say so).
    """
    out: list[tuple[str, str, BoardSpec]] = []
    sources = {s: n for s, n in store.battle_sources(spec.category).items()
               if spec.source == "all" or s == spec.source or s.startswith(spec.source + ":")}
    if len(sources) > 1:
        out += [(f"source:{s}", f"Source: {s}", replace(spec, source=s)) for s in sources]
    if spec.category is None:
        categories = [c for c in store.battle_categories(spec.source) if c is not None]
        if len(categories) > 1:
            out += [(f"category:{c}", f"Category: {c}", replace(spec, category=c))
                    for c in categories]
    return out


def assemble(store: Store, spec: BoardSpec, breakdowns: bool = True) -> Leaderboard:
    """The main board, its breakdowns (optional) and the task-metric board."""
    main = build_board(store, spec)
    boards = []
    if breakdowns:
        for key, title, sub in breakdown_specs(store, spec):
            board = _build(store, sub, key, title, lenient=True)
            if board is not None:
                boards.append(board)
    return Leaderboard(spec, main, tuple(boards), task_board(store))


def task_board(store: Store) -> TaskBoard:
    """Just the task-metric board (no battles needed)."""
    cells, task_hash = store.task_metric_cells()
    return TaskBoard(tuple(cells), task_hash)
