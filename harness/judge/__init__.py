"""LLM-as-judge: single grading and pairwise comparison by any backend.

``prompts`` (templates), ``parse`` (strict verdicts), ``grade`` (requests in
both orders, retries, policies, juries), ``report`` (bias and agreement) and
``imports`` (other systems' answers as runs). docs/judge.md explains the stage.
Kept import-light: the suite loader imports ``config`` from here.
"""
