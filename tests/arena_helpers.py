"""Seed a real database with battles from known strengths and with finished runs."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from harness.store import Store
from harness.store.judgments import BattleRow
from harness.store.records import RunRecord, utc_now
from harness.types import MetricSummary

EVIL = "<script>alert(1)</script>"
STRENGTHS = {"alpha": 200.0, "beta": 100.0, "gamma": 0.0, EVIL: -100.0}


def battle_rows(n: int, seed: int, strengths: Mapping[str, float] = STRENGTHS,
                tie_rate: float = 0.15, ref_prefix: str = "") -> list[BattleRow]:
    """``n`` battles between random pairs; P(a wins) from the Elo-scale strength gap."""
    rng = np.random.default_rng(seed)
    names = list(strengths)
    rows = []
    for k in range(n):
        i, j = rng.choice(len(names), 2, replace=False)
        a, b = names[i], names[j]
        p = 1.0 / (1.0 + 10 ** (-(strengths[a] - strengths[b]) / 400.0))
        outcome = "tie" if rng.random() < tie_rate else ("a" if rng.random() < p else "b")
        rows.append(BattleRow(f"{ref_prefix}{seed}-{k}", a, b, outcome))
    return rows


def seed_battles(store: Store, source: str, category: str, n: int, seed: int,
                 strengths: Mapping[str, float] = STRENGTHS, tie_rate: float = 0.15) -> None:
    store.save_battles(source, category, battle_rows(n, seed, strengths, tie_rate,
                                                     ref_prefix=f"{category}-"))


def seed_uncategorised(store: Store, source: str, n: int, seed: int) -> None:
    """Battles with no category (as human votes from a campaign without one are)."""
    store.save_battles(source, "", battle_rows(n, seed, ref_prefix="nocat-"))
    with store.transaction() as conn:  # save_battles always sets a category
        conn.execute("UPDATE battles SET category=NULL WHERE source=? AND category=''",
                     (source,))


def seed_run(store: Store, run_id: str, model: str, suite: str, n: int,
             metrics: Mapping[str, float], status: str = "completed",
             updated_at: str | None = None) -> None:
    """A finished run with aggregate metrics only (what the task-metric board reads)."""
    now = updated_at or utc_now()
    store.upsert_run(RunRecord(run_id, model, suite, "suitehash", status, None, 0, n, {},
                               now, now))
    store.replace_scores(run_id, [], [
        MetricSummary(name, value, value - 0.05, value + 0.05, n, 0)
        for name, value in metrics.items()])
