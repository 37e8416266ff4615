"""Runs a suite against a model: plan (pure), execute (resumable), score.

A run's id is a hash of the model identity, the resolved suite, the limit and
the seed, so running the same command again finds the same run and only
generates what is missing. Requests are cut into fixed batches over the whole
run and each batch's answers are stored in one transaction: after a crash a
batch is either fully stored or fully redone, and the redone batch has exactly
the composition it would have had, so a resumed run gives identical results.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from harness.backends import ModelSpec, parse_model_spec
from harness.backends.base import Backend
from harness.errors import InputError
from harness.manifest import build_manifest, code_isolation
from harness.metrics import METRICS, AggregateMetric, BatchMetric, Extraction
from harness.stats.bootstrap import bootstrap_mean_ci
from harness.stats.efficiency import InvocationMeter
from harness.stats.slices import (
    Aggregate,
    cluster_labels,
    item_groups,
    summarize_slices,
)
from harness.store import RunRecord, ScoreRow, Store, utc_now
from harness.suites.config import Suite, SuiteConfig, load_suite
from harness.suites.data import keeps
from harness.suites.perturbed import derive
from harness.suites.requests import build_requests
from harness.suites.robustness_block import Perturbation
from harness.suites.turns import effective_stats, next_turn, split_turn_id, turn_count
from harness.types import Completion, MetricSummary, Request, Sample, SliceSummary

GC_YOUNG_THRESHOLD = 5000  # allocations between young collections while generating
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
    excluded: tuple[str, ...] = ()  # sample ids left out (flagged as contaminated)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    generated: int  # requests sent to the backend in this invocation
    reused: int  # requests already answered in the store
    errors: int  # requests left without an answer
    summaries: list[MetricSummary]


def plan_run(suite_name: str, model: str, limit: int | None = None, seed: int = 0,
             max_tokens: int | None = None, where: dict[str, list[str]] | None = None,
             perturbation: Perturbation | None = None, exclude: frozenset[str] = frozenset()
             ) -> RunPlan:
    """Validate everything and build every request. Writes nothing.

    ``max_tokens`` overrides the suite's generation limit and ``where`` keeps
    only items whose field has one of the listed values (before ``limit``).
    Both become part of the resolved suite: a different run id, recorded in
    the manifest. ``perturbation`` runs the derived suite (docs/beyond_accuracy.md)
    made from that resolved suite: the same items, shown perturbed. ``exclude`` leaves
    out these sample ids (items a contamination check flagged): another run, whose
    answers are the stored ones."""
    spec = parse_model_spec(model)
    suite = restrict(load_suite(suite_name), where or {}, max_tokens)
    if perturbation is not None:
        suite = derive(suite, perturbation)
    items = build_requests(suite, spec.identity, limit, seed)
    if exclude:
        items = [(sample, request) for sample, request in items if sample.id not in exclude]
        if not items:
            raise InputError("--exclude-flagged", None, "every item of the run is flagged")
    code_isolation(suite)  # strict sandbox policy: refused here, before any write
    identity = json.dumps([spec.identity, suite.hash, limit, seed]
                          + ([sorted(exclude)] if exclude else []))
    run_id = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return RunPlan(run_id, suite, spec, items, limit, seed, tuple(sorted(exclude)))


def restrict(suite: Suite, where: dict[str, list[str]], max_tokens: int | None) -> Suite:
    """The suite with command-line overrides applied to its config and rows."""
    config = suite.config
    if max_tokens is not None:
        config = config.model_copy(update={
            "generation": config.generation.model_copy(update={"max_tokens": max_tokens})})
    rows = suite.rows
    if where:
        fields = set().union(*(row.keys() for row in suite.rows))
        for name in where:
            if name not in fields:
                raise InputError("--where", name, "the suite's data has no such field "
                                 f"(fields: {', '.join(sorted(fields))})")
        data = config.data.model_copy(update={"include": {**config.data.include, **where}})
        config = config.model_copy(update={"data": data})
        rows = [row for row in rows if keeps(data, row)]
        if not rows:
            raise InputError("--where", None, "no item of the suite matches")
    return replace(suite, config=config, rows=rows)


def execute(store: Store, plan: RunPlan, backend_factory: Callable[[], Backend],
            progress: Progress | None = None) -> RunOutcome:
    """Generate what the store lacks, then score. A conversation goes turn by turn: each
    turn's requests are built from the stored answers to the turn before."""
    now = utc_now()
    config = plan.suite.config
    turns = turn_count(config)
    manifest = build_manifest(plan.suite, plan.model.identity, plan.limit, plan.seed,
                              local_model=plan.model.scheme != "openai")
    if plan.excluded:
        manifest["excluded"] = list(plan.excluded)
    store.upsert_run(RunRecord(
        plan.run_id, plan.model.identity, plan.suite.name, plan.suite.hash, "running",
        plan.limit, plan.seed, len(plan.items) * turns, manifest, now, now,
    ))
    order = {split_turn_id(s.id)[0] if turns > 1 else s.id: i
             for i, (s, _) in enumerate(plan.items)}
    loader = _LazyBackend(backend_factory)
    generated = reused = 0
    items = plan.items
    try:
        for turn in range(1, turns + 1):
            positions = [order[split_turn_id(s.id)[0]] * turns + turn - 1 if turns > 1 else
                         order[s.id] for s, _ in items]
            store.add_run_samples(plan.run_id, items, positions)
            unique = {r.key: r for _, r in items}
            done = store.completed_keys(unique)
            reused += len(done)
            if len(done) < len(unique):
                generated += generate_missing(store, plan.run_id, loader.get(),
                                              list(unique.values()), done, progress)
            if turn < turns:
                answers = store.completions(unique)
                items = next_turn(config, str(plan.suite.file), items,
                                  {s.id: answers[r.key].texts[0] for s, r in items
                                   if r.key in answers and answers[r.key].texts})
    except KeyboardInterrupt:
        store.set_run_status(plan.run_id, "interrupted")
        raise
    except BaseException:
        store.set_run_status(plan.run_id, "failed")
        raise
    finally:
        loader.close()
        if progress is not None and loader.used:
            progress.close()
    loader.record(store, plan.run_id)
    try:
        summaries = score_run(store, plan.run_id)
    except BaseException:
        store.set_run_status(plan.run_id, "failed")
        raise
    errors = len(store.latest_errors(plan.run_id))
    store.set_run_status(plan.run_id, "completed" if not errors else "completed_with_errors")
    return RunOutcome(plan.run_id, generated, reused, errors, summaries)


class _LazyBackend:
    """The backend, loaded the first time a request is missing (a run with nothing
    pending never loads the model), with this invocation's efficiency meter."""

    def __init__(self, factory: Callable[[], Backend]) -> None:
        self.factory = factory
        self.backend: Backend | None = None
        self.meter: InvocationMeter | None = None

    @property
    def used(self) -> bool:
        return self.backend is not None

    def get(self) -> Backend:
        if self.backend is None:
            self.meter = InvocationMeter()  # this invocation's KPIs (stats/efficiency.py)
            self.backend = self.factory()
            self.meter.loaded()
        return self.backend

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()

    def record(self, store: Store, run_id: str) -> None:
        if self.backend is not None and self.meter is not None:
            store.record_invocation(run_id, self.meter.finish(self.backend.model_id))


def generate_missing(store: Store, run_id: str, backend: Backend, requests: list[Request],
                     done: set[str], progress: Progress | None) -> int:
    """Send every request not in ``done`` in fixed batches; store each batch whole
    (or, for a backend that streams, each chunk it yields as it yields it)."""
    # longest prompts first: similar lengths share a batch (less padding), and the
    # batch boundaries depend only on the run's requests, not on what is done
    ordered = sorted(requests, key=lambda r: (-len(json.dumps(r.to_dict())), r.key))
    batches = [ordered[i:i + backend.batch_size]
               for i in range(0, len(ordered), backend.batch_size)]
    if progress is not None:
        progress.start(len(ordered), len(done))
    trace_path = os.environ.get(TRACE_ENV)
    todos = [todo for batch in batches if (todo := [r for r in batch if r.key not in done])]

    def handed_over() -> Iterator[list[Request]]:  # traced when the backend takes a batch
        for todo in todos:
            if trace_path:
                with open(trace_path, "a", encoding="utf-8") as trace:
                    trace.write("".join(r.key + "\n" for r in todo))
            yield todo

    sent = 0
    # one chunk per batch, except for backends that stream answers (vLLM); each chunk
    # is one transaction, so a crash loses only what was in flight. Backends that work
    # ahead (HTTP, data parallel) already have the next batch in flight meanwhile.
    stream_of = backend.run_stream(handed_over())  # a generator: closing() stops its work
    with _generation_gc(), contextlib.closing(stream_of) as stream:  # type: ignore[type-var]
        for number, chunk in stream:
            todo = todos[number]
            store.save_completions(run_id, backend.model_id, [(todo[i].key, c) for i, c in chunk])
            sent += len(chunk)
            if progress is not None:
                progress.advance(len(chunk), sum(_tokens(c) for _, c in chunk))
    return sent


@contextlib.contextmanager
def _generation_gc() -> Iterator[None]:
    """Cheaper garbage collection while answers stream in, restored afterwards.

    What is alive when generation starts (modules, the suite, the plan: ~300k objects)
    is frozen out of the collector: generation allocates short-lived objects, yet every
    few thousand answers a full collection walked all of those, stalling a fast HTTP
    backend's event loop 0.2-0.3 s at a time. And the youngest generation is collected
    every ``GC_YOUNG_THRESHOLD`` allocations rather than 700: each collection re-walks
    the requests in flight, which cost ~5% of a client's CPU against a fast server
    (benchmarks/http_saturation.py). Objects frozen by someone else stay theirs."""
    threshold = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    if threshold[0]:  # 0: collection is off, and stays off
        gc.set_threshold(max(threshold[0], GC_YOUNG_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if freeze:
            gc.unfreeze()


def _tokens(completion: Completion) -> int:
    return completion.output_tokens + sum(completion.continuation_tokens)


def score_run(store: Store, run_id: str) -> list[MetricSummary]:
    """(Re)score a run from the database alone, and store scores and aggregates."""
    run = store.get_run(run_id)
    config = SuiteConfig.model_validate(run.manifest["suite"]["config"])
    samples = store.run_samples(run_id)
    answers = store.completions(s.request_key for s in samples)
    scoring = score_all(config, [(s.sample, answers.get(s.request_key)) for s in samples],
                        seed=run.seed)
    store.replace_scores(run_id, scoring.rows, scoring.summaries, scoring.slices)
    return scoring.summaries


@dataclass(frozen=True)
class Scoring:
    """Everything scoring a run produces: per-sample rows, run and per-slice aggregates."""

    rows: list[ScoreRow]
    summaries: list[MetricSummary]
    slices: list[SliceSummary]


def score_all(config: SuiteConfig, scored: Sequence[tuple[Sample, Completion | None]],
              seed: int = 0) -> Scoring:
    """Per-sample scores, their means with 95% CIs (unanswered samples counted apart)
    and the breakdowns the suite's ``stats:`` block asks for; CIs resample whole
    clusters when it names a cluster field (docs/statistics.md)."""
    extraction: Extraction = config.extract
    stats = effective_stats(config)  # a conversation's metrics are also given per turn
    rows: list[ScoreRow] = []
    summaries: list[MetricSummary] = []
    slices: list[SliceSummary] = []
    missing = sum(1 for _, c in scored if c is None)
    answered = [(s, c) for s, c in scored if c is not None]
    clusters = cluster_labels(stats, [s for s, _ in answered])
    groups = [item_groups(stats, s, c) for s, c in answered]
    missing_groups = [item_groups(stats, s, None) for s, c in scored if c is None]
    for name in config.metrics:
        metric = METRICS[name]
        if isinstance(metric, BatchMetric):
            results = metric.score_batch(answered, extraction)
        else:
            results = [metric(sample, completion, extraction) for sample, completion in answered]
        rows.extend(ScoreRow(sample.id, name, result.value, result.extracted)
                    for (sample, _), result in zip(answered, results, strict=True))
        aggregate = _aggregator(metric, seed)
        mean, low, high = aggregate(results, clusters)
        summaries.append(MetricSummary(name, mean, low, high, len(results), missing))
        slices.extend(summarize_slices(name, results, groups, missing_groups, clusters,
                                       aggregate))
    return Scoring(rows, summaries, slices)


def _aggregator(metric: object, seed: int) -> Aggregate:
    """A metric's run-level number and CI from per-sample results (and cluster labels).

    An AggregateMetric computes its own interval; clustering is not applied to it."""
    if isinstance(metric, AggregateMetric):
        return lambda results, _clusters: metric.aggregate(results, seed)
    return lambda results, clusters: bootstrap_mean_ci([r.value for r in results], seed=seed,
                                                       clusters=clusters)
