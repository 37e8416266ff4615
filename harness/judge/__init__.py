"""LLM-as-judge: single grading and pairwise comparison by any backend.

``config`` (the suite's ``judge:`` block), ``prompts`` (templates), ``parse``
(strict verdicts), ``plan`` (contestants, judge ids, every judge request),
``grade`` (send, retry once, store judgments, scores and battles),
``verdicts`` (order policy and juries), ``report`` (bias and agreement) and
``imports`` (other systems' answers as runs). docs/judge.md explains the stage.
Kept import-light: the suite loader imports ``config`` from here.
"""
