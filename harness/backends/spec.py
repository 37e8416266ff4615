"""Model specs and the backend registry: one string picks the backend and its options.

Grammar (docs/backends.md has the details)::

    smollm2-135m                              the embedded default model
    hf:<path or hub id>[?opt=v&...]           local transformers
    openai:<base url>@<model name>[?opt=v&...] any OpenAI-compatible server
    openai:<url>,<url>,...@<model name>        replicas of one model (the first names it)
    vllm:<path or hub id>[?opt=v&...]          in-process vLLM engine (GPU or CPU)
    vllm:smollm2-135m                          (any path scheme) the embedded model's weights
    vllm-serve:<path or hub id>[?opt=v&...]    a managed `vllm serve` process
    serve:<path or hub id>?cmd=<template>[&...] a managed server started by any command

Each scheme is registered once (``register_backend``, in ``schemes.py``) with
everything the parser needs: whether its target is a path, which options
change answers (kept in the model's identity, so a different run) and which
only change speed (left out, so stored answers are reused). An option a
backend does not declare is an error here, before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from harness.errors import ModelSpecError

if TYPE_CHECKING:
    from harness.backends.base import Backend

EMBEDDED = "smollm2-135m"
# Ray data parallelism (data_parallel.py) wraps any backend: speed only, every scheme
DATA_PARALLEL_OPTIONS = frozenset({"data_parallel", "replica_cpus", "replica_gpus"})
# option names whose values must be numbers, for whichever backend declares them
NUMBER_VALUED = frozenset({
    "batch_size", "concurrency", "timeout", "max_retries", "backoff",
    "gpu_memory_utilization", "startup_timeout", "port", "data_parallel", "max_num_seqs",
    "store_every", "replica_cpus", "replica_gpus", "prefix_cache_mb", "stream",
    "tensor_parallel_size", "max_model_len",
})
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class BackendKind:
    """What one scheme declares: the parser and the model identity read only this."""

    scheme: str  # "embedded" names the bare embedded model (no scheme)
    takes_path: bool  # the target is a local path or a hub id (resolved when a path)
    identity_options: frozenset[str]  # change answers: kept in the model identity
    speed_options: frozenset[str]  # change only speed: left out of the identity
    load: Callable[[ModelSpec], Backend]  # builds the backend; heavy imports happen here

    @property
    def options(self) -> frozenset[str]:
        return self.identity_options | self.speed_options | DATA_PARALLEL_OPTIONS

    def is_speed_only(self, option: str) -> bool:
        return option in self.speed_options or option in DATA_PARALLEL_OPTIONS


BACKENDS: dict[str, BackendKind] = {}  # complete once harness.backends is imported


def register_backend(scheme: str, *, takes_path: bool, identity_options: Iterable[str] = (),
                     speed_options: Iterable[str] = ()
                     ) -> Callable[[Callable[[ModelSpec], Backend]],
                                   Callable[[ModelSpec], Backend]]:
    """Register the loader of ``scheme`` with the options its backend understands."""
    identity, speed = frozenset(identity_options), frozenset(speed_options)
    if identity & speed:
        raise ValueError(f"{scheme}: options both identity and speed: {sorted(identity & speed)}")

    def register(load: Callable[[ModelSpec], Backend]) -> Callable[[ModelSpec], Backend]:
        if scheme in BACKENDS:
            raise ValueError(f"backend scheme {scheme!r} is registered twice")
        BACKENDS[scheme] = BackendKind(scheme, takes_path, identity, speed, load)
        return load

    return register


def schemes() -> list[str]:
    """The schemes a spec can start with (``embedded`` has none)."""
    return [s for s in BACKENDS if s != "embedded"]


@dataclass(frozen=True)
class ModelSpec:
    scheme: str  # "embedded" | a registered scheme
    target: str  # path, hub id or base URL
    model_name: str | None = None  # openai: the served model's name
    options: dict[str, str] = field(default_factory=dict)
    raw: str = ""
    # openai: further base URLs serving the same weights; speed only, not identity
    replicas: tuple[str, ...] = ()

    @property
    def kind(self) -> BackendKind:
        return BACKENDS[self.scheme]

    @property
    def identity(self) -> str:
        """The canonical spec: what makes two runs' answers comparable."""
        if self.scheme == "embedded":
            base = EMBEDDED
        elif self.scheme == "openai":
            base = f"openai:{self.target}@{self.model_name}"
        else:
            base = f"{self.scheme}:{self.target}"
        kind = BACKENDS.get(self.scheme)
        kept = sorted((k, v) for k, v in self.options.items()
                      if kind is None or not kind.is_speed_only(k))
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
    if body == EMBEDDED:
        return _checked(ModelSpec("embedded", EMBEDDED, options=options, raw=spec))
    scheme, sep, target = body.partition(":")
    if not sep or scheme not in schemes():
        raise ModelSpecError(
            spec, f"unknown model spec; expected {EMBEDDED} or one of "
            + ", ".join(f"{s}:..." for s in schemes())
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
        return _checked(ModelSpec("openai", urls[0], name, options, raw=spec,
                                  replicas=tuple(urls[1:])))
    if BACKENDS[scheme].takes_path and target != EMBEDDED:
        looks_like_path = target.startswith((".", "/", "~")) or not _HUB_ID.match(target)
        if looks_like_path:
            path = Path(target).expanduser()
            if not path.exists():
                raise ModelSpecError(spec, f"no model directory at {path}")
            target = str(path.resolve())
    return _checked(ModelSpec(scheme, target, options=options, raw=spec))


def _checked(spec: ModelSpec) -> ModelSpec:
    """Every option is one the backend declares; number-valued ones are numbers."""
    kind = spec.kind
    label = "the embedded model" if kind.scheme == "embedded" else f"{kind.scheme}:"
    for name, value in spec.options.items():
        if name not in kind.options:
            raise ModelSpecError(spec.raw, f"unknown option {name!r} for {label}; known: "
                                 + ", ".join(sorted(kind.options)))
        if name in NUMBER_VALUED:
            try:
                float(value)
            except ValueError:
                raise ModelSpecError(spec.raw, f"option {name}={value!r} is not a number"
                                     ) from None
    return spec


def with_data_parallel(spec: ModelSpec, replicas: int) -> ModelSpec:
    """The spec with ``data_parallel=replicas`` (``--data-parallel``); same identity."""
    if replicas <= 1:
        return spec
    return replace(spec, options={**spec.options, "data_parallel": str(replicas)})
