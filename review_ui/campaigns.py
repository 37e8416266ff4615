"""Building a review campaign from runs already in the store.

A campaign copies its prompts and outputs into ``campaign_items`` when it is
created, so later runs (or a rescored run) never change what annotators are
voting on. Everything is validated before the one transaction that writes
the campaign: a bad option leaves the database untouched.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.store import Store
from harness.store.records import RunRecord
from harness.store.review import CampaignRecord, NewItem
from harness.types import Request

KINDS = ("pairwise", "single")
FLAGS = ("incorrect", "harmful", "refusal", "other")
DONE_STATUSES = ("completed", "completed_with_errors")
DEFAULT_GUIDELINES = """\
**Pairwise.** Read the prompt, then both answers. Pick the answer that is more
correct and more helpful; if they are equally good choose *Tie*, if neither is
acceptable choose *Both are bad*. Judge content, not length or formatting.
The model names are shown only after you vote.

**Single rating.** Rate the answer from 1 (useless or wrong) to 5 (correct,
complete and clear), and tick every flag that applies.

Skip an item you cannot judge. *Undo* takes back your last vote for a short
while after you cast it.
"""


@dataclass(frozen=True)
class CampaignSpec:
    """What `evalarena campaign create` was asked for."""

    name: str
    suite: str
    kind: str = "pairwise"
    models: tuple[str, ...] = ()  # empty: every model with a completed run of the suite
    votes_per_item: int = 3
    guidelines: str = DEFAULT_GUIDELINES
    scale: tuple[int, int] = (1, 5)
    gold: tuple[dict[str, Any], ...] = ()
    gold_every: int = 5
    quota: int = 0  # most regular items per annotator; 0 = no limit
    limit: int = 0  # first N samples of the suite; 0 = all
    keep_identical: bool = False


def parse_scale(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        lo, hi = int(low), int(high)
    except ValueError:
        lo = hi = 0
    if not sep or lo >= hi or lo < 0 or hi > 100:
        raise InputError("--scale", None, f"{text!r} is not LOW-HIGH, e.g. 1-5")
    return lo, hi


def read_gold(path: Path) -> tuple[dict[str, Any], ...]:
    """Gold answers: JSONL lines of {"sample_id", "answer"[, "model"]}."""
    if not path.is_file():
        raise InputError("--gold", None, f"no file at {path}")
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(str(path), f"line {number}", f"not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or "sample_id" not in row or "answer" not in row:
            raise InputError(str(path), f"line {number}", "needs sample_id and answer")
        lines.append({**row, "line": number})
    return tuple(lines)


def _latest_runs(store: Store, spec: CampaignSpec) -> dict[str, RunRecord]:
    runs = [r for r in store.list_runs() if r.suite == spec.suite and r.status in DONE_STATUSES]
    if not runs:
        raise InputError("--suite", None, f"no completed run of suite {spec.suite!r} in "
                         f"{store.path}; run `evalarena run --suite {spec.suite} ...` first")
    kind = runs[-1].manifest.get("suite", {}).get("config", {}).get("kind")
    if kind != "generate":
        raise InputError("--suite", None, f"suite {spec.suite!r} is {kind}: it has no "
                         "generated text to review")
    latest: dict[str, RunRecord] = {}
    for run in runs:  # list_runs is oldest first: the last one wins
        latest[run.model] = run
    if spec.models:
        missing = [m for m in spec.models if m not in latest]
        if missing:
            raise InputError("--models", None, f"no completed run of {spec.suite!r} for "
                             f"{', '.join(missing)}; available: {', '.join(sorted(latest))}")
        latest = {m: latest[m] for m in spec.models}
    wanted = 2 if spec.kind == "pairwise" else 1
    if len(latest) < wanted:
        raise InputError("--models", None, f"{spec.kind} needs {wanted} models with runs of "
                         f"{spec.suite!r}; found {', '.join(sorted(latest)) or 'none'}")
    return latest


def _prompt(request: Request) -> str:
    """What the annotator reads: the final user turn (few-shot turns are context only)."""
    if request.messages is None:
        return request.text or ""
    users = [m.content for m in request.messages if m.role == "user"]
    return users[-1] if users else request.messages[-1].content


def _conversation(request: Request, turn: int, answer: str) -> tuple[str, str]:
    """A later turn of a conversation (a suite's ``prompt.turns``), as the annotator reads
    it: every user message so far, and this model's own earlier answers before the one
    to rate (in a pairwise item each side shows its own conversation)."""
    messages = [m for m in request.messages or () if m.role != "system"]
    users = [m.content for m in messages if m.role == "user"][-turn:]
    earlier = [m.content for m in messages if m.role == "assistant"][-(turn - 1):]
    prompt = "\n\n".join(f"**User, turn {i}:**\n\n{text}" for i, text in enumerate(users, 1))
    shown = [f"*Earlier answer, turn {i}:*\n\n{text}" for i, text in enumerate(earlier, 1)]
    shown.append(f"**The answer to rate, turn {turn}:**\n\n{answer}")
    return prompt, "\n\n---\n\n".join(shown)


def _answers(store: Store, run: RunRecord) -> dict[str, tuple[int, str, str]]:
    """sample id -> (position, prompt, first generated text) for answered samples."""
    samples = store.run_samples(run.id)
    completions = store.completions(s.request_key for s in samples)
    found = {}
    for stored in samples:
        completion = completions.get(stored.request_key)
        if completion is None or not completion.texts:
            continue
        request = store.get_request(stored.request_key)
        turn = stored.sample.doc.get("turn") if "conversation" in stored.sample.doc else None
        if isinstance(turn, int) and turn > 1:
            prompt, output = _conversation(request, turn, completion.texts[0])
        else:
            prompt, output = _prompt(request), completion.texts[0]
        found[stored.sample.id] = (stored.position, prompt, output)
    return found


def _gold_for(spec: CampaignSpec, item: NewItem, gold: list[dict[str, Any]]) -> str | None:
    for row in gold:
        if str(row["sample_id"]) != item.sample_id:
            continue
        answer = row["answer"]
        if spec.kind == "single":
            if row.get("model") not in (None, item.model_a):
                continue
            return f"rating:{int(answer)}"
        if answer in ("tie", "both_bad"):
            return str(answer)
        if answer == item.model_a:
            return "a"
        if answer == item.model_b:
            return "b"
    return None


def _check_gold(spec: CampaignSpec, samples: set[str], models: list[str]) -> None:
    low, high = spec.scale
    for row in spec.gold:
        where = f"line {row['line']}"
        if str(row["sample_id"]) not in samples:
            raise InputError("--gold", where, f"sample {row['sample_id']!r} is not in the "
                             "campaign")
        answer = row["answer"]
        if spec.kind == "single":
            if not isinstance(answer, int) or not low <= answer <= high:
                raise InputError("--gold", where, f"answer must be a rating {low}-{high}")
        elif answer not in (*models, "tie", "both_bad"):
            raise InputError("--gold", where, "answer must be a model name, tie or both_bad")


def build_items(store: Store, spec: CampaignSpec) -> tuple[dict[str, Any], list[NewItem]]:
    """The campaign's config and items; raises InputError, writes nothing."""
    if spec.kind not in KINDS:
        raise InputError("--kind", None, f"{spec.kind!r} is not one of {', '.join(KINDS)}")
    if spec.votes_per_item < 1:
        raise InputError("--votes-per-item", None, "must be at least 1")
    runs = _latest_runs(store, spec)
    models = list(runs)
    answers = {m: _answers(store, run) for m, run in runs.items()}
    order: dict[str, int] = {}
    for found in answers.values():
        for sample_id, (position, _, _) in found.items():
            order.setdefault(sample_id, position)
    samples = sorted(order, key=lambda s: (order[s], s))
    if spec.limit:
        samples = samples[:spec.limit]
    items: list[NewItem] = []
    skipped_identical = 0
    for sample_id in samples:
        if spec.kind == "single":
            items.extend(NewItem(sample_id, answers[m][sample_id][1], m, answers[m][sample_id][2])
                         for m in models if sample_id in answers[m])
            continue
        for first, second in itertools.combinations(models, 2):
            if sample_id not in answers[first] or sample_id not in answers[second]:
                continue
            _, prompt, out_a = answers[first][sample_id]
            out_b = answers[second][sample_id][2]
            if out_a.strip() == out_b.strip() and not spec.keep_identical:
                skipped_identical += 1
                continue
            items.append(NewItem(sample_id, prompt, first, out_a, second, out_b))
    _check_gold(spec, set(samples), models)
    gold = list(spec.gold)
    items = [NewItem(i.sample_id, i.prompt, i.model_a, i.output_a, i.model_b, i.output_b,
                     _gold_for(spec, i, gold)) for i in items]
    if not any(i.gold is None for i in items):
        raise InputError("--suite", None, f"no items to review from {', '.join(models)} on "
                         f"{spec.suite!r} ({skipped_identical} pairs had identical outputs; "
                         "--keep-identical keeps them)")
    config = {
        "models": models,
        "runs": {m: r.id for m, r in runs.items()},
        "votes_per_item": spec.votes_per_item,
        "guidelines": spec.guidelines,
        "scale": list(spec.scale),
        "flags": list(FLAGS),
        "gold_every": spec.gold_every if any(i.gold for i in items) else 0,
        "quota": spec.quota,
        "skipped_identical": skipped_identical,
    }
    return config, items


def create_campaign(store: Store, spec: CampaignSpec) -> tuple[CampaignRecord, int]:
    """Validate, then write the campaign and its items in one transaction."""
    if store.campaign(spec.name) is not None or not spec.name.strip() or spec.name.isdigit():
        raise InputError("--name", None, f"{spec.name!r} is taken or not a usable name "
                         "(names must be unique and not all digits)")
    config, items = build_items(store, spec)
    record = store.create_campaign(spec.name, spec.kind, spec.suite, config, items,
                                   spec.votes_per_item)
    return record, len(items)

