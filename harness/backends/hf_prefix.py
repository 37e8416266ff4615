"""Key/value caches of prompt prefixes that many requests share, kept across backend calls.

A 5-shot MMLU prompt is mostly its five examples, and with ``fewshot.sampler:
first`` every question of a subject starts with the same examples. The runner
sorts a run's requests by size and cuts fixed batches, so a subject's
questions are spread over the whole run, rarely in one batch. So the scorer
keeps, across its calls, a small least-recently-used store of context key/value
states and runs only what follows the longest stored prefix a new context
starts with.

What is stored, without knowing where a prompt's shared part ends: the whole
context of a scored item. A later context reuses the stored context it shares
the most leading tokens with, when that is at least ``min_tokens`` and at least
half of the new context (an MMLU question of the same subject shares its
preamble and five examples, ~80% of its tokens); it then runs only the rest.
Otherwise it runs in full and is stored as well: an MMLU item that is itself
among its subject's first five rows has other examples, and sharing just the
first example with such an item must not be all the rest of the subject gets.
Entries are found through their first ``min_tokens`` tokens. The store is
bounded by bytes; the least recently used entries go first.

Exactness: the states are the model's own for those tokens (float32 on CPU),
so a context run on top of them gives what a full pass gives, up to the order
of floating-point sums (tests/backends/test_hf_backend.py checks |Δ logprob| <= 1e-5).
Only models whose cache is plain full-attention layers take part (no sliding
window, no linear attention): see ``supported``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

# a shared prefix shorter than this is not worth a separate pass
MIN_PREFIX_TOKENS = 64

LayerStates = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [1, H, T, D]


@dataclass(frozen=True)
class PrefixEntry:
    tokens: list[int]
    states: LayerStates

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self.states)


class PrefixCache:
    def __init__(self, max_bytes: int, min_tokens: int = MIN_PREFIX_TOKENS) -> None:
        self.max_bytes = max_bytes
        self.min_tokens = min_tokens
        self._entries: OrderedDict[int, PrefixEntry] = OrderedDict()  # least recent first
        self._by_key: dict[tuple[int, ...], list[int]] = {}
        self._next = 0
        self._bytes = 0
        self.hits = 0  # contexts that reused an entry (for tests and diagnostics)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, context: list[int]) -> tuple[int, ...] | None:
        return tuple(context[:self.min_tokens]) if len(context) > self.min_tokens else None

    def lookup(self, context: list[int]) -> tuple[PrefixEntry, int] | None:
        """The stored context that shares the most leading tokens with ``context``, and
        how many, when worth reusing (see the module docstring)."""
        key = self.key(context)
        best: tuple[int, int] | None = None  # (shared tokens, entry number)
        for number in self._by_key.get(key, []) if key is not None else []:
            tokens = self._entries[number].tokens
            common, limit = self.min_tokens, min(len(tokens), len(context))
            while common < limit and tokens[common] == context[common]:
                common += 1
            if best is None or common > best[0]:
                best = (common, number)
        if best is None or 2 * best[0] < len(context):
            return None
        self._entries.move_to_end(best[1])
        return self._entries[best[1]], best[0]

    def store(self, context: list[int], states: LayerStates) -> None:
        key = self.key(context)
        if key is None or not self.enabled:
            return
        entry = PrefixEntry(list(context), states)
        if entry.nbytes > self.max_bytes:
            return
        number, self._next = self._next, self._next + 1
        self._entries[number] = entry
        self._by_key.setdefault(key, []).append(number)
        self._bytes += entry.nbytes
        while self._bytes > self.max_bytes:
            old_number, old = self._entries.popitem(last=False)
            old_key = self.key(old.tokens)
            assert old_key is not None
            self._by_key[old_key].remove(old_number)
            if not self._by_key[old_key]:
                del self._by_key[old_key]
            self._bytes -= old.nbytes

    @staticmethod
    def supported(cache: object) -> bool:
        """Whether a model's output cache is plain full-attention layers we can copy."""
        layers = getattr(cache, "layers", None)
        return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)

    @staticmethod
    def row_states(cache: DynamicCache, row: int, start: int, end: int) -> LayerStates:
        """Copies of one row's states for columns ``start:end`` of a batched pass."""
        return [(layer.keys[row:row + 1, :, start:end].clone(),
                 layer.values[row:row + 1, :, start:end].clone()) for layer in cache.layers]

    @staticmethod
    def as_cache(entry: PrefixEntry, length: int, rows: int) -> DynamicCache:
        """A fresh cache holding the entry's first ``length`` tokens, once per row."""
        cache = DynamicCache()
        for index, (keys, values) in enumerate(entry.states):
            cache.update(keys[:, :, :length].expand(rows, -1, -1, -1).contiguous(),
                         values[:, :, :length].expand(rows, -1, -1, -1).contiguous(), index)
        return cache
