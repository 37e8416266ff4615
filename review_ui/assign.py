"""Which item an annotator sees next (docs/review.md, "Assignment policy").

The policy, in order:

1. An annotator who has an item open gets the same item again (a page reload
   or a second tab never burns an item).
2. Never an item the annotator already answered (voted or skipped). An undo
   gives the undone item straight back, to be answered again.
3. Every ``gold_every``-th item is a gold item (known answer) the annotator has
   not seen, while there are regular items left for them; gold items are shown
   to every annotator, whatever their vote count.
4. Otherwise a regular item still short of its target, counting live votes
   plus items open in other annotators' hands (leases, which lapse after
   ``lease_s`` seconds so an abandoned tab does not hold an item forever),
   preferring the fewest votes, then, for pairs, the two models whose running
   ratings are closest (a close pair is where one more vote teaches most), then
   a random draw.

``CampaignState`` is the in-memory picture this needs, rebuilt from the votes
table on first use and updated after every committed write; the database stays
the authority (a duplicate vote is refused there, not here).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from harness.store.review import CampaignRecord, ItemRecord, VoteRecord

NON_VOTES = ("skip", "undo")
Pair = tuple[str, str | None]  # (model_a, model_b); model_b is None for single rating


@dataclass
class Assignment:
    item_id: int
    left_is_a: bool
    served_at: float  # time.monotonic() when served
    answered: bool = False


@dataclass
class CampaignState:
    campaign: CampaignRecord
    items: dict[int, ItemRecord]
    lease_s: float = 600.0
    votes: Counter[int] = field(default_factory=Counter)  # live votes per item
    seen: defaultdict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    done: Counter[str] = field(default_factory=Counter)  # live votes per annotator
    live: dict[int, VoteRecord] = field(default_factory=dict)  # live rows by vote id
    history: defaultdict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    points: defaultdict[str, list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0.0, 0.0]))  # model -> [points, games]
    leases: dict[int, dict[str, float]] = field(default_factory=dict)  # item -> holder: until
    current: dict[str, Assignment] = field(default_factory=dict)
    # regular items short of their target: vote count -> model pair -> ids (insertion-ordered),
    # so choosing scans a handful of buckets, not every item of a large campaign
    pool: defaultdict[int, defaultdict[Pair, dict[int, None]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict)))
    regular_ids: list[int] = field(default_factory=list)
    gold_ids: list[int] = field(default_factory=list)
    capped_votes: int = 0  # sum over regular items of min(votes, target), kept current
    _wanted: int | None = None

    @classmethod
    def build(cls, campaign: CampaignRecord, items: list[ItemRecord],
              rows: list[VoteRecord], lease_s: float = 600.0) -> CampaignState:
        state = cls(campaign, {i.id: i for i in items}, lease_s)
        state.regular_ids = [i.id for i in items if i.gold is None]
        state.gold_ids = [i.id for i in items if i.gold is not None]
        for item in items:
            if item.gold is None and item.target_votes > 0:
                state.pool[0][(item.model_a, item.model_b)][item.id] = None
        for row in rows:
            state.apply(row)
        return state

    def _move(self, item_id: int, before: int) -> None:
        item = self.items[item_id]
        if item.gold is not None:
            return
        pair = (item.model_a, item.model_b)
        after = self.votes[item_id]
        self.capped_votes += min(after, item.target_votes) - min(before, item.target_votes)
        if before < item.target_votes:
            bucket = self.pool[before][pair]
            bucket.pop(item_id, None)
            if not bucket:
                del self.pool[before][pair]
                if not self.pool[before]:
                    del self.pool[before]
        if after < item.target_votes:
            self.pool[after][pair][item_id] = None

    @property
    def gold_every(self) -> int:
        return int(self.campaign.config.get("gold_every") or 0)

    # -- keeping in step with the votes table -------------------------------------
    def apply(self, row: VoteRecord) -> None:
        """Account for one committed row (vote, skip or undo)."""
        if row.outcome == "undo":
            undone = self.live.pop(row.supersedes or -1, None)
            if undone is not None:
                self._count(undone, -1)
            return
        self.live[row.id] = row
        self._count(row, +1)

    def _count(self, row: VoteRecord, sign: int) -> None:
        seen = self.seen[row.annotator]
        if sign > 0:
            seen.add(row.item_id)
            self.history[row.annotator].append(row.id)
        else:
            seen.discard(row.item_id)
            self.history[row.annotator].remove(row.id)
        if row.outcome in NON_VOTES:
            return
        self.votes[row.item_id] += sign
        self._move(row.item_id, self.votes[row.item_id] - sign)
        self.done[row.annotator] += sign
        item = self.items.get(row.item_id)
        if item is not None and item.model_b is not None:
            share_a = {"a": 1.0, "b": 0.0}.get(row.outcome, 0.5)
            for model, share in ((item.model_a, share_a), (item.model_b, 1.0 - share_a)):
                self.points[model][0] += sign * share
                self.points[model][1] += sign

    def rating(self, model: str) -> float:
        """Smoothed share of points won: cheap, updated per vote, 0.5 with no data."""
        won, games = self.points[model]
        return (won + 1.0) / (games + 2.0)

    # -- leases -----------------------------------------------------------------
    def release(self, annotator: str) -> None:
        current = self.current.get(annotator)
        if current is not None:
            holders = self.leases.get(current.item_id)
            if holders is not None:
                holders.pop(annotator, None)
                if not holders:
                    del self.leases[current.item_id]

    def hold(self, annotator: str, item_id: int, left_is_a: bool, now: float) -> Assignment:
        self.release(annotator)
        self.leases.setdefault(item_id, {})[annotator] = now + self.lease_s
        assignment = Assignment(item_id, left_is_a, now)
        self.current[annotator] = assignment
        return assignment

    # -- progress -----------------------------------------------------------------
    def annotator_target(self) -> int:
        regular = len(self.regular_ids)
        quota = int(self.campaign.config.get("quota") or 0)
        return min(quota, regular) if quota else regular

    def campaign_progress(self) -> tuple[int, int]:
        """(live votes on regular items, capped at target; votes wanted)."""
        wanted = sum(self.items[i].target_votes for i in self.regular_ids) \
            if self._wanted is None else self._wanted
        self._wanted = wanted
        return self.capped_votes, wanted


def _held_by_others(state: CampaignState, annotator: str, now: float) -> dict[int, int]:
    """Items open in other annotators' hands, with how many hold each; drops lapsed leases."""
    held: dict[int, int] = {}
    for item_id in list(state.leases):
        holders = state.leases[item_id]
        for who in [w for w, until in holders.items() if until <= now]:
            del holders[who]
        if not holders:
            del state.leases[item_id]
            continue
        others = sum(1 for who in holders if who != annotator)
        if others:
            held[item_id] = others
    return held


def choose_item(state: CampaignState, annotator: str, now: float,
                rng: random.Random) -> int | None:
    """The next item for ``annotator`` under the policy above, or None when none is left."""
    seen = state.seen[annotator]
    quota = int(state.campaign.config.get("quota") or 0)
    regular_seen = len(seen) - sum(1 for i in state.gold_ids if i in seen)
    if quota and regular_seen >= quota:
        return None
    held = _held_by_others(state, annotator, now)
    closeness: dict[Pair, float] = {}

    def close(pair: Pair) -> float:
        if pair not in closeness:
            closeness[pair] = 0.0 if pair[1] is None else round(
                abs(state.rating(pair[0]) - state.rating(pair[1])), 2)
        return closeness[pair]

    pooled: tuple[int, int] | None = None  # (votes, item) from the fewest-votes bucket
    for level in sorted(state.pool):
        pairs = sorted(state.pool[level], key=lambda p: (close(p), rng.random()))
        for pair in pairs:
            found = next((i for i in state.pool[level][pair] if i not in seen and i not in held),
                         None)
            if found is not None:
                pooled = (level, found)
                break
        if pooled is not None:
            break
    # an item open elsewhere counts as filled by its holders; it wins only with strictly
    # fewer, so free items are preferred and two annotators rarely race for one slot
    contested: tuple[int, float, float, int] | None = None
    for item_id, others in held.items():
        item = state.items[item_id]
        filled = state.votes[item_id] + others
        if item.gold is None and item_id not in seen and filled < item.target_votes:
            key = (filled, close((item.model_a, item.model_b)), rng.random(), item_id)
            if contested is None or key < contested:
                contested = key
    if contested is not None and (pooled is None or contested[0] < pooled[0]):
        best_id: int | None = contested[3]
    else:
        best_id = pooled[1] if pooled is not None else None
    if best_id is None:
        return None
    every = state.gold_every
    if every > 1:
        gold_seen = len(seen) - regular_seen
        if regular_seen >= (gold_seen + 1) * (every - 1):
            unseen_gold = [i for i in state.gold_ids if i not in seen]
            if unseen_gold:
                return rng.choice(unseen_gold)
    return best_id
