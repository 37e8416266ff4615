"""Model specs: one string picks the backend and its options.

Grammar (docs/backends.md has the details)::

    smollm2-135m                              the embedded default model
    hf:<path or hub id>[?opt=v&...]           local transformers
    openai:<base url>@<model name>[?opt=v&...] any OpenAI-compatible server
    openai:<url>,<url>,...@<model name>        replicas of one model (the first names it)
    vllm:<path or hub id>[?opt=v&...]          in-process vLLM engine (GPU or CPU)
    vllm:smollm2-135m                          (any path scheme) the embedded model's weights
    vllm-serve:<path or hub id>[?opt=v&...]    a managed `vllm serve` process
    serve:<path or hub id>?cmd=<template>[&...] a managed server started by any command

Options that only change speed (batch size, concurrency, timeouts) are left
out of the model's identity, so changing them reuses stored answers; options
that change answers (dtype, chat template) are kept in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from harness.backends.base import Backend
from harness.errors import ModelSpecError

EMBEDDED = "smollm2-135m"
SCHEMES = ("hf", "openai", "vllm", "vllm-serve", "serve")
# options that change speed, not answers: excluded from the model identity
RUNTIME_OPTIONS = frozenset({
    "batch_size", "concurrency", "timeout", "max_retries", "backoff", "device",
    "gpu_memory_utilization", "startup_timeout", "port", "data_parallel",
    "log", "max_num_seqs", "store_every",  # managed server log file; vLLM scheduling
    "replica_cpus", "replica_gpus",  # data parallel: Ray resources per replica
    "prefix_cache_mb",  # hf: shared-prefix key/value store (hf_prefix.py)
    "stream",  # openai: stream answers (measures time to first token)
    "distributed_executor_backend",  # vllm: where the engine's workers run
})
NUMERIC_OPTIONS = (RUNTIME_OPTIONS - {"device", "log", "distributed_executor_backend"}
                   | {"tensor_parallel_size", "max_model_len"})
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class ModelSpec:
    scheme: str  # "embedded" | one of SCHEMES
    target: str  # path, hub id or base URL
    model_name: str | None = None  # openai: the served model's name
    options: dict[str, str] = field(default_factory=dict)
    raw: str = ""
    # openai: further base URLs serving the same weights; speed only, not identity
    replicas: tuple[str, ...] = ()

    @property
    def identity(self) -> str:
        """The canonical spec: what makes two runs' answers comparable."""
        if self.scheme == "embedded":
            base = EMBEDDED
        elif self.scheme == "openai":
            base = f"openai:{self.target}@{self.model_name}"
        else:
            base = f"{self.scheme}:{self.target}"
        kept = sorted((k, v) for k, v in self.options.items() if k not in RUNTIME_OPTIONS)
        return f"{base}?{urlencode(kept)}" if kept else base

    @property
    def model_path(self) -> str:
        """Where the weights are: the target, or for ``<scheme>:smollm2-135m`` the
        embedded model's converted directory (converted on first use). The identity
        keeps the name, so it is the same on every machine."""
        if self.target == EMBEDDED:
            from harness.backends.embedded import converted_model_dir

            return str(converted_model_dir())
        return self.target

    def int_option(self, name: str, default: int) -> int:
        return int(self._number(name, default))

    def float_option(self, name: str, default: float) -> float:
        return float(self._number(name, default))

    def _number(self, name: str, default: float) -> float:
        value = self.options.get(name)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise ModelSpecError(self.raw, f"option {name}={value!r} is not a number") from None


def parse_model_spec(spec: str) -> ModelSpec:
    """Parse a spec string; raises ModelSpecError (exit 2) with what is wrong."""
    text = spec.strip()
    if not text:
        raise ModelSpecError(spec, "empty model spec")
    body, _, query = text.partition("?")
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise ModelSpecError(spec, f"options {query!r} are not key=value pairs") from None
    for name in NUMERIC_OPTIONS & options.keys():  # checked now, before anything is written
        try:
            float(options[name])
        except ValueError:
            raise ModelSpecError(spec, f"option {name}={options[name]!r} is not a number") from None
    if body == EMBEDDED:
        return ModelSpec("embedded", EMBEDDED, options=options, raw=spec)
    scheme, sep, target = body.partition(":")
    if not sep or scheme not in SCHEMES:
        raise ModelSpecError(
            spec, f"unknown model spec; expected {EMBEDDED} or one of "
            + ", ".join(f"{s}:..." for s in SCHEMES)
        )
    if not target:
        raise ModelSpecError(spec, f"'{scheme}:' needs a model after the colon")
    if scheme == "openai":
        url, at, name = target.rpartition("@")
        if not at or not url or not name:
            raise ModelSpecError(spec, "expected openai:<base url>@<model name>")
        urls = [u.strip().rstrip("/") for u in url.split(",")]
        for one in urls:
            if not re.match(r"^https?://", one):
                raise ModelSpecError(spec, f"base url {one!r} must start with http:// or https://")
        if len(set(urls)) != len(urls):
            raise ModelSpecError(spec, "the same base url is named twice")
        return ModelSpec("openai", urls[0], name, options, raw=spec, replicas=tuple(urls[1:]))
    if scheme in ("hf", "vllm", "vllm-serve", "serve") and target != EMBEDDED:
        looks_like_path = target.startswith((".", "/", "~")) or not _HUB_ID.match(target)
        if looks_like_path:
            path = Path(target).expanduser()
            if not path.exists():
                raise ModelSpecError(spec, f"no model directory at {path}")
            target = str(path.resolve())
    return ModelSpec(scheme, target, options=options, raw=spec)


def with_data_parallel(spec: ModelSpec, replicas: int) -> ModelSpec:
    """The spec with ``data_parallel=replicas`` (``--data-parallel``); same identity."""
    if replicas <= 1:
        return spec
    return replace(spec, options={**spec.options, "data_parallel": str(replicas)})


def load_backend(spec: ModelSpec | str) -> Backend:
    """Build the backend a spec names. Imports heavy libraries only here."""
    parsed = parse_model_spec(spec) if isinstance(spec, str) else spec
    if parsed.int_option("data_parallel", 1) > 1:  # N Ray actors, one backend each
        from harness.backends.data_parallel import DataParallelBackend

        return DataParallelBackend.from_spec(parsed)
    if parsed.scheme == "embedded":
        from harness.backends.embedded import load_embedded

        return load_embedded(parsed)
    if parsed.scheme == "hf":
        from harness.backends.hf import TransformersBackend

        return TransformersBackend.from_spec(parsed)
    if parsed.scheme == "openai":
        from harness.backends.openai_compat import OpenAIBackend

        return OpenAIBackend.from_spec(parsed)
    if parsed.scheme == "vllm":
        from harness.backends.vllm_engine import VLLMBackend

        return VLLMBackend.from_spec(parsed)
    if parsed.scheme == "serve":
        from harness.backends.vllm_serve import managed_command_backend

        return managed_command_backend(parsed)
    from harness.backends.vllm_serve import managed_vllm_backend

    return managed_vllm_backend(parsed)


__all__ = ["EMBEDDED", "Backend", "ModelSpec", "load_backend", "parse_model_spec",
           "with_data_parallel"]
