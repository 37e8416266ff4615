"""Every backend a model spec can name: one registration per scheme.

Each block states the scheme's facts in one place (docs/contributing.md, "Add a
backend"): whether the target is a path, which options change answers (the
model identity, hence the run id) and which only change speed (stored answers
are reused). The loader imports the backend's module only when called, so
parsing a spec never imports torch or vLLM.
"""

from __future__ import annotations

from harness.backends.base import Backend
from harness.backends.spec import ModelSpec, register_backend
from harness.backends.vllm_convert import ENGINE_OPTIONS, OWN_OPTIONS
from harness.backends.vllm_serve import (
    CLIENT_OPTIONS,
    LIFECYCLE_OPTIONS,
    VLLM_FLAGS,
    VLLM_SWITCHES,
)

# transformers in this process (hf.py): the bare embedded model and hf:
_HF_IDENTITY = ("dtype",)
_HF_SPEED = ("batch_size", "device", "prefix_cache_mb")
# the OpenAI client (openai_compat.py), alone or in front of a managed server
_CLIENT_IDENTITY = ("endpoint",)  # chat or completions: a different prompt
_CLIENT_SPEED = tuple(o for o in CLIENT_OPTIONS if o not in _CLIENT_IDENTITY)
# vLLM scheduling and placement: the same answers, faster or slower
_VLLM_SPEED = ("gpu_memory_utilization", "max_num_seqs", "distributed_executor_backend")


@register_backend("embedded", takes_path=False, identity_options=_HF_IDENTITY,
                  speed_options=_HF_SPEED)
def _embedded(spec: ModelSpec) -> Backend:
    from harness.backends.embedded import load_embedded

    return load_embedded(spec)


@register_backend("hf", takes_path=True, identity_options=_HF_IDENTITY,
                  speed_options=_HF_SPEED)
def _hf(spec: ModelSpec) -> Backend:
    from harness.backends.hf import TransformersBackend

    return TransformersBackend.from_spec(spec)


@register_backend("openai", takes_path=False, identity_options=_CLIENT_IDENTITY,
                  speed_options=(*_CLIENT_SPEED, "stream"))
def _openai(spec: ModelSpec) -> Backend:
    from harness.backends.openai_compat import OpenAIBackend

    return OpenAIBackend.from_spec(spec)


@register_backend(
    "vllm", takes_path=True,
    identity_options=[o for o in (*ENGINE_OPTIONS, *OWN_OPTIONS)
                      if o not in (*_VLLM_SPEED, "batch_size", "store_every")],
    speed_options=(*_VLLM_SPEED, "batch_size", "store_every"))
def _vllm(spec: ModelSpec) -> Backend:
    from harness.backends.vllm_engine import VLLMBackend

    return VLLMBackend.from_spec(spec)


@register_backend(
    "vllm-serve", takes_path=True,
    identity_options=[o for o in (*VLLM_FLAGS, *VLLM_SWITCHES, "vllm_args", *_CLIENT_IDENTITY)
                      if o not in _VLLM_SPEED],
    speed_options=(*_VLLM_SPEED, *_CLIENT_SPEED, *LIFECYCLE_OPTIONS))
def _vllm_serve(spec: ModelSpec) -> Backend:
    from harness.backends.vllm_serve import managed_vllm_backend

    return managed_vllm_backend(spec)


@register_backend("serve", takes_path=True, identity_options=("cmd", "health", *_CLIENT_IDENTITY),
                  speed_options=(*_CLIENT_SPEED, *LIFECYCLE_OPTIONS))
def _serve(spec: ModelSpec) -> Backend:
    from harness.backends.vllm_serve import managed_command_backend

    return managed_command_backend(spec)
