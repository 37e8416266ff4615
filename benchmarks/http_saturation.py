"""Can evalarena keep an OpenAI-compatible server saturated? Client-side throughput
against a bare asyncio load generator and against lm_eval, on the same server.

The server is a stub (``--stub-server``, started here in its own process): a
raw asyncio HTTP/1.1 server with keep-alive that answers every chat completion
at once with the same 16-word completion. It is a legitimate load target for
this question because it does almost nothing: whatever limits requests per
second is the client (a real model server would hide client overhead behind its
own latency; ``--latency-ms`` adds such a latency to show the other regime,
where the question is only whether enough requests are in flight).

The same N chat prompts, the same concurrency, the same server, in one run:

(a) evalarena: ``plan_run`` + ``execute`` of a generated suite with
    ``openai:<stub>@stub?concurrency=C``; timed from the runner's first batch to
    its last stored answer (batching, HTTP, parsing, SQLite transactions
    included; planning and scoring not);
(b) bare: one asyncio loop, a semaphore of C, the same JSON bodies posted with
    ``aiohttp`` (the fastest common asyncio HTTP client; lm_eval uses it too) and,
    as a second reference, with the ``openai`` SDK over aiohttp; replies parsed,
    nothing stored. Each round runs in a fresh interpreter of its own (warmed up
    with 200 requests first), as a standalone load generator would: in this
    process it would share evalarena's heap, and its garbage collections, which
    slowed it by up to a third in some rounds;
(c) lm_eval 0.4.13 ``local-chat-completions`` with ``num_concurrent=C``,
    ``generate_until`` on the same prompts, in ``.venv-lmeval`` (no tokenizer,
    nothing from a hub).

Rounds alternate the paths; each path's best round counts (least disturbed by
other load on a shared machine), and the ratio of medians is printed too.
Prints req/s per path and the ratios; the target is evalarena / bare aiohttp
>= 0.95.

    .venv/bin/python benchmarks/http_saturation.py
    .venv/bin/python benchmarks/http_saturation.py --n 3000 --concurrency 64 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

REPO = Path(__file__).resolve().parent.parent
LMEVAL_PYTHON = REPO / ".venv-lmeval" / "bin" / "python"
WORDS = 16
MAX_TOKENS = 16
SYSTEM = "Answer briefly."


# -- the stub server ---------------------------------------------------------------------------


def _reply_bytes() -> bytes:
    body = json.dumps({
        "id": "stub", "object": "chat.completion", "created": 0, "model": "stub",
        "choices": [{"index": 0, "finish_reason": "length",
                     "message": {"role": "assistant", "content": " ".join(["word"] * WORDS)}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": WORDS, "total_tokens": 12 + WORDS},
    }).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


class _StubProtocol(asyncio.Protocol):
    """Parses just enough HTTP/1.1 (headers, Content-Length) to answer each request."""

    reply = _reply_bytes()
    latency = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            if self.latency:
                asyncio.get_running_loop().call_later(self.latency, self._answer)
            else:
                self.transport.write(self.reply)

    def _answer(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(self.reply)


def serve_stub(port: int, latency_ms: float) -> None:
    _StubProtocol.latency = latency_ms / 1000

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(
            _StubProtocol, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def start_stub(latency_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, __file__, "--stub-server", str(port),
                                "--latency-ms", str(latency_ms)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the stub server did not start")


# -- the three clients -------------------------------------------------------------------------


def prompts(n: int, salt: str) -> list[str]:
    # salted per round: evalarena never re-sends a stored answer, so each round is new work
    return [f"Question {salt}-{i}: what is {i} plus {i % 7}?" for i in range(n)]


def payload(prompt: str) -> dict[str, Any]:
    """The body evalarena sends for this suite (the bare clients send the same)."""
    return {"model": "stub", "max_tokens": MAX_TOKENS, "temperature": 0.0, "top_p": 1.0, "n": 1,
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": prompt}]}


def run_evalarena(url: str, texts: list[str], concurrency: int, workdir: Path) -> float:
    from harness.backends import load_backend
    from harness.runner import execute, plan_run
    from harness.store import Store

    data = workdir / f"items-{len(list(workdir.iterdir()))}.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "q": t}) + "\n"
                            for i, t in enumerate(texts)))
    suite = data.with_suffix(".yaml")
    suite.write_text(
        f"name: saturation\nlicense: generated\nkind: generate\ndata:\n  path: {data.name}\n"
        f'  id_field: id\nprompt:\n  system: "{SYSTEM}"\n  user: "{{{{ q }}}}"\n'
        f'target: "x"\ngeneration:\n  max_tokens: {MAX_TOKENS}\nmetrics: [exact_match]\n')
    plan = plan_run(str(suite), f"openai:{url}@stub?concurrency={concurrency}&timeout=60")

    class Clock:  # the runner calls start() before its first batch, close() after its last
        def start(self, total: int, done: int) -> None:
            self.began = time.perf_counter()

        def advance(self, count: int, tokens: int) -> None:
            pass

        def close(self) -> None:
            self.ended = time.perf_counter()

    clock = Clock()
    with Store(workdir / "bench.db") as store:
        outcome = execute(store, plan, lambda: load_backend(plan.model), clock)
    assert outcome.generated == len(texts) and outcome.errors == 0, outcome
    return len(texts) / (clock.ended - clock.began)


async def _bare(url: str, texts: list[str], concurrency: int, sdk: bool) -> float:
    import aiohttp
    import openai

    gate = asyncio.Semaphore(concurrency)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0, http_client=(
        openai.DefaultAioHttpClient(limits=limits, timeout=60)))

    async def one(prompt: str) -> str:
        async with gate:
            if sdk:
                raw = await client.with_raw_response.chat.completions.create(**payload(prompt))
                data = json.loads(raw.text)
            else:
                async with session.post(f"{url}/chat/completions", json=payload(prompt),
                                        headers={"Authorization": "Bearer EMPTY"}) as answer:
                    answer.raise_for_status()
                    data = await answer.json()
            return str(data["choices"][0]["message"]["content"])

    start = time.perf_counter()
    answers = await asyncio.gather(*(one(t) for t in texts))
    elapsed = time.perf_counter() - start
    await session.close()
    await client.close()
    assert len(answers) == len(texts) and all(answers)
    return len(texts) / elapsed


def run_bare(url: str, texts: list[str], concurrency: int, sdk: bool) -> float:
    """(b) in a fresh interpreter (``--bare-client``), prompts on stdin."""
    command = [sys.executable, __file__, "--bare-client", url, "--concurrency", str(concurrency)]
    done = subprocess.run(command + (["--sdk"] if sdk else []), input=json.dumps(texts),
                          text=True, capture_output=True, timeout=900, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["rps"])


def bare_client(url: str, concurrency: int, sdk: bool) -> None:
    texts = json.load(sys.stdin)
    asyncio.run(_bare(url, prompts(200, f"warm-{os.getpid()}"), concurrency, sdk))
    print(json.dumps({"rps": asyncio.run(_bare(url, texts, concurrency, sdk))}))


LMEVAL_SCRIPT = r"""
import json, sys, time, logging
logging.disable(logging.WARNING)
from lm_eval.api.instance import Instance
from lm_eval.models.api_models import JsonChatStr
from lm_eval.models.openai_completions import LocalChatCompletion
url, concurrency, system, max_tokens = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
texts = json.load(sys.stdin)
lm = LocalChatCompletion(base_url=url + "/chat/completions", model="stub",
                         num_concurrent=concurrency, tokenizer_backend=None,
                         tokenized_requests=False, max_retries=1, timeout=60)
requests = [Instance("generate_until", {}, (JsonChatStr(json.dumps(
    [{"role": "system", "content": system}, {"role": "user", "content": t}])),
    {"max_gen_toks": max_tokens, "until": [], "do_sample": False}), i)
    for i, t in enumerate(texts)]
start = time.perf_counter()
answers = lm.generate_until(requests, disable_tqdm=True)
elapsed = time.perf_counter() - start
assert len(answers) == len(texts) and all(answers), answers[:3]
print(json.dumps({"rps": len(texts) / elapsed}))
"""


def run_lmeval(url: str, texts: list[str], concurrency: int) -> float | None:
    if not LMEVAL_PYTHON.exists():
        return None
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run([str(LMEVAL_PYTHON), "-c", LMEVAL_SCRIPT, url, str(concurrency),
                           SYSTEM, str(MAX_TOKENS)], input=json.dumps(texts), text=True,
                          capture_output=True, env=env, timeout=900, check=False)
    if done.returncode != 0:
        print(f"lm_eval failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    return float(json.loads(done.stdout.strip().splitlines()[-1])["rps"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="prompts per round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="stub server latency per request (0: answer at once)")
    parser.add_argument("--no-lmeval", action="store_true")
    parser.add_argument("--stub-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--bare-client", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--sdk", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stub_server:
        serve_stub(args.stub_server, args.latency_ms)
        return
    if args.bare_client:
        bare_client(args.bare_client, args.concurrency, args.sdk)
        return
    sys.path.insert(0, str(REPO))
    server, url = start_stub(args.latency_ms)
    rounds: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            asyncio.run(_bare(url, prompts(200, "warm"), args.concurrency, sdk=True))
            for r in range(args.rounds):
                paths = [
                    ("evalarena", lambda t: run_evalarena(url, t, args.concurrency, workdir)),
                    ("bare aiohttp", lambda t: run_bare(url, t, args.concurrency, False)),
                    ("bare openai SDK", lambda t: run_bare(url, t, args.concurrency, True)),
                ]
                if not args.no_lmeval:
                    paths.append(("lm_eval", lambda t: run_lmeval(url, t, args.concurrency)))
                for name, path in paths if r % 2 == 0 else reversed(paths):
                    rps = path(prompts(args.n, f"{name}-{r}"))
                    if rps is not None:
                        rounds.setdefault(name, []).append(rps)
                        print(f"round {r + 1} {name:16s} {rps:8.0f} req/s", flush=True)
    finally:
        server.kill()
        server.wait()
    best = {name: max(values) for name, values in rounds.items()}
    median = {name: statistics.median(values) for name, values in rounds.items()}
    print(f"\n{args.n} chat requests per round, concurrency {args.concurrency}, stub latency "
          f"{args.latency_ms:g} ms, best of {args.rounds} rounds:")
    for name, rps in best.items():
        print(f"  {name:16s} {rps:8.0f} req/s   (median {median[name]:.0f})")
    ours = best["evalarena"]
    ratio = ours / best["bare aiohttp"]
    print(f"evalarena / bare asyncio (aiohttp): {ratio:.3f}  "
          f"({'meets' if ratio >= 0.95 else 'below'} the 0.95 target; ratio of medians "
          f"{median['evalarena'] / median['bare aiohttp']:.3f})")
    print(f"evalarena / bare asyncio (openai SDK): {ours / best['bare openai SDK']:.3f}")
    if "lm_eval" in best:
        print(f"evalarena / lm_eval local-chat-completions: {ours / best['lm_eval']:.3f}")


if __name__ == "__main__":
    main()
