"""Do ``hf:``, ``vllm:`` and ``vllm-serve:`` give the same answers? One table per dtype.

The same suites, the same items, the embedded model (or ``--model DIR``) through the
transformers backend, the in-process vLLM engine and vLLM's OpenAI server managed by
evalarena, in one run on this machine. For multiple-choice suites: each backend's
accuracy and the share of items where it picks the same answer as ``hf:``; for
generation suites: the metric and the share of items with identical greedy texts.

Each backend is loaded once (``SharedBackend``) and runs every suite; answers go to a
fresh database under ``--out`` (kept, so ``evalarena runs --db`` shows the runs).

    .venv/bin/python benchmarks/vllm_agreement.py                       # float32 and bfloat16
    .venv/bin/python benchmarks/vllm_agreement.py --dtype bfloat16 --mmlu-limit 114
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from harness.backends import load_backend
from harness.backends.base import SharedBackend
from harness.runner import RunPlan, execute, plan_run
from harness.store import Store
from harness.types import Completion

OPTIONS = "enforce_eager=true&max_model_len=4096"


def suites(args: argparse.Namespace) -> list[tuple[str, int | None]]:
    return [("smoke", None), ("smoke-mc", None), ("hellaswag", None),
            ("mmlu", args.mmlu_limit), ("gsm8k-0shot", args.gsm8k_limit)]


def specs(model: str, dtype: str) -> dict[str, str]:
    hf = f"{model}?dtype={dtype}" if model == "smollm2-135m" else f"hf:{model}?dtype={dtype}"
    return {"hf:": hf, "vllm:": f"vllm:{model}?dtype={dtype}&{OPTIONS}",
            "vllm-serve:": f"vllm-serve:{model}?dtype={dtype}&{OPTIONS}"}


def run_backend(store: Store, spec: str, todo: list[tuple[str, int | None]]
                ) -> dict[str, tuple[RunPlan, dict[str, Completion], float | None]]:
    """Every suite on one loaded backend: plan, answers by key, headline metric."""
    shared = SharedBackend(lambda: load_backend(spec))
    results = {}
    try:
        for suite, limit in todo:
            plan = plan_run(suite, spec, limit=limit)
            outcome = execute(store, plan, lambda: shared)
            assert outcome.errors == 0, store.latest_errors(plan.run_id)
            answers = store.completions(r.key for _, r in plan.items)
            headline = outcome.summaries[0].value if outcome.summaries else None
            results[suite] = (plan, answers, headline)
    finally:
        shared.close_shared()
    return results


def _pick(c: Completion) -> int:
    return max(range(len(c.loglikelihoods)), key=c.loglikelihoods.__getitem__)


def same_share(ref: tuple[RunPlan, dict[str, Completion], float | None],
               other: tuple[RunPlan, dict[str, Completion], float | None]) -> tuple[int, int]:
    """Items whose answer (pick, or greedy text) equals the reference's."""
    (ref_plan, ref_answers, _), (plan, answers, _) = ref, other
    same = total = 0
    for (_, a), (_, b) in zip(ref_plan.items, plan.items, strict=True):
        x, y = ref_answers[a.key], answers[b.key]
        total += 1
        same += (_pick(x) == _pick(y)) if x.loglikelihoods else (x.texts == y.texts)
    return same, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m",
                        help="model directory (default: the embedded model)")
    parser.add_argument("--dtype", nargs="*", default=["float32", "bfloat16"])
    parser.add_argument("--mmlu-limit", type=int, default=57)
    parser.add_argument("--gsm8k-limit", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="evalarena-vllm-agree-"))
    out.mkdir(parents=True, exist_ok=True)
    todo = suites(args)
    tables = []
    for dtype in args.dtype:
        with Store(out / f"agree-{dtype}.db") as store:
            results = {}
            for name, spec in specs(args.model, dtype).items():
                started = time.perf_counter()
                results[name] = run_backend(store, spec, todo)
                print(f"{dtype} {name:12s} all suites in {time.perf_counter() - started:.0f} s",
                      flush=True)
        lines = [f"\n{dtype}: suite (items) | " + " | ".join(
                     f"{n} metric" for n in results) + " | same as hf: (vllm: / vllm-serve:)"]
        for suite, _ in todo:
            metrics = " | ".join(f"{results[n][suite][2]:.4f}" for n in results)
            agree = " / ".join("{}/{}".format(*same_share(results["hf:"][suite], results[n][suite]))
                               for n in ("vllm:", "vllm-serve:"))
            n_items = len(results["hf:"][suite][0].items)
            lines.append(f"{suite} ({n_items}) | {metrics} | {agree}")
        tables.append("\n".join(lines))
        print(tables[-1], flush=True)
    print(f"\ndatabases in {out}")


if __name__ == "__main__":
    main()
