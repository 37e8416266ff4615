"""Load on the review app: N annotators voting through its HTTP API at once.

Starts the real server (`evalarena review`, Gradio included) on a fresh
database holding a pairwise campaign, logs N annotators in, and has each loop
"next item" -> "vote" (with the odd skip and undo) for a fixed time, as fast as
the server answers (or with a think time). Then it stops the server and checks
the database row by row against what the server acknowledged: every
acknowledged vote, skip and undo is there exactly once, nothing else is, no
annotator has two live answers on one item, and the battles table holds
exactly one battle per live pairwise vote.

    .venv/bin/python benchmarks/review_load.py [--annotators 50] [--seconds 60]

Prints votes/s and p50/p99 latency of "next item" and "vote" (target: p99
under 200 ms on the 2-core reference machine), and exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.store import Store
from review_ui.campaigns import CampaignSpec, create_campaign
from tests.helpers import add_account, running_server, seed_run

_dumps = json.dumps
MODELS = ("model-a", "model-b", "model-c", "model-d")
PASSWORD = "load-test-password"


@dataclass
class LoadResult:
    annotators: int
    seconds: float
    next_ms: list[float] = field(default_factory=list)
    vote_ms: list[float] = field(default_factory=list)
    votes: set[int] = field(default_factory=set)  # vote ids the server acknowledged
    skips: set[int] = field(default_factory=set)
    undos: dict[int, int] = field(default_factory=dict)  # undo row id -> vote it cancels
    statuses: Counter[int] = field(default_factory=Counter)
    exhausted: int = 0  # annotators who ran out of items
    problems: list[str] = field(default_factory=list)

    @staticmethod
    def _pct(values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, float]:
        return {
            "votes_per_s": len(self.votes) / self.seconds,
            "next_p50_ms": statistics.median(self.next_ms) if self.next_ms else float("nan"),
            "next_p99_ms": self._pct(self.next_ms, 0.99),
            "vote_p50_ms": statistics.median(self.vote_ms) if self.vote_ms else float("nan"),
            "vote_p99_ms": self._pct(self.vote_ms, 0.99),
        }


def seed(db: Path, annotators: int, samples: int) -> int:
    """A pairwise campaign over 4 models (6 pairs per sample), 3 votes per item."""
    with Store(db) as store:
        prompts = [f"Question {i}: what is {i} times 3?" for i in range(samples)]
        for n, model in enumerate(MODELS):
            seed_run(store, model, prompts, lambda i, _p, m=model, n=n: f"{m}: {3 * i + n % 2}")
        record, _ = create_campaign(store, CampaignSpec(name="load", suite="smoke",
                                                        votes_per_item=3))
        for k in range(annotators):
            add_account(store, f"annotator{k:02d}", PASSWORD)
    return record.id


class Response:
    def __init__(self, status_code: int, body: bytes, cookie: str | None) -> None:
        self.status_code = status_code
        self.text = body.decode("utf-8", "replace")
        self.cookie = cookie

    def json(self) -> Any:
        return json.loads(self.text)


class LeanClient:
    """HTTP/1.1 keep-alive over one asyncio connection: a load generator that costs
    the shared CPUs a tenth of what httpx would, so the numbers measure the server."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.cookie = ""
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> LeanClient:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()

    async def post(self, path: str, json: Any = None) -> Response:
        assert self.reader is not None and self.writer is not None
        body = b"" if json is None else _dumps(json).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                + (f"Cookie: {self.cookie}\r\n" if self.cookie else "") + "\r\n")
        self.writer.write(head.encode() + body)
        status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).decode(
            "latin-1").split("\r\n")
        headers: dict[str, str] = {}
        cookie = None
        for line in lines:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
                if key.strip().lower() == "set-cookie":
                    cookie = value.strip().split(";", 1)[0]
        data = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if cookie:
            self.cookie = cookie
        return Response(int(status_line.split()[1]), data, cookie)


async def _annotator(base: str, name: str, campaign: int, stop_at: float, think: float,
                     result: LoadResult, rng: random.Random) -> None:
    async with LeanClient(base) as client:
        login = await client.post("/api/login", json={"name": name, "password": PASSWORD})
        if login.status_code != 200:
            result.problems.append(f"{name}: login {login.status_code}")
            return
        while time.monotonic() < stop_at:
            start = time.perf_counter()
            got = await client.post(f"/api/campaigns/{campaign}/next")
            result.next_ms.append((time.perf_counter() - start) * 1000)
            result.statuses[got.status_code] += 1
            if got.status_code != 200:
                result.problems.append(f"{name}: next {got.status_code} {got.text[:200]}")
                return
            item = got.json()
            if item.get("done"):
                result.exhausted += 1
                return
            roll = rng.random()
            start = time.perf_counter()
            if roll < 0.05:
                answer = await client.post(f"/api/campaigns/{campaign}/skip",
                                           json={"item_id": item["item_id"]})
            else:
                answer = await client.post(f"/api/campaigns/{campaign}/vote", json={
                    "item_id": item["item_id"], "choice": rng.choice(["a", "b", "tie",
                                                                      "both_bad"])})
                result.vote_ms.append((time.perf_counter() - start) * 1000)
            result.statuses[answer.status_code] += 1
            if answer.status_code != 200:
                result.problems.append(f"{name}: answer {answer.status_code} {answer.text}")
                return
            (result.skips if roll < 0.05 else result.votes).add(answer.json()["vote_id"])
            if 0.05 <= roll < 0.07:  # take the vote back, then answer the item again
                undo = await client.post(f"/api/campaigns/{campaign}/undo")
                result.statuses[undo.status_code] += 1
                if undo.status_code != 200:
                    result.problems.append(f"{name}: undo {undo.status_code} {undo.text}")
                    return
                body = undo.json()
                result.undos[body["undo_id"]] = body["undone"]
            if think:
                await asyncio.sleep(rng.uniform(0, 2 * think))


async def _drive(base: str, campaign: int, annotators: int, seconds: float,
                 think: float) -> LoadResult:
    result = LoadResult(annotators, seconds)
    stop_at = time.monotonic() + seconds
    await asyncio.gather(*(
        _annotator(base, f"annotator{k:02d}", campaign, stop_at, think, result,
                   random.Random(k)) for k in range(annotators)))
    return result


def verify(db: Path, result: LoadResult) -> list[str]:
    """Every acknowledged row is stored exactly once and nothing else is."""
    problems = list(result.problems)
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT id, item_id, annotator, outcome, supersedes FROM votes").fetchall()
    by_kind: dict[str, set[int]] = {"vote": set(), "skip": set(), "undo": set()}
    undone = {}
    for vote_id, _, _, outcome, supersedes in rows:
        kind = outcome if outcome in ("skip", "undo") else "vote"
        by_kind[kind].add(vote_id)
        if outcome == "undo":
            undone[vote_id] = supersedes
    if len(rows) != len({r[0] for r in rows}):
        problems.append("duplicate vote ids")
    for kind, acknowledged in (("vote", result.votes), ("skip", result.skips),
                               ("undo", set(result.undos))):
        lost = acknowledged - by_kind[kind]
        extra = by_kind[kind] - acknowledged
        if lost or extra:
            problems.append(f"{kind}: {len(lost)} acknowledged but missing, "
                            f"{len(extra)} stored but never acknowledged")
    if undone != result.undos:
        problems.append("undo rows do not cancel the votes the server said they did")
    cancelled = set(undone.values())
    live = [r for r in rows if r[3] != "undo" and r[0] not in cancelled]
    pairs = Counter((r[1], r[2]) for r in live)
    doubled = [k for k, n in pairs.items() if n > 1]
    if doubled:
        problems.append(f"{len(doubled)} (item, annotator) pairs with two live answers")
    live_votes = {str(r[0]) for r in live if r[3] in ("a", "b", "tie", "both_bad")}
    battles = [r[0] for r in conn.execute("SELECT ref FROM battles WHERE source='human'")]
    if sorted(battles) != sorted(live_votes):
        problems.append(f"battles: {len(battles)} rows for {len(live_votes)} live votes")
    conn.close()
    return problems


def run_load(workdir: Path, annotators: int = 50, seconds: float = 60.0, think: float = 0.0,
             samples: int = 5000) -> tuple[LoadResult, list[str]]:
    db = workdir / "load.db"
    campaign = seed(db, annotators, samples)
    with running_server(db) as base:
        result = asyncio.run(_drive(base, campaign, annotators, seconds, think))
    return result, verify(db, result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds an annotator waits between items (default 0)")
    parser.add_argument("--samples", type=int, default=5000,
                        help="samples in the campaign (x6 pairs = items)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result, problems = run_load(Path(tmp), args.annotators, args.seconds, args.think,
                                    args.samples)
    s = result.summary()
    print(f"review load: {args.annotators} annotators, {args.seconds:g} s, think "
          f"{args.think:g} s")
    print(f"  votes {len(result.votes)} ({s['votes_per_s']:.1f}/s), skips {len(result.skips)}, "
          f"undos {len(result.undos)}, statuses {dict(result.statuses)}, "
          f"ran out of items {result.exhausted}")
    print(f"  next item: p50 {s['next_p50_ms']:.1f} ms, p99 {s['next_p99_ms']:.1f} ms "
          f"(n={len(result.next_ms)})")
    print(f"  vote:      p50 {s['vote_p50_ms']:.1f} ms, p99 {s['vote_p99_ms']:.1f} ms "
          f"(n={len(result.vote_ms)})")
    target = "met" if max(s["next_p99_ms"], s["vote_p99_ms"]) < 200 else "NOT met"
    print(f"  p99 < 200 ms target: {target}")
    print("  database check: " + ("every acknowledged row stored exactly once, no duplicates"
                                  if not problems else "; ".join(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
