"""Model backends: one string (a model spec) picks the backend and its options.

``spec`` holds the grammar, ``ModelSpec`` and the registry; ``schemes``
registers every backend; ``base`` is the interface each one implements. The
backends themselves (``hf``, ``openai_compat``, ``vllm_engine``, ``vllm_serve``,
``data_parallel``) are imported only when a spec is loaded.
docs/backends.md lists the schemes and their options.
"""

from __future__ import annotations

from harness.backends import schemes  # noqa: F401  (registers every scheme)
from harness.backends.base import Backend
from harness.backends.spec import (
    BACKENDS,
    EMBEDDED,
    BackendKind,
    ModelSpec,
    parse_model_spec,
    register_backend,
    with_data_parallel,
)


def load_backend(spec: ModelSpec | str) -> Backend:
    """Build the backend a spec names. Imports heavy libraries only here."""
    parsed = parse_model_spec(spec) if isinstance(spec, str) else spec
    if parsed.int_option("data_parallel", 1) > 1:  # N Ray actors, one backend each
        from harness.backends.data_parallel import DataParallelBackend

        return DataParallelBackend.from_spec(parsed)
    return parsed.kind.load(parsed)


__all__ = ["BACKENDS", "EMBEDDED", "Backend", "BackendKind", "ModelSpec", "load_backend",
           "parse_model_spec", "register_backend", "with_data_parallel"]
