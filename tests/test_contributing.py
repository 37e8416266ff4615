"""docs/contributing.md's recipes, followed end to end, so that they cannot rot.

"Add a metric" and "Add a backend" are done here exactly as the guide says (a
class, one registration), then used the way a user would: a suite file names the
metric, a model spec names the backend, the runner stores and scores a real run
in a real SQLite file, and `compare` reads the metric's direction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from harness.backends import BACKENDS, ModelSpec, load_backend, parse_model_spec
from harness.backends.base import Backend
from harness.backends.spec import register_backend
from harness.compare import compare_runs
from harness.errors import ModelSpecError
from harness.metrics import METRICS, Extraction, MetricValue, register_metric
from harness.runner import execute, plan_run
from harness.store import Store
from harness.types import Completion, Request, Sample

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "contributing.md"
SUITE = """
name: recipe
license: Apache-2.0 (written for this test)
kind: generate
data: {path: recipe.jsonl}
prompt: {user: "Say {{ word }}."}
target: "{{ word }}"
generation: {max_tokens: 8}
metrics: [exact_match, answer_length]
"""


# -- "Add a metric": a frozen dataclass following harness.metrics.base.Metric ------
@dataclass(frozen=True)
class AnswerLength:
    """Characters in the answer: shorter is better (e.g. a verbosity budget)."""

    name: str = "answer_length"
    kind: Literal["generate", "multiple_choice"] = "generate"
    higher_is_better: bool = False

    def __call__(self, sample: Sample, completion: Completion,
                 extraction: Extraction) -> MetricValue:
        answer = extraction.read(completion.texts[0]) or ""
        return MetricValue(float(len(answer)), answer)


# -- "Add a backend": a Backend subclass and one registration --------------------
class EchoBackend(Backend):
    """Answers with the prompt's last word, repeated ``repeat`` times."""

    def __init__(self, spec: ModelSpec) -> None:
        self.model_id = spec.identity
        self.repeat = spec.int_option("repeat", 1)
        self.batch_size = spec.int_option("batch_size", 4)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        words = [(r.messages[-1].content if r.messages else r.prompt or "").split()[-1]
                 .rstrip(".") for r in requests]
        return [Completion(texts=(" ".join([w] * self.repeat),), finish_reasons=("stop",))
                for w in words]

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        raise NotImplementedError("echo: generation only")


@pytest.fixture
def registered() -> Iterator[None]:
    register_metric(AnswerLength())
    register_backend("echo", takes_path=False, identity_options=("repeat",),
                     speed_options=("batch_size",))(EchoBackend)
    try:
        yield
    finally:  # the registries are process-wide: leave them as they were
        del METRICS["answer_length"], BACKENDS["echo"]


def test_the_guide_names_the_files_the_recipes_use() -> None:
    guide = GUIDE.read_text()
    for recipe in ("Add a suite", "Add a metric", "Add a backend", "Add a command"):
        assert f"## {recipe}" in guide
    for path in ("harness/metrics/base.py", "harness/backends/schemes.py",
                 "harness/cli/__init__.py", "tasks/", "tests/test_contributing.py",
                 "tests/runner/test_run_ids.py", "tests/backends/test_registry.py"):
        assert path in guide and (GUIDE.parent.parent / path).exists(), path


def test_metric_and_backend_recipes_end_to_end(registered: None, tmp_path: Path) -> None:
    words = ["cat", "ox", "emu", "yak", "gnu", "eel", "owl", "bee", "ant", "elk", "hen", "cod"]
    (tmp_path / "recipe.jsonl").write_text("".join(
        f'{{"id": "w{i}", "word": "{w}"}}\n' for i, w in enumerate(words)))
    (tmp_path / "recipe.yaml").write_text(SUITE)

    once = parse_model_spec("echo:words?repeat=1&batch_size=2")
    assert once.identity == "echo:words?repeat=1"  # batch_size is speed only
    with pytest.raises(ModelSpecError, match="unknown option 'repeats'"):
        parse_model_spec("echo:words?repeats=2")

    with Store(tmp_path / "r.db") as store:
        runs = []
        for spec in ("echo:words?repeat=1&batch_size=2", "echo:words?repeat=3"):
            plan = plan_run(str(tmp_path / "recipe.yaml"), spec)
            outcome = execute(store, plan, lambda plan=plan: load_backend(plan.model))
            assert (outcome.generated, outcome.errors) == (12, 0)
            runs.append(outcome)
        scores = {s.metric: s.value for s in runs[0].summaries}
        assert scores == {"exact_match": 1.0, "answer_length": pytest.approx((2 + 11 * 3) / 12)}
        longer = {s.metric: s.value for s in runs[1].summaries}
        assert longer == {"exact_match": 0.0, "answer_length": pytest.approx((8 + 11 * 11) / 12)}
        compared = compare_runs(store, runs[0].run_id, runs[1].run_id)
    by_metric = {r.metric: r for r in compared.results}
    assert by_metric.keys() == {"exact_match", "answer_length"}
    # B's answers are longer (diff > 0) and that is worse: the metric says lower is better
    assert by_metric["answer_length"].diff > 0 and by_metric["answer_length"].verdict == "worse"
    assert by_metric["exact_match"].diff < 0 and by_metric["exact_match"].verdict == "worse"
