"""What evalarena costs on top of the model: a full run vs. bare backend calls.

Both paths send the same requests, in the same batches, to the same loaded
model in one process:

(a) evalarena: ``plan_run`` + ``execute`` into a fresh temporary database, so
    planning, storing every batch, scoring and the bootstrap are all counted;
(b) bare: ``backend.generate`` (or ``loglikelihood``) on the same Request
    objects, batched exactly as the runner batches them (same order, same
    ``batch_size``, hence the same padding and the same compute).

A warm-up call runs first, and the order of the two paths alternates between
rounds, so neither gets a warmer cache or a quieter machine for free. The
best round of each path is compared (the least disturbed by other load).

On a shared machine the A/B ratio is only as good as the load is steady, so
each evalarena run also times the backend calls made inside it: model time
over the run's wall time is the same ratio measured within one run, immune to
load that changes between runs.

    .venv/bin/python benchmarks/overhead.py                 # 48 smoke prompts
    .venv/bin/python benchmarks/overhead.py --suite gsm8k --n 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from harness.backends import load_backend
from harness.backends.base import Backend
from harness.runner import RunPlan, execute, plan_run
from harness.store import Store
from harness.suites.config import find_suite_file, load_suite
from harness.suites.data import resolve_path
from harness.types import Completion, Request, RequestKind

MODEL = "smollm2-135m"


class Shared(Backend):
    """The one loaded model, lent to each evalarena run. The runner closes its
    backend after a run; closing this must not unload the model both paths use.
    Also adds up the time spent inside the model (``busy_s``)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.batch_size = inner.batch_size
        self.busy_s = 0.0

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        started = time.perf_counter()
        try:
            return self.inner.generate(requests)
        finally:
            self.busy_s += time.perf_counter() - started

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        started = time.perf_counter()
        try:
            return self.inner.loglikelihood(requests)
        finally:
            self.busy_s += time.perf_counter() - started

    def close(self) -> None:
        """Deliberately nothing: see the class docstring."""


@dataclass
class Timing:
    seconds: float
    requests: int
    tokens: int  # generated tokens (or scored continuation tokens)
    model_s: float = 0.0  # of ``seconds``, the time spent inside the backend


def suite_with_n_items(suite: str, n: int, workdir: Path) -> tuple[str, int | None]:
    """A suite argument and limit giving exactly ``n`` distinct items.

    With fewer rows than ``n`` the rows are tiled into a temporary copy of the
    suite under new ids (few-shot examples are drawn per id, so the copies get
    different prompts); otherwise a seeded ``--limit`` subset is used.
    """
    loaded = load_suite(suite)
    if n <= len(loaded.rows):
        return suite, (n if n < len(loaded.rows) else None)
    file = find_suite_file(suite)
    raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    copies = -(-n // len(loaded.rows))
    rows = [{**row, "_bench_id": f"{k}:{i}"} for k in range(copies)
            for i, row in enumerate(loaded.rows)][:n]
    data = workdir / "rows.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    raw["data"] = {"path": str(data), "id_field": "_bench_id"}
    fewshot = loaded.config.fewshot
    if fewshot is not None and fewshot.data is not None:
        raw["fewshot"]["data"] = {"path": str(resolve_path(fewshot.data, file, "fewshot.data"))}
    tiled = workdir / f"{loaded.name}-x{copies}.yaml"
    tiled.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return str(tiled), None


def runner_order(plan: RunPlan, batch_size: int) -> list[list[Request]]:
    """The runner's batches: unique requests, longest first (see runner._generate)."""
    unique = {r.key: r for _, r in plan.items}
    ordered = sorted(unique.values(), key=lambda r: (-len(json.dumps(r.to_dict())), r.key))
    return [ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]


def tokens_of(completions: Sequence[Completion]) -> int:
    return sum(c.output_tokens + sum(c.continuation_tokens) for c in completions)


def run_evalarena(suite: str, limit: int | None, backend: Backend) -> tuple[Timing, dict]:
    """A whole run into a fresh database, from planning to stored scores."""
    with tempfile.TemporaryDirectory(prefix="evalarena-bench-") as tmp:
        shared = Shared(backend)
        started = time.perf_counter()
        plan = plan_run(suite, MODEL, limit)
        with Store(Path(tmp) / "bench.db") as store:
            outcome = execute(store, plan, lambda: shared)
            seconds = time.perf_counter() - started
            answers = store.completions(r.key for _, r in plan.items)
    if outcome.errors:
        raise SystemExit(f"evalarena run had {outcome.errors} errors; nothing to compare")
    texts = {k: c.texts or c.loglikelihoods for k, c in answers.items()}
    timing = Timing(seconds, outcome.generated, tokens_of(list(answers.values())),
                    shared.busy_s)
    return timing, texts


def run_bare(batches: list[list[Request]], backend: Backend) -> tuple[Timing, dict]:
    """The same batches straight into the backend: the floor evalarena is measured against."""
    started = time.perf_counter()
    results: list[tuple[Request, Completion]] = []
    for batch in batches:
        call = backend.generate if batch[0].kind is RequestKind.GENERATE \
            else backend.loglikelihood
        results += zip(batch, call(batch), strict=True)
    seconds = time.perf_counter() - started
    texts = {r.key: c.texts or c.loglikelihoods for r, c in results}
    return Timing(seconds, len(results), tokens_of([c for _, c in results]), seconds), texts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="smoke", help="suite name or YAML path (smoke)")
    parser.add_argument("--n", type=int, default=48, help="prompts per pass (48)")
    parser.add_argument("--rounds", type=int, default=2, help="timed passes per path (2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 keeps timings "
                        "steady on a machine other jobs share, where threads that wait "
                        "for each other at every op turn any load into long stalls")
    parser.add_argument("--min-ratio", type=float, default=None,
                        help="exit 1 when evalarena/bare throughput is below this")
    args = parser.parse_args(argv)
    if args.n < 1 or args.rounds < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--n, --rounds and --threads must be >= 1")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="evalarena-bench-suite-") as workdir:
        suite, limit = suite_with_n_items(args.suite, args.n, Path(workdir))
        started = time.perf_counter()
        backend = load_backend(MODEL)
        print(f"model {MODEL} loaded in {time.perf_counter() - started:.1f} s; "
              f"torch threads {_torch_threads()}")
        plan = plan_run(suite, MODEL, limit)
        batches = runner_order(plan, backend.batch_size)
        unique = sum(len(b) for b in batches)
        print(f"suite {args.suite}: {len(plan.items)} items, {unique} unique requests, "
              f"{len(batches)} batches of up to {backend.batch_size}")
        if unique < len(plan.items):
            print("note: some items share a request; both paths send each request once")

        run_bare(batches[:1], backend)  # warm-up: first-call allocations, kernels, caches
        timings: dict[str, list[Timing]] = {"evalarena": [], "bare": []}
        answers: dict[str, dict] = {}
        for round_no in range(args.rounds):
            order = ("evalarena", "bare") if round_no % 2 == 0 else ("bare", "evalarena")
            for path in order:
                timing, texts = run_evalarena(suite, limit, backend) if path == "evalarena" \
                    else run_bare(batches, backend)
                timings[path].append(timing)
                answers.setdefault(path, texts)
                inside = f", {timing.model_s:.2f} s in the model" if path == "evalarena" else ""
                print(f"round {round_no + 1} {path:>9}: {timing.seconds:7.2f} s "
                      f"({timing.requests} requests, {timing.tokens} tokens{inside})",
                      flush=True)

    identical = answers["evalarena"] == answers["bare"]
    best = {path: min(ts, key=lambda t: t.seconds) for path, ts in timings.items()}
    print()
    for path, t in best.items():
        mean = statistics.fmean(x.seconds for x in timings[path])
        print(f"{path:>9}: {t.requests / t.seconds:6.2f} requests/s  "
              f"{t.tokens / t.seconds:7.1f} tokens/s  (best {t.seconds:.2f} s, "
              f"mean {mean:.2f} s over {len(timings[path])})")
    ratio = (best["evalarena"].requests / best["evalarena"].seconds) / (
        best["bare"].requests / best["bare"].seconds)
    runs = timings["evalarena"]
    within = sum(t.model_s for t in runs) / sum(t.seconds for t in runs)
    overhead = statistics.fmean(t.seconds - t.model_s for t in runs)
    print(f"ratio evalarena/bare: {ratio:.3f} A/B, best rounds (target >= 0.9)")
    print(f"ratio within evalarena runs (model time / wall time): {within:.3f}; "
          f"evalarena's own time {overhead:.2f} s per run "
          f"({1000 * overhead / runs[0].requests:.1f} ms per request)")
    print(f"answers identical on both paths: {'yes' if identical else 'NO'}")
    if not identical:
        return 1
    if args.min_ratio is not None and ratio < args.min_ratio:
        return 1
    return 0


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


if __name__ == "__main__":
    sys.exit(main())
