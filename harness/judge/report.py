"""How far to trust a judge: parse errors, position and length bias, self-preference,
agreement with people and with other judges, and what it cost.

Everything is computed from stored judgments, battles and votes, so the report
can be rerun at any time. Definitions (docs/judge.md has them with examples):

- position bias rate: of the pairs with a verdict in both orders, the share
  whose winner changed when the answers swapped places;
- first-position win rate: of the decisive verdicts, the share won by the
  answer shown first (0.5 for an unbiased judge);
- length bias: of the decisive pair outcomes between answers of different
  length, the share won by the longer answer, overall and by length ratio;
- self-preference: how a judge rates its own model (same model identity)
  against the others, next to how other judges rate it on the same pairs;
- agreement: percent agreement and Cohen's kappa on a | b | tie outcomes.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.judge.verdicts import (
    combine_pair_outcomes,
    combine_scores,
    pair_outcome,
    presented_first_won,
)
from harness.stats.bootstrap import bootstrap_mean_ci
from harness.store import Store
from harness.store.judgments import JudgmentRow

_RATIO_BINS = ((1.0, 1.5), (1.5, 3.0), (3.0, math.inf))
Unit = tuple[str, str, str, str | None]  # suite, sample, model_a, model_b


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float:
    """Cohen's kappa of two raters' labels; NaN when chance agreement is total."""
    if not pairs:
        return math.nan
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[k] * second[k] for k in first) / (n * n)
    return math.nan if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def agreement(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    n = len(pairs)
    return {"n": n, "percent": 100.0 * sum(a == b for a, b in pairs) / n if n else math.nan,
            "kappa": cohen_kappa(pairs)}


def judge_report(store: Store, panel: str | None = None, suite: str | None = None,
                 price_input: float = 0.0, price_output: float = 0.0) -> list[dict[str, Any]]:
    """One report per judge (or jury) that has judgments, optionally filtered."""
    models = store.named_models()
    judged = set(store.judge_ids())
    panels = [name.removeprefix("judge:") for name, m in models.items()
              if m["origin"] == "judge" and set(m["meta"].get("members", [])) & judged]
    if panel is not None:
        panels = [p for p in panels if p == panel or p.startswith(panel)]
    reports = []
    for panel_id in sorted(panels):
        meta = models[f"judge:{panel_id}"]["meta"]
        rows = [r for member in meta["members"] for r in store.judgments(member, suite)]
        if rows:
            reports.append(_panel_report(store, models, panel_id, meta, rows, price_input,
                                         price_output))
    return reports


def _panel_report(store: Store, models: dict[str, dict[str, Any]], panel_id: str,
                  meta: dict[str, Any], rows: list[JudgmentRow], price_input: float,
                  price_output: float) -> dict[str, Any]:
    keys = [k for r in rows for k in (r.request_key, r.retry_key) if k]
    answered, prompt_tokens, output_tokens = store.token_usage(keys)
    parsed = [r for r in rows if r.outcome is not None]
    report: dict[str, Any] = {
        "judge": panel_id, "mode": meta["mode"], "members": meta["members"],
        "template": meta.get("template"), "policy": meta.get("policy"),
        "combine": meta.get("combine"),
        "judgments": len(rows), "parse_errors": len(rows) - len(parsed),
        "parse_error_rate": (len(rows) - len(parsed)) / len(rows),
        "retried": sum(r.retry_key is not None for r in rows),
        "retry_recovered": sum(r.retry_key is not None and r.outcome is not None for r in rows),
        "parse_error_examples": Counter(_reason(r.parse_error) for r in rows
                                        if r.parse_error).most_common(5),
        "tokens": {"requests": answered, "prompt": prompt_tokens, "output": output_tokens,
                   "cost": prompt_tokens / 1e6 * price_input + output_tokens / 1e6 * price_output},
    }
    judge_specs = {spec for m in meta["members"]
                   if (spec := models.get(f"judge:{m}", {}).get("spec")) is not None}
    specs = {name: m["spec"] for name, m in models.items() if m["origin"] != "judge"}
    if meta["mode"] == "single":
        report.update(_single(rows, meta, judge_specs, specs))
    else:
        report.update(_pairwise(store, rows, meta, panel_id, judge_specs, specs))
    return report


def _reason(error: str) -> str:
    return error.split(" (first attempt")[0].split(":")[0][:60]


def _single(rows: list[JudgmentRow], meta: dict[str, Any], judge_specs: set[str],
            specs: dict[str, str | None]) -> dict[str, Any]:
    grades: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    lengths: dict[tuple[str, str, str], int] = {}
    for r in rows:
        lengths[(r.suite, r.sample_id, r.model_a)] = r.len_a
        if r.outcome is not None:
            grades[(r.suite, r.sample_id, r.model_a)].append(float(r.outcome))
    combined = {k: combine_scores(v, meta.get("combine", "majority")) for k, v in grades.items()}
    by_model: dict[str, list[float]] = defaultdict(list)
    for (_, _, model), value in sorted(combined.items()):
        if value is not None:
            by_model[model].append(value)
    scores = {}
    for model, values in sorted(by_model.items()):
        mean, low, high = bootstrap_mean_ci(values)
        scores[model] = {"mean": mean, "ci_low": low, "ci_high": high, "n": len(values)}
    pairs = [(lengths[k], v) for k, v in combined.items() if v is not None]
    correlation = math.nan
    if len(pairs) > 2 and len({p[0] for p in pairs}) > 1 and len({p[1] for p in pairs}) > 1:
        correlation = float(np.corrcoef(np.array(pairs, dtype=float).T)[0, 1])
    own = [m for m in by_model if specs.get(m) in judge_specs]
    self_pref = None
    if own:
        mine = [v for m in own for v in by_model[m]]
        others = [v for m, vs in by_model.items() if m not in own for v in vs]
        self_pref = {"models": own, "own_mean": float(np.mean(mine)),
                     "others_mean": float(np.mean(others)) if others else math.nan}
    return {"scores": scores, "length_score_correlation": correlation,
            "self_preference": self_pref}


def _pairwise(store: Store, rows: list[JudgmentRow], meta: dict[str, Any], panel_id: str,
              judge_specs: set[str], specs: dict[str, str | None]) -> dict[str, Any]:
    policy = meta.get("policy", "tie")
    orders: dict[tuple[str, Unit], dict[bool, str]] = defaultdict(dict)
    lengths: dict[Unit, tuple[int, int]] = {}
    first_wins = decisive = 0
    for r in rows:
        unit = (r.suite, r.sample_id, r.model_a, r.model_b)
        lengths[unit] = (r.len_a, r.len_b or 0)
        if r.outcome is None:
            continue
        orders[(r.judge, unit)][r.swapped] = r.outcome
        won = presented_first_won(r.outcome, r.swapped)
        if won is not None:
            decisive += 1
            first_wins += won
    statuses: Counter[str] = Counter()
    per_unit: dict[Unit, list[str]] = defaultdict(list)
    units = {(r.judge, (r.suite, r.sample_id, r.model_a, r.model_b)) for r in rows}
    always_first = 0
    for judge, unit in units:
        got = orders.get((judge, unit), {})
        outcome, status = pair_outcome(got.get(False), got.get(True), policy)
        statuses[status] += 1
        if status == "inconsistent" and presented_first_won(got[False], False) and \
                presented_first_won(got[True], True):
            always_first += 1
        if outcome is not None:
            per_unit[unit].append(outcome)
    combined = {u: combine_pair_outcomes(v, meta.get("combine", "majority"))
                for u, v in per_unit.items()}
    complete = statuses["consistent"] + statuses["inconsistent"]
    return {
        "pairs": len(units), "pairs_complete": complete,
        "pairs_incomplete": statuses["incomplete"],
        "position_bias_rate": statuses["inconsistent"] / complete if complete else math.nan,
        "first_position_win_rate": first_wins / decisive if decisive else math.nan,
        "first_position_both_orders": always_first,
        "outcomes": dict(Counter(v for v in combined.values() if v is not None)),
        "length_bias": _length_bias(combined, lengths),
        "self_preference": _self_preference(store, combined, panel_id, judge_specs, specs),
        "human_agreement": _human_agreement(store, combined),
        "judge_agreement": _judge_agreement(store, combined, panel_id),
    }


def _length_bias(combined: dict[Unit, str | None], lengths: dict[Unit, tuple[int, int]]
                 ) -> dict[str, Any]:
    wins: list[float] = []
    bins: list[list[float]] = [[] for _ in _RATIO_BINS]
    ties_with_gap = 0
    for unit, outcome in combined.items():
        len_a, len_b = lengths[unit]
        if outcome is None or len_a == len_b:
            continue
        if outcome == "tie":
            ties_with_gap += 1
            continue
        longer_won = float((outcome == "a") == (len_a > len_b))
        wins.append(longer_won)
        ratio = max(len_a, len_b) / max(min(len_a, len_b), 1)
        for i, (low, high) in enumerate(_RATIO_BINS):
            if low <= ratio < high:
                bins[i].append(longer_won)
    mean, low, high = bootstrap_mean_ci(wins)
    return {"longer_win_rate": mean, "ci_low": low, "ci_high": high, "n": len(wins),
            "ties": ties_with_gap,
            "by_ratio": [{"ratio": f"{lo:g}-{hi:g}x", "n": len(b),
                          "longer_win_rate": float(np.mean(b)) if b else math.nan}
                         for (lo, hi), b in zip(_RATIO_BINS, bins, strict=True)]}


def _win_value(outcome: str, model_is_a: bool) -> float:
    return 0.5 if outcome == "tie" else float((outcome == "a") == model_is_a)


def _self_preference(store: Store, combined: dict[Unit, str | None], panel_id: str,
                     judge_specs: set[str], specs: dict[str, str | None]
                     ) -> dict[str, Any] | None:
    mine: list[float] = []
    others: list[float] = []
    other_view = _other_battles(store, panel_id)
    models: set[str] = set()
    for unit, outcome in combined.items():
        _, _, model_a, model_b = unit
        own_a, own_b = specs.get(model_a) in judge_specs, specs.get(model_b or "") in judge_specs
        if outcome is None or own_a == own_b:
            continue
        models.add(model_a if own_a else model_b or "")
        mine.append(_win_value(outcome, own_a))
        others += [_win_value(o, own_a) for o in other_view.get(_ref(unit), [])]
    if not mine:
        return None
    return {"models": sorted(models), "n": len(mine), "own_win_rate": float(np.mean(mine)),
            "other_judges_win_rate": float(np.mean(others)) if others else math.nan,
            "other_judges_n": len(others)}


def _ref(unit: Unit) -> str:
    return json.dumps(list(unit))


def _other_battles(store: Store, panel_id: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for row in store.db.query("SELECT source, ref, outcome FROM battles "
                              "WHERE source LIKE 'judge:%' AND source != ?",
                              [f"judge:{panel_id}"]):
        found[row["ref"]].append(row["outcome"])
    return found


def _judge_agreement(store: Store, combined: dict[Unit, str | None], panel_id: str
                     ) -> dict[str, Any]:
    by_source: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in store.db.query("SELECT source, ref, outcome FROM battles "
                              "WHERE source LIKE 'judge:%' AND source != ?",
                              [f"judge:{panel_id}"]):
        by_source[row["source"]].append((row["ref"], row["outcome"]))
    mine = {_ref(u): o for u, o in combined.items() if o is not None}
    return {source.removeprefix("judge:"): agreement(
        [(mine[ref], o) for ref, o in pairs if ref in mine])
        for source, pairs in sorted(by_source.items())
        if any(ref in mine for ref, _ in pairs)}


def _human_agreement(store: Store, combined: dict[Unit, str | None]) -> dict[str, Any] | None:
    mine: dict[tuple[str, str, frozenset[str]], tuple[str, str]] = {}
    for (suite, sample, model_a, model_b), outcome in combined.items():
        if outcome is not None and model_b is not None:
            mine[(suite, sample, frozenset((model_a, model_b)))] = (model_a, outcome)
    pairs = []
    for human in store.human_verdicts():
        key = (human.suite, human.sample_id, frozenset((human.model_a, human.model_b)))
        if key not in mine:
            continue
        judge_a, outcome = mine[key]
        if judge_a != human.model_a and outcome != "tie":
            outcome = "b" if outcome == "a" else "a"
        pairs.append((outcome, human.outcome))
    return agreement(pairs) if pairs else None
