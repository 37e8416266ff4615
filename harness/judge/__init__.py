"""LLM-as-judge: single grading and pairwise comparison by any backend.

Two layers (docs/architecture.md). Below the runner, what a judgment asks and
how its answer reads: ``prompts`` (templates), ``parse`` (strict verdicts),
``verdicts`` (order policy and juries) and ``likelihood`` (verdicts read from
probabilities); a suite's ``judge:`` block (``harness.suites.judge_block``)
validates against them. Above the runner, the stage that drives it: ``plan``
(contestants, judge ids, every judge request), ``grade`` (send, retry once,
store judgments, scores and battles), ``report`` (bias and agreement) and
``imports`` (other systems' answers as runs). docs/judge.md explains the stage.

Kept import-light, so that the suite loader can import ``prompts`` alone.
"""
