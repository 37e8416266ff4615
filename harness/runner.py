"""Runs a suite against a model: plan (pure), execute (resumable), score.

A run's id is a hash of the model identity, the resolved suite, the limit and
the seed, so running the same command again finds the same run and only
generates what is missing. Requests are cut into fixed batches over the whole
run and each batch's answers are stored in one transaction: after a crash a
batch is either fully stored or fully redone, and the redone batch has exactly
the composition it would have had, so a resumed run gives identical results.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from harness.backends import ModelSpec, parse_model_spec
from harness.backends.base import Backend
from harness.manifest import build_manifest
from harness.metrics import METRICS, AggregateMetric, BatchMetric, Extraction
from harness.stats import bootstrap_mean_ci
from harness.store import RunRecord, ScoreRow, Store, utc_now
from harness.suite import Suite, SuiteConfig, build_requests, load_suite
from harness.types import Completion, MetricSummary, Request, Sample

TRACE_ENV = "EVALARENA_TRACE_FILE"  # if set, every request key sent to a backend is appended


class Progress(Protocol):
    def start(self, total: int, done: int) -> None: ...
    def advance(self, count: int, tokens: int) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    suite: Suite
    model: ModelSpec
    items: list[tuple[Sample, Request]]
    limit: int | None
    seed: int


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    generated: int  # requests sent to the backend in this invocation
    reused: int  # requests already answered in the store
    errors: int  # requests left without an answer
    summaries: list[MetricSummary]


def plan_run(suite_name: str, model: str, limit: int | None = None, seed: int = 0) -> RunPlan:
    """Validate everything and build every request. Writes nothing."""
    spec = parse_model_spec(model)
    suite = load_suite(suite_name)
    items = build_requests(suite, spec.identity, limit, seed)
    identity = json.dumps([spec.identity, suite.hash, limit, seed])
    run_id = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return RunPlan(run_id, suite, spec, items, limit, seed)


def execute(store: Store, plan: RunPlan, backend_factory: Callable[[], Backend],
            progress: Progress | None = None) -> RunOutcome:
    now = utc_now()
    store.upsert_run(RunRecord(
        plan.run_id, plan.model.identity, plan.suite.name, plan.suite.hash, "running",
        plan.limit, plan.seed, len(plan.items),
        build_manifest(plan.suite, plan.model.identity, plan.limit, plan.seed), now, now,
    ))
    store.add_run_samples(plan.run_id, plan.items)
    unique = {r.key: r for _, r in plan.items}
    done = store.completed_keys(unique)
    pending = [k for k in unique if k not in done]
    generated = 0
    if pending:
        backend = backend_factory()
        try:
            generated = generate_missing(store, plan.run_id, backend, list(unique.values()), done,
                                  progress)
        except KeyboardInterrupt:
            store.set_run_status(plan.run_id, "interrupted")
            raise
        except BaseException:
            store.set_run_status(plan.run_id, "failed")
            raise
        finally:
            backend.close()
            if progress is not None:
                progress.close()
    try:
        summaries = score_run(store, plan.run_id)
    except BaseException:
        store.set_run_status(plan.run_id, "failed")
        raise
    errors = len(store.latest_errors(plan.run_id))
    store.set_run_status(plan.run_id, "completed" if not errors else "completed_with_errors")
    return RunOutcome(plan.run_id, generated, len(done), errors, summaries)


def generate_missing(store: Store, run_id: str, backend: Backend, requests: list[Request],
                     done: set[str], progress: Progress | None) -> int:
    """Send every request not in ``done`` in fixed batches; store each batch whole."""
    # longest prompts first: similar lengths share a batch (less padding), and the
    # batch boundaries depend only on the run's requests, not on what is done
    ordered = sorted(requests, key=lambda r: (-len(json.dumps(r.to_dict())), r.key))
    batches = [ordered[i:i + backend.batch_size]
               for i in range(0, len(ordered), backend.batch_size)]
    if progress is not None:
        progress.start(len(ordered), len(done))
    trace_path = os.environ.get(TRACE_ENV)
    sent = 0
    for batch in batches:
        todo = [r for r in batch if r.key not in done]
        if not todo:
            continue
        if trace_path:
            with open(trace_path, "a", encoding="utf-8") as trace:
                trace.write("".join(r.key + "\n" for r in todo))
        completions = backend.run(todo)
        store.save_completions(run_id, backend.model_id, list(zip(
            (r.key for r in todo), completions, strict=True)))
        sent += len(todo)
        if progress is not None:
            progress.advance(len(todo), sum(_tokens(c) for c in completions))
    return sent


def _tokens(completion: Completion) -> int:
    return completion.output_tokens + sum(completion.continuation_tokens)


def score_run(store: Store, run_id: str) -> list[MetricSummary]:
    """(Re)score a run from the database alone, and store scores and aggregates."""
    run = store.get_run(run_id)
    config = SuiteConfig.model_validate(run.manifest["suite"]["config"])
    samples = store.run_samples(run_id)
    answers = store.completions(s.request_key for s in samples)
    rows, summaries = score_samples(config, [(s.sample, answers.get(s.request_key))
                                             for s in samples], seed=run.seed)
    store.replace_scores(run_id, rows, summaries)
    return summaries


def score_samples(config: SuiteConfig, scored: Sequence[tuple[Sample, Completion | None]],
                  seed: int = 0) -> tuple[list[ScoreRow], list[MetricSummary]]:
    """Per-sample scores and their means with 95% CIs; unanswered samples counted apart."""
    extraction: Extraction = config.extract
    rows: list[ScoreRow] = []
    summaries: list[MetricSummary] = []
    missing = sum(1 for _, c in scored if c is None)
    answered = [(s, c) for s, c in scored if c is not None]
    for name in config.metrics:
        metric = METRICS[name]
        if isinstance(metric, BatchMetric):
            results = metric.score_batch(answered, extraction)
        else:
            results = [metric(sample, completion, extraction) for sample, completion in answered]
        rows.extend(ScoreRow(sample.id, name, result.value, result.extracted)
                    for (sample, _), result in zip(answered, results, strict=True))
        if isinstance(metric, AggregateMetric):
            mean, low, high = metric.aggregate(results, seed)
        else:
            mean, low, high = bootstrap_mean_ci([r.value for r in results], seed=seed)
        summaries.append(MetricSummary(name, mean, low, high, len(results), missing))
    return rows, summaries
