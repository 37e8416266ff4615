"""Efficiency KPIs: measured per invocation, stored, combined over resumes, shown."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import CliRun

from harness.stats.efficiency import InvocationMeter, peak_rss_mb, summarize
from harness.store import RunRecord, Store, utc_now
from harness.types import (
    Completion,
    ErrorKind,
    GenerationParams,
    Invocation,
    Message,
    Request,
    RequestKind,
)


def _request(text: str) -> Request:
    return Request(RequestKind.GENERATE, "m", messages=(Message("user", text),),
                   params=GenerationParams(max_tokens=4))


def test_an_invocation_counts_only_what_it_stored(tmp_path: Path) -> None:
    with Store(tmp_path / "k.db") as store:
        now = utc_now()
        store.upsert_run(RunRecord("r1", "m", "s", "h", "running", None, 0, 4, {}, now, now))
        earlier = [_request(f"q{i}") for i in range(4)]
        store.add_run_samples("r1", [])
        store.conn.executemany(
            "INSERT INTO requests (key, kind, model, payload, created_at) VALUES (?,?,?,?,?)",
            [(r.key, "generate", "m", "{}", now) for r in earlier])
        store.save_completions("r1", "m", [(earlier[0].key, Completion(
            texts=("old",), prompt_tokens=100, output_tokens=100, latency_s=1.0))])
        time.sleep(0.01)  # timestamps have millisecond resolution
        meter = InvocationMeter()
        meter.loaded()
        store.save_completions("r1", "m", [
            (earlier[1].key, Completion(texts=("a",), prompt_tokens=7, output_tokens=3,
                                        latency_s=0.2, ttft_s=0.05)),
            (earlier[2].key, Completion(texts=("b",), prompt_tokens=5, output_tokens=2,
                                        latency_s=0.4)),
            (earlier[3].key, Completion.failed(ErrorKind.TIMEOUT, "slow")),
        ])
        stored = store.record_invocation("r1", meter.finish("m"))
        assert (stored.answers, stored.errors, stored.prompt_tokens, stored.output_tokens) == (
            2, 1, 12, 5)
        assert stored.generate_s > 0 and stored.peak_rss_mb and stored.peak_rss_mb > 10
        assert store.invocations("r1") == [stored]
        assert store.output_rates() == {"r1": pytest.approx(5 / stored.generate_s)}
        assert store.completions([earlier[1].key])[earlier[1].key].ttft_s == 0.05


def _invocation(generate_s: float, output: int, rss: float | None, energy: float | None
                ) -> Invocation:
    return Invocation("m", "t0", "t1", 1.0, generate_s, rss, None, energy, 10, 0, 50, output)


def test_a_resumed_run_combines_its_invocations() -> None:
    kpis = summarize([0.1, 0.2, 0.3, 0.4, 1.0], [],
                     [_invocation(2.0, 100, 500.0, 30.0), _invocation(3.0, 400, 700.0, None)])
    assert kpis.invocations == 2 and kpis.answers_timed == 5
    assert kpis.latency_p50 == pytest.approx(0.3)
    assert kpis.latency_p99 == pytest.approx(0.976)  # numpy's linear interpolation
    assert kpis.ttft_p50 is None  # nothing measured it
    assert kpis.output_tokens_per_s == pytest.approx(500 / 5.0)  # total over total time
    assert kpis.prompt_tokens_per_s == pytest.approx(100 / 5.0)
    assert kpis.peak_rss_mb == 700.0 and kpis.gpu_peak_mb is None
    assert kpis.gpu_energy_j == 30.0  # the invocations that measured it
    empty = summarize([], [], [])
    assert empty.latency_p50 is None and empty.output_tokens_per_s is None


def test_peak_rss_is_this_process() -> None:
    before = peak_rss_mb()
    assert before is not None and before > 10
    block = bytearray(64 * 2**20)  # touch 64 MiB
    block[::4096] = b"x" * len(block[::4096])
    assert peak_rss_mb() >= before  # type: ignore[operator]
    del block


@pytest.mark.slow
def test_a_real_run_stores_and_shows_its_kpis(cli: CliRun, tmp_path: Path) -> None:
    db = str(tmp_path / "k.db")
    args = ("run", "--model", "smollm2-135m", "--suite", "smoke", "--limit", "4", "--db", db,
            "--quiet")
    first = cli(*args, env={"COLUMNS": "200"})
    assert first.returncode == 0, first.stderr
    run_id = first.stdout.split("evalarena show ")[1].split(")")[0].strip()
    again = cli(*args, env={"COLUMNS": "200"})  # nothing pending: nothing measured
    assert "generated 0, reused 4" in again.stdout
    with Store(db) as store:
        (invocation,) = store.invocations(run_id)
        latencies, _ = store.answer_timings(run_id)
    assert invocation.answers == 4 and invocation.output_tokens > 0
    assert invocation.generate_s > 0 and invocation.load_s > 0
    assert invocation.peak_rss_mb is not None and invocation.peak_rss_mb > 100  # a model
    assert invocation.gpu_peak_mb is None  # no CUDA here
    assert len(latencies) == 4
    shown = cli("show", run_id, "--db", db, env={"COLUMNS": "200"}).stdout
    assert "latency p50/p90/p99: " in shown and " s over 4 answers" in shown
    assert "output tok/s" in shown and "over 1 invocation(s)" in shown
    assert "RSS " in shown and "GPU not measured" in shown
    listing = cli("runs", "--db", db, env={"COLUMNS": "200"}).stdout
    rate = invocation.output_tokens / invocation.generate_s
    assert f"{rate:,.1f}" in listing
