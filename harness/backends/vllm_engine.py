"""In-process vLLM (``vllm:<model>``): the whole run handed to the engine at once.

vLLM's scheduler does continuous batching, so the best throughput comes from
giving it every request up front and letting it order the work. The backend
therefore asks the runner for one very large batch (``batch_size``), submits
every request to the engine, and hands finished answers back as they complete
through ``run_chunks``; the runner stores each chunk in one transaction, so a
crash loses only what was still in the engine.

Prompts are tokenised here, the same way the transformers backend does it
(chat template with ``add_generation_prompt``, then no extra special tokens;
text prompts with the tokenizer's own special tokens), and handed to the engine
as token ids, so both backends feed the model exactly the same tokens.

Loglikelihood, two ways:

- every continuation one token long (multiple-choice letters, judge verdict
  digits): ONE engine request per item, prompt = the context, one generated
  token, and the log-probabilities of exactly the candidate tokens
  (``logprob_token_ids``). The context is computed once instead of once per
  choice, and, asking for no prompt log-probabilities, it can reuse vLLM's
  prefix cache (a few-shot preamble shared by every item);
- otherwise one engine request per continuation, prompt = context +
  continuation, ``max_tokens=1``; the continuation's positions are read from
  ``prompt_logprobs``.

Both give the same numbers (tests/backends/test_vllm_engine.py). vllm is imported only in
``VLLMBackend``; the conversions live in ``vllm_convert.py``.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from harness.backends.base import Backend
from harness.backends.spec import ModelSpec
from harness.backends.vllm_convert import (
    DEFAULT_BATCH,
    DEFAULT_STORE_EVERY,
    FLUSH_S,
    SCORING_KWARGS,
    _bool,
    continuation_score,
    engine_kwargs,
    generation_completion,
    next_token_scores,
    sampling_kwargs,
)
from harness.backends.vllm_platform import (
    MISSING_VLLM,
    VLLMUnavailableError,
    apply_cpu_engine_defaults,
)
from harness.types import Completion, ErrorKind, Request, RequestKind

GENERATION = -1  # _Job.choice of a generation
NEXT_TOKEN = -2  # _Job.choice of a one-request scoring of single-token continuations

@dataclass(frozen=True)
class _Job:
    """One engine request: a generation, or one continuation of a scoring request."""

    position: int  # index into the batch handed to run_chunks
    choice: int  # continuation index, or GENERATION, or NEXT_TOKEN
    prompt: list[int]
    n_continuation: int = 0
    candidates: tuple[int, ...] = ()  # NEXT_TOKEN: each continuation's one token


class VLLMBackend(Backend):
    def __init__(self, model_id: str, llm: Any, *, batch_size: int = DEFAULT_BATCH,
                 store_every: int = DEFAULT_STORE_EVERY, chat_template: str | None = None,
                 ignore_eos: bool = False) -> None:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        self.model_id = model_id
        self.llm = llm
        self.engine = llm.llm_engine
        self.tokenizer = llm.get_tokenizer()
        self.batch_size = batch_size
        self.store_every = store_every
        self.chat_template = chat_template
        self.ignore_eos = ignore_eos
        self.max_model_len = int(self.engine.model_config.max_model_len)
        self._sampling_params = SamplingParams
        # one output per request, when it has finished, with all n samples (what
        # LLM.generate asks for too): the default streams every step of every sample
        # separately, which costs a detokenised output per sequence per step
        self._final_only = RequestOutputKind.FINAL_ONLY
        self._tokens_prompt = TokensPrompt
        self._counter = 0

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> VLLMBackend:
        kwargs = engine_kwargs(spec)  # a bad option fails before CUDA is touched
        if importlib.util.find_spec("vllm") is None:
            raise VLLMUnavailableError(MISSING_VLLM)
        apply_cpu_engine_defaults(kwargs)
        from vllm import LLM

        template = spec.options.get("chat_template")
        if template and not template.lstrip().startswith("{"):  # a path, not inline Jinja
            with open(template, encoding="utf-8") as handle:
                template = handle.read()
        return cls(spec.identity, LLM(**kwargs),
                   batch_size=spec.int_option("batch_size", DEFAULT_BATCH),
                   store_every=spec.int_option("store_every", DEFAULT_STORE_EVERY),
                   chat_template=template,
                   ignore_eos=_bool(spec.options.get("ignore_eos", "false")))

    # -- prompts -----------------------------------------------------------
    def _encode(self, text: str, special: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special).input_ids)

    def _context_text(self, request: Request) -> tuple[str, bool]:
        """The prompt as text, and whether tokenising it adds special tokens."""
        if request.messages is None:
            return request.text or "", True
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        rendered = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False,
            chat_template=self.chat_template)
        return str(rendered), False

    def _jobs(self, position: int, request: Request) -> list[_Job] | Completion:
        """Engine requests for one Request, or the Completion that fails it at once."""
        text, special = self._context_text(request)
        if request.kind is RequestKind.GENERATE:
            ids = self._encode(text, special)
            if len(ids) + request.params.max_tokens > self.max_model_len:
                return Completion.failed(
                    ErrorKind.CONTEXT_LENGTH, f"prompt of {len(ids)} tokens + max_tokens "
                    f"{request.params.max_tokens} exceeds max_model_len {self.max_model_len}")
            return [_Job(position, GENERATION, ids)]
        from harness.backends.hf import _move_trailing_space, empty_context_token  # as hf:

        context, _ = _move_trailing_space(text, "")
        context_ids = self._encode(context, special)
        wholes = [self._encode(context + _move_trailing_space(text, continuation)[1], special)
                  for continuation in request.continuations]
        if not context_ids:  # a continuation scored whole (CrowS-Pairs)
            prefix = [empty_context_token(self.tokenizer)]
            context_ids, wholes = prefix, [prefix + w for w in wholes]
        if (len(context_ids) < self.max_model_len and context_ids
                and all(len(w) == len(context_ids) + 1 and w[:-1] == context_ids
                        for w in wholes)):
            return [_Job(position, NEXT_TOKEN, context_ids, 1, tuple(w[-1] for w in wholes))]
        jobs = []
        for choice, whole in enumerate(wholes):
            n_cont = max(len(whole) - len(context_ids), 1)
            ids = whole[-(self.max_model_len - 1):]  # left-truncated, room for 1 new token
            jobs.append(_Job(position, choice, ids, min(n_cont, len(ids) - 1)))
        return jobs

    # -- running -------------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return self.run(requests)

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        return self.run(requests)

    def run(self, requests: Sequence[Request]) -> list[Completion]:
        results: dict[int, Completion] = {}
        for chunk in self.run_chunks(requests):
            results.update(chunk)
        return [results[i] for i in range(len(requests))]

    def run_chunks(self, requests: Sequence[Request]) -> Iterator[list[tuple[int, Completion]]]:
        ready: list[tuple[int, Completion]] = []
        pending: dict[str, _Job] = {}
        scored: dict[int, dict[int, tuple[float, bool, int]] | None] = {}
        started = time.perf_counter()
        try:
            for position, request in enumerate(requests):
                try:
                    jobs = self._jobs(position, request)
                except Exception as exc:  # a template or tokenizer failure sinks one request
                    jobs = Completion.failed(ErrorKind.BAD_REQUEST, f"{type(exc).__name__}: {exc}")
                if isinstance(jobs, Completion):
                    ready.append((position, jobs))
                    continue
                submitted: list[str] = []
                for job in jobs:
                    request_id = self._submit(job, request)
                    if isinstance(request_id, Completion):  # refused: drop its siblings too
                        ready.append((position, request_id))
                        if submitted:
                            self.engine.abort_request(submitted)
                        for sibling in submitted:
                            del pending[sibling]
                        break
                    submitted.append(request_id)
                    pending[request_id] = job
            last_flush = time.monotonic()
            while pending:
                if not self.engine.has_unfinished_requests():
                    raise RuntimeError(f"vLLM went idle with {len(pending)} requests unanswered "
                                       "(request ids not recognised?)")
                for output in self.engine.step():
                    finished = pending.get(_our_id(output.request_id))
                    if finished is None or not output.finished:
                        continue
                    del pending[_our_id(output.request_id)]
                    done = self._finish(finished, requests[finished.position], output, scored,
                                        time.perf_counter() - started)
                    if done is not None:
                        ready.append((finished.position, done))
                if ready and (len(ready) >= self.store_every
                              or time.monotonic() - last_flush >= FLUSH_S):
                    yield ready
                    ready, last_flush = [], time.monotonic()
            if ready:
                yield ready
        finally:
            if pending:  # interrupted or failed: leave the engine empty for the next call
                self.engine.abort_request(list(pending))

    def _submit(self, job: _Job, request: Request) -> str | Completion:
        self._counter += 1
        # no "-" in our ids: recent vLLM appends "-<random>" to request ids internally
        request_id = f"ea{self._counter}"
        if job.choice == GENERATION:
            params = self._sampling_params(**sampling_kwargs(request.params,
                                                             ignore_eos=self.ignore_eos),
                                           output_kind=self._final_only)
        elif job.choice == NEXT_TOKEN:
            params = self._sampling_params(max_tokens=1, temperature=0.0,
                                           logprob_token_ids=sorted(set(job.candidates)),
                                           output_kind=self._final_only)
        else:
            params = self._sampling_params(**SCORING_KWARGS, output_kind=self._final_only)
        try:
            self.engine.add_request(request_id, self._tokens_prompt(prompt_token_ids=job.prompt),
                                    params)
        except ValueError as exc:  # vLLM's per-request validation (length, parameters)
            kind = ErrorKind.CONTEXT_LENGTH if "length" in str(exc).lower() \
                else ErrorKind.BAD_REQUEST
            return Completion.failed(kind, f"vLLM refused the request: {exc}")
        return request_id

    def _finish(self, job: _Job, request: Request, output: Any,
                scored: dict[int, dict[int, tuple[float, bool, int]] | None],
                latency_s: float) -> Completion | None:
        """The Completion once every engine request of ``request`` has finished."""
        if job.choice == GENERATION:
            return generation_completion(output, request.params, latency_s)
        if job.choice == NEXT_TOKEN:
            try:
                scores = next_token_scores(output, job.candidates)
            except ValueError as exc:
                return Completion.failed(ErrorKind.INVALID_RESPONSE, f"logprobs: {exc}")
            return Completion(
                loglikelihoods=tuple(s for s, _ in scores),
                greedy_matches=tuple(g for _, g in scores),
                continuation_tokens=tuple(1 for _ in scores),
                prompt_tokens=len(job.prompt), latency_s=latency_s)
        choices = scored.setdefault(job.position, {})
        if choices is None:  # a sibling continuation already failed the request
            return None
        try:
            score = continuation_score(output.prompt_token_ids, output.prompt_logprobs or [],
                                       job.n_continuation)
        except ValueError as exc:
            scored[job.position] = None
            return Completion.failed(ErrorKind.INVALID_RESPONSE, f"prompt logprobs: {exc}")
        choices[job.choice] = score
        if len(choices) < len(request.continuations):
            return None
        del scored[job.position]
        ordered = [choices[j] for j in range(len(request.continuations))]
        return Completion(
            loglikelihoods=tuple(s for s, _, _ in ordered),
            greedy_matches=tuple(g for _, g, _ in ordered),
            continuation_tokens=tuple(n for _, _, n in ordered),
            prompt_tokens=len(output.prompt_token_ids) - job.n_continuation,
            latency_s=latency_s,
        )

    def close(self) -> None:
        """Drop the engine so its memory (GPU or RAM) can be reclaimed by the next model."""
        self.engine = None
        self.llm = None
        import gc

        gc.collect()
        try:
            import torch

            torch.cuda.empty_cache()
        except Exception:  # best effort on the way out
            pass


def _our_id(request_id: str) -> str:
    return str(request_id).split("-", 1)[0]
