"""What admins read: campaign progress, agreement, per-annotator stats, exports,
and the leaderboard every user may see. Pure functions over rows already read.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

from harness.spreadsheet import safe_row
from harness.store.review import VoteRecord
from review_ui.agreement import fleiss_kappa, krippendorff_alpha, majority
from review_ui.assign import NON_VOTES, CampaignState

EXPORT_COLUMNS = [
    "vote_id", "campaign", "item_id", "sample_id", "annotator", "outcome", "rating",
    "model_a", "model_b", "left_model", "right_model", "winner", "flags", "reason", "seconds",
    "supersedes", "undone", "gold", "created_at",
]


def _value(row: VoteRecord) -> Hashable:
    if row.outcome.startswith("rating:"):
        return int(row.outcome.split(":", 1)[1])
    return row.outcome


def _round(value: float, digits: int = 3) -> float | None:
    return None if math.isnan(value) else round(value, digits)


def campaign_report(state: CampaignState, rows: Sequence[VoteRecord]) -> dict[str, Any]:
    """Progress, agreement and per-annotator statistics of one campaign."""
    single = state.campaign.kind == "single"
    votes = [r for r in state.live.values() if r.outcome not in NON_VOTES]
    by_item: dict[int, list[VoteRecord]] = defaultdict(list)
    for row in votes:
        by_item[row.item_id].append(row)
    units = [[_value(r) for r in item_votes] for item_votes in by_item.values()]
    agreement = {
        "items_with_2_or_more_votes": sum(1 for u in units if len(u) >= 2),
        "fleiss_kappa": _round(fleiss_kappa(units)),
        "krippendorff_alpha_nominal": _round(krippendorff_alpha(units, "nominal")),
    }
    if single:
        agreement["krippendorff_alpha_interval"] = _round(krippendorff_alpha(units, "interval"))
    done, wanted = state.campaign_progress()
    regular = state.regular_ids
    progress = {
        "items": len(regular),
        "gold_items": len(state.items) - len(regular),
        "items_complete": sum(1 for i in regular if state.votes[i] >= state.items[i].target_votes),
        "votes": done, "votes_wanted": wanted,
        "percent": round(100.0 * done / wanted, 1) if wanted else 100.0,
    }
    return {"campaign": state.campaign.name, "kind": state.campaign.kind,
            "progress": progress, "agreement": agreement,
            "annotators": _annotator_stats(state, rows, votes, by_item)}


def _annotator_stats(state: CampaignState, rows: Sequence[VoteRecord],
                     votes: list[VoteRecord],
                     by_item: dict[int, list[VoteRecord]]) -> list[dict[str, Any]]:
    names = sorted({r.annotator for r in rows})
    stats = []
    for name in names:
        mine = [r for r in votes if r.annotator == name]
        seconds = [r.seconds for r in mine if r.seconds is not None]
        agreed = compared = correct = gold_total = 0
        for row in mine:
            others = [_value(r) for r in by_item[row.item_id] if r.annotator != name]
            top = majority(others) if len(others) >= 2 else None
            if top is not None:
                compared += 1
                agreed += _value(row) == top
            gold = state.items[row.item_id].gold
            if gold is not None:
                gold_total += 1
                correct += row.outcome == gold
        stats.append({
            "annotator": name,
            "votes": len(mine),
            "target": state.annotator_target(),
            "skips": sum(1 for r in state.live.values()
                         if r.annotator == name and r.outcome == "skip"),
            "undos": sum(1 for r in rows if r.annotator == name and r.outcome == "undo"),
            "median_seconds": round(statistics.median(seconds), 2) if seconds else None,
            "agreement_with_majority": round(agreed / compared, 3) if compared else None,
            "compared": compared,
            "gold_accuracy": round(correct / gold_total, 3) if gold_total else None,
            "gold_answered": gold_total,
        })
    return stats


def export_rows(state: CampaignState, rows: Sequence[VoteRecord]) -> list[dict[str, Any]]:
    """Every row of the campaign (votes, skips, undos) with what it was about."""
    undone = {r.supersedes for r in rows if r.outcome == "undo"}
    out = []
    for row in rows:
        item = state.items[row.item_id]
        left = right = winner = None
        if item.model_b is not None and row.left_is_a is not None:
            left, right = ((item.model_a, item.model_b) if row.left_is_a
                           else (item.model_b, item.model_a))
            winner = {"a": item.model_a, "b": item.model_b}.get(row.outcome)
        value = _value(row)
        out.append({
            "vote_id": row.id, "campaign": state.campaign.name, "item_id": row.item_id,
            "sample_id": item.sample_id, "annotator": row.annotator, "outcome": row.outcome,
            "rating": value if isinstance(value, int) else None,
            "model_a": item.model_a, "model_b": item.model_b, "left_model": left,
            "right_model": right, "winner": winner, "flags": list(row.flags),
            "reason": row.reason, "seconds": row.seconds, "supersedes": row.supersedes,
            "undone": row.id in undone, "gold": item.gold, "created_at": row.created_at,
        })
    return out


def to_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow(safe_row({k: json.dumps(v) if isinstance(v, list) else v
                                  for k, v in row.items()}))
    return buffer.getvalue()


def leaderboard(battles: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Battle counts and win rates per model, with Bradley-Terry ratings when they fit."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # wins, ties, losses
    for model_a, model_b, outcome in battles:
        if outcome == "a":
            counts[model_a][0] += 1
            counts[model_b][2] += 1
        elif outcome == "b":
            counts[model_b][0] += 1
            counts[model_a][2] += 1
        else:
            counts[model_a][1] += 1
            counts[model_b][1] += 1
    ratings: dict[str, tuple[float, float, float]] = {}
    if len(counts) >= 2:
        try:
            from leaderboards.ratings import fit_ratings

            fitted = fit_ratings(list(battles), method="bt", ci="sandwich")
            ratings = {r["model"]: (r["rating"], r["ci_low"], r["ci_high"])
                       for r in fitted.records()}
        except Exception:  # a fit that fails still leaves the counts
            ratings = {}
    table = []
    for model, (wins, ties, losses) in counts.items():
        total = wins + ties + losses
        rating = ratings.get(model)
        table.append({
            "model": model, "battles": total, "wins": wins, "ties": ties, "losses": losses,
            "win_rate": round((wins + 0.5 * ties) / total, 3) if total else None,
            "rating": round(rating[0]) if rating else None,
            "ci": f"{rating[1]:.0f} to {rating[2]:.0f}" if rating else None,
        })
    table.sort(key=lambda r: (-float(r["rating"] or 0), -float(r["win_rate"] or 0),  # type: ignore[arg-type]
                              str(r["model"])))
    return table
