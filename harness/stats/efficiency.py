"""Efficiency of a run: latency, time to first token, throughput, memory, GPU energy.

Each `run` invocation that generates answers is measured as a whole and stored
as one ``run_invocations`` row (docs/statistics.md, "Efficiency"): how long
loading and generating took, the process's peak memory, the GPU's peak
allocation and energy where torch/NVML can tell. Per-answer latency and time
to first token are stored with each completion. A resumed run therefore
combines: percentiles over all of the run's stored answers, throughput as
total tokens over total generation time, peak memory as the highest of its
invocations, energy summed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from harness.types import Invocation


@dataclass(frozen=True)
class RunKpis:
    """What `show` prints; ``None`` where nothing was measured."""

    invocations: int
    answers_timed: int  # answers with a latency
    latency_p50: float | None
    latency_p90: float | None
    latency_p99: float | None
    ttft_p50: float | None
    ttft_p90: float | None
    ttft_p99: float | None
    output_tokens_per_s: float | None
    prompt_tokens_per_s: float | None
    peak_rss_mb: float | None
    gpu_peak_mb: float | None
    gpu_energy_j: float | None


class InvocationMeter:
    """Started before the backend is built, finished after the last answer is stored."""

    def __init__(self) -> None:
        self.started_at = _now()
        self._start = time.perf_counter()
        self._loaded = self._start
        _reset_gpu_peak()
        self._energy_start = gpu_energy_mj()

    def loaded(self) -> None:
        """The backend is ready: generation time starts now."""
        self._loaded = time.perf_counter()
        _reset_gpu_peak()  # torch may only now be imported and CUDA initialised
        if self._energy_start is None:
            self._energy_start = gpu_energy_mj()

    def finish(self, backend: str) -> Invocation:
        end = time.perf_counter()
        energy = gpu_energy_mj()
        used = (None if energy is None or self._energy_start is None
                else (energy - self._energy_start) / 1000)
        return Invocation(backend, self.started_at, _now(), self._loaded - self._start,
                          end - self._loaded, peak_rss_mb(), gpu_peak_mb(), used)


def summarize(latencies: Sequence[float], ttfts: Sequence[float],
              invocations: Sequence[Invocation]) -> RunKpis:
    """Combine a run's stored answers and invocations (see the module docstring)."""
    lat = _percentiles(latencies)
    first = _percentiles(ttfts)
    seconds = sum(i.generate_s for i in invocations)
    output = sum(i.output_tokens for i in invocations)
    prompt = sum(i.prompt_tokens for i in invocations)
    energies = [i.gpu_energy_j for i in invocations if i.gpu_energy_j is not None]
    return RunKpis(
        len(invocations), len(latencies), *lat, *first,
        output / seconds if seconds > 0 and output else None,
        prompt / seconds if seconds > 0 and prompt else None,
        _max(i.peak_rss_mb for i in invocations), _max(i.gpu_peak_mb for i in invocations),
        sum(energies) if energies else None,
    )


def _percentiles(values: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    p50, p90, p99 = np.percentile(np.asarray(values, dtype=float), [50, 90, 99])
    return float(p50), float(p90), float(p99)


def _max(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def peak_rss_mb() -> float | None:
    """This process's peak resident set size so far (MiB); None where getrusage is missing."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def _cuda() -> Any:
    """torch, if this process already imported it and CUDA is usable; never imports it."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch


def _reset_gpu_peak() -> None:
    torch = _cuda()
    if torch is not None:
        for device in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(device)


def gpu_peak_mb() -> float | None:
    """Peak memory torch allocated on any CUDA device since the last reset (MiB)."""
    torch = _cuda()
    if torch is None:
        return None
    return max(torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count())) \
        / 2**20


def gpu_energy_mj() -> float | None:
    """Total energy counter (millijoules) of the GPUs this process may use, via NVML.

    None without the ``nvidia-ml-py`` package, without a driver, or on GPUs
    that do not report energy. The counter is per device, not per process:
    other work on the same GPUs is counted too."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            if visible is not None and not visible.strip():
                return None  # no GPU visible to this process
            indices = ([int(i) for i in visible.split(",")]
                       if visible and visible.replace(",", "").isdigit()
                       else range(pynvml.nvmlDeviceGetCount()))
            return float(sum(pynvml.nvmlDeviceGetTotalEnergyConsumption(
                pynvml.nvmlDeviceGetHandleByIndex(i)) for i in indices))
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        return None
