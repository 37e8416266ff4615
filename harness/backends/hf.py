"""Local models through transformers, on CPU or GPU.

Generation is batched with left padding (so every row's new tokens start at the
same column). Greedy requests are batched freely; seeded sampled requests run
one prompt at a time under their own seed, so a request's samples do not depend
on which other requests happened to share its batch: a resumed run then
produces exactly what an uninterrupted one would.

Loglikelihood follows the usual convention (context and continuation encoded
together, the continuation's tokens being what follows the context's own
encoding; trailing spaces of the context move to the continuation), which keeps
numbers comparable with lm-evaluation-harness.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from harness.backends.base import Backend, truncate_at_stop
from harness.backends.hf_prefix import PrefixCache
from harness.backends.hf_scoring import ScoringItem, score_items
from harness.backends.spec import ModelSpec
from harness.types import Completion, ErrorKind, GenerationParams, Request


class TransformersBackend(Backend):
    def __init__(
        self,
        model_path: str,
        model_id: str,
        *,
        dtype: str = "auto",
        device: str | None = None,
        batch_size: int = 8,
        prefix_cache_mb: int = 1024,
    ) -> None:
        self.model_id = model_id
        self.batch_size = batch_size
        # contexts' key/value states kept across loglikelihood calls (hf_prefix.py); 0: off
        self.prefixes = PrefixCache(prefix_cache_mb * 2**20)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch_dtype: Any = dtype
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        elif isinstance(dtype, str):
            torch_dtype = getattr(torch, dtype)
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype)
        self.model.to(self.device).eval()
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id
        self.max_length = int(getattr(self.model.config, "max_position_embeddings", 2048))

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> TransformersBackend:
        return cls(
            spec.model_path,
            spec.identity,
            dtype=spec.options.get("dtype", "auto"),
            device=spec.options.get("device"),
            batch_size=spec.int_option("batch_size", 8),
            prefix_cache_mb=spec.int_option("prefix_cache_mb", 1024),
        )

    # -- prompts ----------------------------------------------------------
    def encode_prompt(self, request: Request) -> list[int]:
        """Token ids of the prompt; chat prompts go through the model's template."""
        if request.messages is not None:
            text = self.render_chat(request)
            return self.tokenizer(text, add_special_tokens=False).input_ids
        return self.tokenizer(request.text).input_ids

    def render_chat(self, request: Request) -> str:
        messages = [{"role": m.role, "content": m.content} for m in request.messages or ()]
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    # -- generation -------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        groups: dict[GenerationParams, list[int]] = defaultdict(list)
        for i, request in enumerate(requests):
            groups[request.params].append(i)
        for params, positions in groups.items():
            if not params.greedy and params.seed is not None:
                batches = [[i] for i in positions]  # per-request seed: see module docstring
            else:
                batches = [positions]
            for batch in batches:
                for i, completion in zip(
                    batch, self._generate_batch([requests[i] for i in batch], params),
                    strict=True,
                ):
                    results[i] = completion
        return [c for c in results if c is not None]

    def _generate_batch(
        self, requests: Sequence[Request], params: GenerationParams
    ) -> list[Completion]:
        encoded = [self.encode_prompt(r) for r in requests]
        too_long = [len(ids) + params.max_tokens > self.max_length for ids in encoded]
        runnable = [i for i, bad in enumerate(too_long) if not bad]
        out: list[Completion] = [
            Completion.failed(
                ErrorKind.CONTEXT_LENGTH,
                f"prompt of {len(ids)} tokens + max_tokens {params.max_tokens} exceeds the "
                f"model's {self.max_length}",
            )
            for ids in encoded
        ]
        if not runnable:
            return out
        started = time.perf_counter()
        try:
            texts, reasons, counts = self._decode(
                [encoded[i] for i in runnable], params
            )
        except Exception as exc:  # one bad batch must not sink the run
            for i in runnable:
                out[i] = Completion.failed(ErrorKind.BACKEND_CRASH, f"{type(exc).__name__}: {exc}")
            return out
        latency = time.perf_counter() - started
        for j, i in enumerate(runnable):
            out[i] = Completion(
                texts=tuple(texts[j]),
                finish_reasons=tuple(reasons[j]),
                prompt_tokens=len(encoded[i]),
                output_tokens=sum(counts[j]),
                latency_s=latency,
            )
        return out

    @torch.inference_mode()
    def _decode(
        self, encoded: list[list[int]], params: GenerationParams
    ) -> tuple[list[list[str]], list[list[str]], list[list[int]]]:
        width = max(len(ids) for ids in encoded)
        input_ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            attention[row, width - len(ids):] = 1
        # greedy decoding gives the same text every time: decode once, repeat it n times
        per_prompt = 1 if params.greedy else params.n
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "num_return_sequences": per_prompt,
            "pad_token_id": self.pad_id,
            "do_sample": not params.greedy,
        }
        if params.greedy:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=None)
            if params.seed is not None:
                torch.manual_seed(params.seed)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        generated = self.model.generate(
            input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
            **kwargs,
        )[:, width:].cpu()
        eos_ids = self._eos_ids()
        texts: list[list[str]] = [[] for _ in encoded]
        reasons: list[list[str]] = [[] for _ in encoded]
        counts: list[list[int]] = [[] for _ in encoded]
        for flat, row in enumerate(generated.tolist()):
            prompt_index = flat // per_prompt
            cut = next((k for k, tok in enumerate(row) if tok in eos_ids), None)
            kept = row if cut is None else row[:cut]
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            text, stopped = truncate_at_stop(text, params.stop)
            finished = cut is not None or stopped
            texts[prompt_index].append(text)
            reasons[prompt_index].append("stop" if finished else "length")
            counts[prompt_index].append(len(kept) + (1 if cut is not None else 0))
        repeat = params.n // per_prompt  # counts stay as generated: tokens actually decoded
        return [t * repeat for t in texts], [r * repeat for r in reasons], counts

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos) if isinstance(eos, list) else {eos} if eos is not None else set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    # -- loglikelihood ----------------------------------------------------
    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        """Score every continuation; contexts are run once and shared by their choices."""
        items: list[ScoringItem] = []
        for request in requests:
            context = self.render_chat(request) if request.messages is not None else request.text
            assert context is not None
            special = request.messages is None
            ctx, _ = _move_trailing_space(context, "")
            ctx_ids = self._encode(ctx, special)
            wholes = [self._encode(ctx + _move_trailing_space(context, c)[1], special)
                      for c in request.continuations]
            if not ctx_ids:  # a continuation scored whole (CrowS-Pairs)
                prefix = [empty_context_token(self.tokenizer)]
                ctx_ids, wholes = prefix, [prefix + w for w in wholes]
            items.append(ScoringItem(ctx_ids, wholes))
        started = time.perf_counter()
        try:
            scored = score_items(self.model, items, self.pad_id, self.max_length,
                                 self.batch_size, self.device, self.prefixes)
        except Exception as exc:
            return [
                Completion.failed(ErrorKind.BACKEND_CRASH, f"{type(exc).__name__}: {exc}")
                for _ in requests
            ]
        latency = time.perf_counter() - started
        return [
            Completion(
                loglikelihoods=tuple(c.logprob for c in choices),
                greedy_matches=tuple(c.greedy for c in choices),
                continuation_tokens=tuple(c.n_tokens for c in choices),
                prompt_tokens=len(item.context),
                latency_s=latency,
            )
            for item, choices in zip(items, scored, strict=True)
        ]

    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=add_special_tokens).input_ids


def empty_context_token(tokenizer: Any) -> int:
    """What an empty context is, so that a continuation's first token has something to
    be predicted from: the BOS token, or EOS when there is none (lm-evaluation-harness's
    rule, which its CrowS-Pairs numbers rest on)."""
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None \
        else tokenizer.eos_token_id
    if token is None:
        raise ValueError("the tokenizer has neither a BOS nor an EOS token to stand for "
                         "an empty context")
    return int(token)


def _move_trailing_space(context: str, continuation: str) -> tuple[str, str]:
    stripped = context.rstrip(" ")
    return stripped, context[len(stripped):] + continuation
