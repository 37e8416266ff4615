"""Run a judging: send the judge requests, parse, retry once, store, combine.

Judge requests are ordinary ``Request``s sent through the ordinary backend
interface and stored in ``requests``/``completions``, so they are cached and
resumed exactly like generations: the requests are cut into fixed batches
(longest prompt first, as the runner does), each batch's answers are stored in
one transaction, and a request whose key has a completion is never sent again.

A reply whose verdict cannot be read is retried once with a nudge (the retry's
key differs from the first attempt's because it carries the reply). If the
retry cannot be read either, the judgment is stored with its parse error and
left out of every score and battle; it is counted, never guessed.

Judgments, judge scores and battles are all derived from stored completions,
so they are rewritten whole on every run: after kill -9 the rerun sends only
what is missing and then derives the same rows an uninterrupted run would.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.backends.base import Backend
from harness.judge import likelihood
from harness.judge.parse import Verdict, parse_verdict, swap_outcome
from harness.judge.plan import JudgePlan, Slot, build_slots
from harness.judge.prompts import retry_messages
from harness.judge.verdicts import combine_pair_outcomes, combine_scores, pair_outcome
from harness.runner import Progress, generate_missing
from harness.stats.bootstrap import bootstrap_mean_ci
from harness.stats.slices import cluster_labels, item_groups, summarize_slices
from harness.store import ScoreRow, Store
from harness.store.judgments import BattleRow, JudgmentRow
from harness.suites.turns import effective_stats
from harness.types import Completion, MetricSummary, Request, Sample

BackendFactory = Callable[[str], Backend]  # judge model identity -> backend
ProgressFactory = Callable[[str], Progress]


@dataclass
class JudgeStats:
    """What one judge did in one invocation, and what its stored requests cost."""

    judge: str
    identity: str
    slots: int = 0
    generated: int = 0  # requests sent now (first attempts and retries)
    reused: int = 0  # first attempts answered by an earlier run
    retried: int = 0  # judgments whose first verdict was malformed
    parse_errors: int = 0  # judgments without a verdict after the retry
    request_errors: int = 0  # requests still without an answer (retried next run)
    prompt_tokens: int = 0
    output_tokens: int = 0


@dataclass
class JudgeOutcome:
    panel: str
    mode: str
    judges: list[JudgeStats]
    scores: dict[str, MetricSummary] = field(default_factory=dict)  # contestant -> grade
    pairs: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)


def run_judging(store: Store, plan: JudgePlan, backends: BackendFactory,
                progress: ProgressFactory | None = None) -> JudgeOutcome:
    """Judge every slot of the plan, one judge (backend) at a time, and store the results.

    Names are checked before the first write, so a clash leaves the database as it was.
    Each judge's model is loaded only if one of its requests is still unanswered.
    """
    slots = build_slots(plan)
    _register(store, plan)
    store.add_requests(s.request for s in slots)
    outcome = JudgeOutcome(plan.panel_id, plan.mode, [])
    verdicts: dict[tuple[str, str, str, str | None, bool], str] = {}
    replies: dict[tuple[str, str, str, str | None, bool], str] = {}
    for judge in plan.judges:
        mine = [s for s in slots if s.judge.id == judge.id]
        stats, rows = _judge_slots(store, plan, judge.id, judge.identity, mine, backends,
                                   progress)
        store.save_judgments(rows)
        outcome.judges.append(stats)
        for row in rows:
            if row.outcome is not None:
                key = (row.judge, row.sample_id, row.model_a, row.model_b, row.swapped)
                verdicts[key], replies[key] = row.outcome, row.raw
    units = sorted({(s.sample_id, s.model_a, s.model_b) for s in slots},
                   key=lambda u: (u[1], u[2] or "", u[0]))
    if plan.mode == "single":
        outcome.scores = _store_scores(store, plan, units, verdicts)
    else:
        outcome.pairs = _store_battles(store, plan, units, verdicts, replies)
    return outcome


def _register(store: Store, plan: JudgePlan) -> None:
    settings = plan.settings()
    rows: list[tuple[str, str | None, str, dict[str, Any]]] = [
        (c.name, c.spec, "local" if c.spec else "imported",
         {"run": c.run_id, "suite": plan.suite.name, "model": c.model})
        for c in plan.contestants]
    rows += [(f"judge:{j.id}", j.identity, "judge",
              {**settings, "members": [j.id], "label": j.label}) for j in plan.judges]
    if len(plan.judges) > 1:
        rows.append((plan.source, None, "judge", settings))
    store.register_models(rows)


def _judge_slots(store: Store, plan: JudgePlan, judge_id: str, identity: str,
                 slots: Sequence[Slot], backends: BackendFactory,
                 progress: ProgressFactory | None) -> tuple[JudgeStats, list[JudgmentRow]]:
    stats = JudgeStats(judge_id, identity, slots=len(slots))
    sender = _Sender(store, f"judge:{judge_id}", lambda: backends(identity), progress)
    scale = plan.template.scale
    try:
        firsts = [s.request for s in slots]
        stats.reused = len(store.completed_keys(r.key for r in firsts))
        stats.generated += sender.send(firsts, f"judge {judge_id}")
        answers = store.completions(r.key for r in firsts)
        first_reads = {}
        retries: dict[str, Request] = {}
        for slot in slots:
            completion = answers.get(slot.request.key)
            if completion is None:
                continue
            if plan.config.verdict == "likelihood":
                text, read = likelihood.read(completion, scale, plan.mode)
                first_reads[slot.request.key] = (text, Verdict(outcome=read))
                continue
            text, truncated = _reply(completion)
            verdict = parse_verdict(text, scale, truncated=truncated, answers=slot.shown)
            first_reads[slot.request.key] = (text, verdict)
            if not verdict.ok:
                messages = retry_messages(slot.request.messages or (), text,
                                          verdict.error or "", scale)
                retries[slot.request.key] = Request(slot.request.kind, identity,
                                                    messages=messages, params=slot.request.params)
        store.add_requests(retries.values())
        stats.generated += sender.send(list(retries.values()), f"judge {judge_id} (retries)")
        retry_answers = store.completions(r.key for r in retries.values())
    finally:
        sender.close()
    rows: list[JudgmentRow] = []
    keys: list[str] = []
    for slot in slots:
        if slot.request.key not in first_reads:
            stats.request_errors += 1
            continue
        keys.append(slot.request.key)
        text, verdict = first_reads[slot.request.key]
        retry = retries.get(slot.request.key)
        error = None
        if retry is not None:
            stats.retried += 1
            completion = retry_answers.get(retry.key)
            if completion is None:
                stats.request_errors += 1
                continue
            keys.append(retry.key)
            first_error = verdict.error
            text, truncated = _reply(completion)
            verdict = parse_verdict(text, scale, truncated=truncated, answers=slot.shown)
            error = None if verdict.ok else f"{verdict.error} (first attempt: {first_error})"
        outcome = verdict.outcome
        if outcome is not None and slot.swapped:
            outcome = swap_outcome(outcome)
        stats.parse_errors += outcome is None
        rows.append(JudgmentRow(
            judge_id, plan.mode, plan.suite.name, slot.sample_id, slot.model_a, slot.model_b,
            slot.swapped, slot.run_a, slot.run_b, slot.len_a, slot.len_b, slot.request.key,
            retry.key if retry is not None else None, text, outcome, error))
    _, stats.prompt_tokens, stats.output_tokens = store.token_usage(keys)
    return stats, rows


def _reply(completion: Completion) -> tuple[str, bool]:
    text = completion.texts[0] if completion.texts else ""
    reason = completion.finish_reasons[0] if completion.finish_reasons else "stop"
    return text, reason == "length"


class _Sender:
    """Sends requests the way the runner does: fixed batches, one transaction each,
    keys traced to ``$EVALARENA_TRACE_FILE``; the backend is loaded only if needed."""

    def __init__(self, store: Store, run_id: str, factory: Callable[[], Backend],
                 progress: ProgressFactory | None) -> None:
        self.store, self.run_id, self.factory, self.progress = store, run_id, factory, progress
        self.backend: Backend | None = None

    def send(self, requests: list[Request], label: str) -> int:
        unique = list({r.key: r for r in requests}.values())
        done = self.store.completed_keys(r.key for r in unique)
        if len(done) == len(unique):
            return 0
        if self.backend is None:
            self.backend = self.factory()
        backend = self.backend
        bar = self.progress(label) if self.progress is not None else None
        try:
            return generate_missing(self.store, self.run_id, backend, list(unique), done, bar)
        finally:
            if bar is not None:
                bar.close()

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


def _store_scores(store: Store, plan: JudgePlan,
                  units: list[tuple[str, str, str | None]],
                  verdicts: dict[tuple[str, str, str, str | None, bool], str]
                  ) -> dict[str, MetricSummary]:
    """Each contestant's grades, as a judge metric of its run (with a bootstrap CI), and
    broken down as the suite's statistics ask (a conversation's: per turn, and CIs that
    resample whole conversations)."""
    summaries = {}
    stats = effective_stats(plan.suite.config)
    for contestant in plan.contestants:
        rows, missing, ungraded = [], 0, []
        for sample_id, model_a, _ in units:
            if model_a != contestant.name:
                continue
            grades = [float(verdicts[key]) for j in plan.judges
                      if (key := (j.id, sample_id, model_a, None, False)) in verdicts]
            value = combine_scores(grades, plan.combine)
            if value is None:
                missing += 1
                ungraded.append(sample_id)
                continue
            rows.append(ScoreRow(sample_id, plan.metric, value,
                                 ",".join(f"{g:g}" for g in grades)))
        seed = store.get_run(contestant.run_id).seed
        samples = [Sample(r.sample_id, contestant.docs[r.sample_id], None) for r in rows]
        clusters = cluster_labels(stats, samples)
        mean, low, high = bootstrap_mean_ci([r.value for r in rows], seed=seed,
                                            clusters=clusters)
        summary = MetricSummary(plan.metric, mean, low, high, len(rows), missing)
        slices = summarize_slices(
            plan.metric, rows, [item_groups(stats, s, None) for s in samples],
            [item_groups(stats, Sample(i, contestant.docs[i], None), None) for i in ungraded],
            clusters, functools.partial(_mean_ci, seed=seed))
        store.replace_judge_scores(contestant.run_id, plan.metric, rows, summary, slices)
        summaries[contestant.name] = summary
    return summaries


def _mean_ci(rows: list[ScoreRow], clusters: list[str] | None, seed: int
             ) -> tuple[float, float, float]:
    return bootstrap_mean_ci([r.value for r in rows], seed=seed, clusters=clusters)


def _store_battles(store: Store, plan: JudgePlan,
                   units: list[tuple[str, str, str | None]],
                   verdicts: dict[tuple[str, str, str, str | None, bool], str],
                   replies: dict[tuple[str, str, str, str | None, bool], str]
                   ) -> dict[tuple[str, str], Counter[str]]:
    """One battle per item and pair (both orders combined by the policy; jurors by
    ``combine``); a pair that no longer has an outcome loses its battle."""
    battles: list[Any] = []
    counts: dict[tuple[str, str], Counter[str]] = {}
    for sample_id, model_a, model_b in units:
        assert model_b is not None
        tally = counts.setdefault((model_a, model_b), Counter())
        outcomes = []
        for judge in plan.judges:
            first = verdicts.get((judge.id, sample_id, model_a, model_b, False))
            second = verdicts.get((judge.id, sample_id, model_a, model_b, True))
            result, status = pair_outcome(first, second, plan.config.policy)
            if plan.config.verdict == "likelihood" and first is not None and second is not None:
                # both orders' probabilities averaged: a constant position bias cancels
                result = likelihood.pair_outcome_from_probabilities([
                    likelihood.model_a_view(replies[(judge.id, sample_id, model_a, model_b, s)],
                                            s) for s in (False, True)])
            if len(plan.judges) == 1:
                tally[status] += 1
            if result is not None:
                outcomes.append(result)
        final = combine_pair_outcomes(outcomes, plan.combine)
        tally[final or "none"] += 1
        ref = json.dumps([plan.suite.name, sample_id, model_a, model_b])
        battles.append(BattleRow(ref, model_a, model_b, final))
    store.save_battles(plan.source, plan.suite.name, battles)
    return counts
