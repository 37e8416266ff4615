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

from harness.backends import ModelSpec
from harness.backends.base import Backend, truncate_at_stop
from harness.types import Completion, ErrorKind, GenerationParams, Request

# how many (context, continuation) tokens one loglikelihood forward pass may hold
_LL_TOKEN_BUDGET = 16384


class TransformersBackend(Backend):
    def __init__(
        self,
        model_path: str,
        model_id: str,
        *,
        dtype: str = "auto",
        device: str | None = None,
        batch_size: int = 8,
    ) -> None:
        self.model_id = model_id
        self.batch_size = batch_size
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
            spec.target,
            spec.identity,
            dtype=spec.options.get("dtype", "auto"),
            device=spec.options.get("device"),
            batch_size=spec.int_option("batch_size", 8),
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
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "num_return_sequences": params.n,
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
            prompt_index = flat // params.n
            cut = next((k for k, tok in enumerate(row) if tok in eos_ids), None)
            kept = row if cut is None else row[:cut]
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            text, stopped = truncate_at_stop(text, params.stop)
            finished = cut is not None or stopped
            texts[prompt_index].append(text)
            reasons[prompt_index].append("stop" if finished else "length")
            counts[prompt_index].append(len(kept) + (1 if cut is not None else 0))
        return texts, reasons, counts

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos) if isinstance(eos, list) else {eos} if eos is not None else set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    # -- loglikelihood ----------------------------------------------------
    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        pairs: list[tuple[int, int, list[int], int]] = []  # (request, choice, ids, n_cont)
        encoded_prompts: list[int] = []
        for r_index, request in enumerate(requests):
            context = self.render_chat(request) if request.messages is not None else request.text
            assert context is not None
            special = request.messages is None
            ctx_ids = self._encode(context, special)
            encoded_prompts.append(len(ctx_ids))
            for c_index, continuation in enumerate(request.continuations):
                ctx, cont = _move_trailing_space(context, continuation)
                ctx_ids = self._encode(ctx, special)
                whole = self._encode(ctx + cont, special)
                n_cont = max(len(whole) - len(ctx_ids), 1)
                pairs.append((r_index, c_index, whole[-(self.max_length + 1):], n_cont))
        started = time.perf_counter()
        try:
            scored = self._score_pairs(pairs)
        except Exception as exc:
            return [
                Completion.failed(ErrorKind.BACKEND_CRASH, f"{type(exc).__name__}: {exc}")
                for _ in requests
            ]
        latency = time.perf_counter() - started
        out = []
        for r_index, request in enumerate(requests):
            picks = [scored[(r_index, c)] for c in range(len(request.continuations))]
            out.append(Completion(
                loglikelihoods=tuple(p[0] for p in picks),
                greedy_matches=tuple(p[1] for p in picks),
                continuation_tokens=tuple(p[2] for p in picks),
                prompt_tokens=encoded_prompts[r_index],
                latency_s=latency,
            ))
        return out

    def _encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=add_special_tokens).input_ids

    @torch.inference_mode()
    def _score_pairs(
        self, pairs: list[tuple[int, int, list[int], int]]
    ) -> dict[tuple[int, int], tuple[float, bool, int]]:
        """Sum of continuation token log-probs.

        Rows are left-padded so every continuation ends at the last column; the
        model then projects only the last few positions onto the vocabulary
        (``logits_to_keep``) instead of every position, which is most of the
        cost with a large vocabulary. Longest rows first packs batches tightly.
        """
        order = sorted(range(len(pairs)), key=lambda k: -len(pairs[k][2]))
        scored: dict[tuple[int, int], tuple[float, bool, int]] = {}
        start = 0
        while start < len(order):
            width = len(pairs[order[start]][2]) - 1
            size = max(1, min(self.batch_size * 4, _LL_TOKEN_BUDGET // max(width, 1)))
            chunk = order[start:start + size]
            start += size
            inputs = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, k in enumerate(chunk):
                ids = pairs[k][2][:-1]
                inputs[row, width - len(ids):] = torch.tensor(ids)
                attention[row, width - len(ids):] = 1
            positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
            keep = max(min(pairs[k][3], len(pairs[k][2]) - 1) for k in chunk)
            logits = self.model(
                input_ids=inputs.to(self.device), attention_mask=attention.to(self.device),
                position_ids=positions.to(self.device), logits_to_keep=keep,
            ).logits.float()
            for row, k in enumerate(chunk):
                _, _, ids, n_cont = pairs[k]
                n_cont = min(n_cont, len(ids) - 1)
                logprobs = torch.log_softmax(logits[row, keep - n_cont:], dim=-1)
                targets = torch.tensor(ids[-n_cont:], device=logprobs.device)
                picked = logprobs.gather(1, targets[:, None]).squeeze(1)
                greedy = bool((logprobs.argmax(dim=-1) == targets).all())
                scored[(pairs[k][0], pairs[k][1])] = (float(picked.sum()), greedy, n_cont)
        return scored


def _move_trailing_space(context: str, continuation: str) -> tuple[str, str]:
    stripped = context.rstrip(" ")
    return stripped, context[len(stripped):] + continuation
