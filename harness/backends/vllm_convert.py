"""The ``vllm:`` backend's conversions, kept free of vLLM imports so they are tested
without an engine: spec options to ``vllm.LLM`` keywords, requests to sampling
parameters, and vLLM's output structures to Completions (they read plain objects
shaped like ``RequestOutput``, ``CompletionOutput`` and ``Logprob``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.backends.base import truncate_at_stop
from harness.backends.spec import ModelSpec
from harness.errors import ModelSpecError
from harness.types import Completion, ErrorKind, GenerationParams

# spec option -> vllm.LLM keyword, with the type it is parsed as
ENGINE_OPTIONS: dict[str, Callable[[str], Any]] = {
    "tensor_parallel_size": int, "pipeline_parallel_size": int, "max_model_len": int,
    "gpu_memory_utilization": float, "max_num_seqs": int, "dtype": str, "quantization": str,
    "kv_cache_dtype": str, "seed": int, "revision": str, "tokenizer": str,
    "enforce_eager": lambda v: _bool(v), "trust_remote_code": lambda v: _bool(v),
    "enable_prefix_caching": lambda v: _bool(v), "distributed_executor_backend": str,
}
OWN_OPTIONS = ("batch_size", "store_every", "chat_template", "ignore_eos")
DEFAULT_BATCH = 1_000_000  # a whole run at once: vLLM schedules it
DEFAULT_STORE_EVERY = 256  # answers per stored chunk ...
FLUSH_S = 2.0  # ... or whatever finished in this many seconds, whichever comes first


def _bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise ValueError(f"{value!r} is not true or false")


def engine_kwargs(spec: ModelSpec) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments for a ``vllm:`` spec; rejects unknown options."""
    kwargs: dict[str, Any] = {"model": spec.model_path, "seed": 0}
    for name, value in spec.options.items():
        if name in ENGINE_OPTIONS:
            try:
                kwargs[name] = ENGINE_OPTIONS[name](value)
            except ValueError as exc:
                raise ModelSpecError(spec.raw, f"option {name}={value!r}: {exc}") from None
        elif name not in OWN_OPTIONS:
            raise ModelSpecError(spec.raw, f"unknown option {name!r} for vllm; known: "
                                 + ", ".join(sorted([*ENGINE_OPTIONS, *OWN_OPTIONS])))
    return kwargs


def sampling_kwargs(params: GenerationParams, *, ignore_eos: bool = False) -> dict[str, Any]:
    """``vllm.SamplingParams`` keywords for a generate request.

    Greedy requests ask for one sequence (``n`` greedy decodes are one decode
    repeated; see ``generation_completion``), so they never depend on how a
    vLLM version treats ``n > 1`` with temperature 0."""
    kwargs: dict[str, Any] = {
        "n": 1 if params.greedy else params.n,
        "temperature": params.temperature,
        "top_p": 1.0 if params.greedy else params.top_p,
        "max_tokens": params.max_tokens,
        "stop": list(params.stop),
        "seed": params.seed,
        "skip_special_tokens": True,
    }
    if ignore_eos:
        kwargs["ignore_eos"] = True
    return kwargs


SCORING_KWARGS: dict[str, Any] = {"max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 1}


def generation_completion(output: Any, params: GenerationParams, latency_s: float) -> Completion:
    """A vLLM ``RequestOutput`` as a Completion (n texts, finish reasons, token counts)."""
    samples = sorted(output.outputs, key=lambda o: o.index)
    if any(s.finish_reason not in ("stop", "length") for s in samples):
        reasons = [s.finish_reason for s in samples]
        return Completion.failed(ErrorKind.BACKEND_CRASH, f"vLLM finished with {reasons}")
    if params.greedy and len(samples) == 1:
        samples = samples * params.n
    if len(samples) != params.n:
        return Completion.failed(ErrorKind.INVALID_RESPONSE,
                                 f"asked for n={params.n} samples, vLLM returned {len(samples)}")
    cut = [truncate_at_stop(s.text, params.stop) for s in samples]
    return Completion(
        texts=tuple(text for text, _ in cut),
        finish_reasons=tuple("stop" if found else s.finish_reason
                             for (_, found), s in zip(cut, samples, strict=True)),
        prompt_tokens=len(output.prompt_token_ids or ()),
        output_tokens=sum(len(s.token_ids) for s in
                          (samples[:1] if params.greedy else samples)),
        latency_s=latency_s,
    )


def continuation_score(prompt_token_ids: Sequence[int], prompt_logprobs: Sequence[Any],
                       n_continuation: int) -> tuple[float, bool, int]:
    """Sum of the last ``n_continuation`` prompt tokens' logprobs, and whether each
    was the model's top choice.

    ``prompt_logprobs[k]`` maps token id -> Logprob (``.logprob``, ``.rank``)
    for prompt position k, and is None for position 0. It always holds the
    actual prompt token; with ``prompt_logprobs=1`` also the top-1 token.
    """
    if len(prompt_logprobs) != len(prompt_token_ids):
        raise ValueError(f"{len(prompt_logprobs)} prompt logprobs for "
                         f"{len(prompt_token_ids)} prompt tokens")
    if not 0 < n_continuation < len(prompt_token_ids):
        raise ValueError(f"cannot score {n_continuation} of {len(prompt_token_ids)} tokens "
                         "(the first prompt token has no logprob)")
    total, greedy = 0.0, True
    for position in range(len(prompt_token_ids) - n_continuation, len(prompt_token_ids)):
        entry: Mapping[int, Any] | None = prompt_logprobs[position]
        token = prompt_token_ids[position]
        if entry is None or token not in entry:
            raise ValueError(f"no logprob for prompt token {token} at position {position}")
        chosen = entry[token]
        total += float(chosen.logprob)
        if chosen.rank is not None:
            greedy = greedy and chosen.rank == 1
        else:
            greedy = greedy and chosen.logprob >= max(v.logprob for v in entry.values())
    return total, greedy, n_continuation


def next_token_scores(output: Any, candidates: Sequence[int]) -> list[tuple[float, bool]]:
    """Each candidate's log-probability as the token after the prompt, and whether it is
    the greedy choice, from one request asked for ``logprob_token_ids=candidates``.

    ``output.outputs[0].logprobs[0]`` maps token id -> Logprob for the generated position
    (the requested ids, plus the token generated). The ranks there are among the
    requested ids, so greedy is read from the generated token itself: with temperature
    0 it is the argmax over the whole vocabulary."""
    sample = output.outputs[0]
    if not sample.logprobs or not sample.token_ids:
        raise ValueError("no logprobs for the generated position")
    entry: Mapping[int, Any] = sample.logprobs[0]
    missing = [c for c in candidates if c not in entry]
    if missing:
        raise ValueError(f"no logprob for candidate tokens {missing}")
    chosen = sample.token_ids[0]
    return [(float(entry[c].logprob), c == chosen) for c in candidates]
