"""Log-likelihood of continuations on a local causal LM.

The expensive part of a multiple-choice question is its context (few-shot
examples, the question); the choices are a few tokens each. So each context is
run once, its key/value cache is copied to one row per choice, and only the
choices' own tokens are run on top of it. For one-token choices (MMLU's answer
letters) the context pass alone gives every answer.

Tokenisation follows the usual convention: the continuation's tokens are those
of ``encode(context + continuation)`` after ``len(encode(context))``. When that
prefix is not exactly ``encode(context)`` (a merge across the boundary) or the
text is longer than the model's window, the item is scored the plain way, one
full row per choice, left-truncated.

Contexts also share prefixes across items (5-shot MMLU: the subject's examples,
most of each prompt). With a ``PrefixCache`` (harness/backends/hf_prefix.py),
kept by the backend across calls, a context that shares its first 64 tokens,
and at least half of its tokens, with a stored context runs only its remaining
tokens, on a copy of the stored states; the others run as usual and are stored.
Within one call, of the contexts that share their first 64 tokens and have no
entry yet, one runs first and the others then look again. The items that reuse the
same entry run together (one pass per chunk of them); the runner's batches are
not changed, only how one call's items are computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.backends.hf_prefix import PrefixCache, PrefixEntry

# how many tokens one forward pass may hold (bounds memory with large vocabularies)
TOKEN_BUDGET = 16384
# below this, a context is cheaper to repeat per choice than to run as a second pass
MIN_SHARED_CONTEXT = 32
# On CPU a pass costs what its padded tokens cost, however they are split into
# rows, so rows are cut into separate passes where padding would exceed this
# share of the real tokens. (A GPU runs a wide batch for little more than a
# narrow one: there the rows stay together.)
MAX_PADDING_CPU = 0.1


@dataclass(frozen=True)
class ScoringItem:
    context: list[int]  # token ids of the context
    wholes: list[list[int]]  # token ids of context + each continuation

    def shareable(self, max_length: int) -> bool:
        n = len(self.context)
        return n >= MIN_SHARED_CONTEXT and all(
            len(w) > n and w[:n] == self.context and len(w) <= max_length for w in self.wholes
        )


@dataclass(frozen=True)
class ChoiceScore:
    logprob: float
    greedy: bool  # every continuation token is the argmax
    n_tokens: int


def score_items(model: torch.nn.Module, items: list[ScoringItem], pad_id: int,
                max_length: int, batch_size: int, device: torch.device,
                prefixes: PrefixCache | None = None) -> list[list[ChoiceScore]]:
    results: list[list[ChoiceScore] | None] = [None] * len(items)
    shared = [i for i, item in enumerate(items) if item.shareable(max_length)]
    plain = [i for i, item in enumerate(items) if not item.shareable(max_length)]
    # longest contexts first, so a batch holds similar lengths
    shared.sort(key=lambda i: -len(items[i].context))
    max_padding = MAX_PADDING_CPU if device.type == "cpu" else None
    store = prefixes if prefixes is not None and prefixes.enabled else None
    fresh, later = _split_by_prefix(items, shared, store)

    def run(indices: list[int], lengths: list[int], prefix: tuple[PrefixEntry, int] | None
            ) -> None:
        for start, end in _chunks(lengths, batch_size * 4, max_padding):
            chunk = indices[start:end]
            for i, scores in zip(chunk, _score_shared(
                    model, [items[i] for i in chunk], pad_id, device, prefix, store),
                    strict=True):
                results[i] = scores

    run(fresh, [len(items[i].context) for i in fresh], None)
    if later and store is not None:
        groups: dict[int, tuple[PrefixEntry, list[tuple[int, int]]]] = {}
        again = []  # shares too little with what this call stored: run in full (and stored)
        for i in later:
            found = store.lookup(items[i].context)
            if found is None:
                again.append(i)
            else:
                entry, common = found
                groups.setdefault(id(entry), (entry, []))[1].append((i, common))
        run(again, [len(items[i].context) for i in again], None)
        for entry, members in groups.values():
            # at least one token of every context runs, for its next-token distribution
            length = min([common for _, common in members]
                         + [len(items[i].context) - 1 for i, _ in members])
            store.hits += len(members)
            indices = sorted((i for i, _ in members), key=lambda i: -len(items[i].context))
            run(indices, [len(items[i].context) - length for i in indices], (entry, length))
    if plain:
        for i, scores in zip(plain, _score_plain(model, [items[i] for i in plain], pad_id,
                                                 max_length, batch_size, device), strict=True):
            results[i] = scores
    return [r for r in results if r is not None]


def _split_by_prefix(items: list[ScoringItem], shared: list[int], store: PrefixCache | None
                     ) -> tuple[list[int], list[int]]:
    """(run now, run on a stored prefix afterwards), each in ``shared``'s order."""
    if store is None:
        return shared, []
    fresh, later = [], []
    first_of_key: set[tuple[int, ...]] = set()
    for i in shared:
        context = items[i].context
        key = store.key(context)
        if store.lookup(context) is not None or (key is not None and key in first_of_key):
            later.append(i)
        else:
            fresh.append(i)
            if key is not None:
                first_of_key.add(key)
    return fresh, later


def _chunks(lengths: list[int], max_rows: int, max_padding: float | None
            ) -> list[tuple[int, int]]:
    """(start, end) slices of rows sorted longest first, one forward pass each: at most
    ``max_rows`` rows and TOKEN_BUDGET tokens, and with ``max_padding``, padded tokens
    at most that share above the real ones."""
    slices = []
    start = 0
    while start < len(lengths):
        width = lengths[start]
        stop = min(len(lengths), start + max(1, min(max_rows, TOKEN_BUDGET // max(width, 1))))
        end, real = start + 1, width
        while end < stop:
            padded = width * (end + 1 - start)  # this pass's tokens with one more row
            if max_padding is not None and padded > (1 + max_padding) * (real + lengths[end]):
                break
            real += lengths[end]
            end += 1
        slices.append((start, end))
        start = end
    return slices


def _left_padded(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, tokens in enumerate(rows):
        ids[row, width - len(tokens):] = torch.tensor(tokens)
        mask[row, width - len(tokens):] = 1
    return ids, mask


def _choice_score(logprobs: torch.Tensor, targets: list[int]) -> ChoiceScore:
    """``logprobs[k]`` is the distribution that predicts ``targets[k]``."""
    target = torch.tensor(targets, device=logprobs.device)
    picked = logprobs.gather(1, target[:, None]).squeeze(1)
    greedy = bool((logprobs.argmax(dim=-1) == target).all())
    return ChoiceScore(float(picked.sum()), greedy, len(targets))


@torch.inference_mode()
def _score_shared(model: torch.nn.Module, items: list[ScoringItem], pad_id: int,
                  device: torch.device, prefix: tuple[PrefixEntry, int] | None = None,
                  store: PrefixCache | None = None) -> list[list[ChoiceScore]]:
    """Each context once, its choices on copies of its cache. With ``prefix`` (an entry
    and how many of its tokens every context here starts with), only the rest of each
    context runs, on that entry's states; without, each context is offered to ``store``."""
    skip = 0 if prefix is None else prefix[1]
    ids, mask = _left_padded([item.context[skip:] for item in items], pad_id)
    past = None
    if prefix is not None:  # mask: the prefix, then each row's left padding and own tokens
        mask = torch.cat([torch.ones((len(items), skip), dtype=torch.long), mask], dim=1)
        past = PrefixCache.as_cache(prefix[0], skip, len(items))
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)[:, skip:]
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                position_ids=positions.to(device), past_key_values=past, use_cache=True,
                logits_to_keep=1)
    if prefix is None and store is not None and PrefixCache.supported(out.past_key_values):
        width = ids.shape[1]
        for b, item in enumerate(items):
            store.store(item.context, PrefixCache.row_states(
                out.past_key_values, b, width - len(item.context), width))
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # predicts each choice's 1st token
    conts = [[w[len(item.context):] for w in item.wholes] for item in items]
    rows = [(b, j) for b, choices in enumerate(conts) for j in range(len(choices))]
    longest = max(len(c) for choices in conts for c in choices)
    later: torch.Tensor | None = None
    if longest > 1:  # run the choices' remaining tokens on copies of the context cache
        cache = out.past_key_values
        cache.reorder_cache(torch.tensor([b for b, _ in rows], device=device))
        width = longest - 1
        tail = torch.full((len(rows), width), pad_id, dtype=torch.long)
        tail_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (b, j) in enumerate(rows):
            tokens = conts[b][j][:-1]
            if tokens:
                tail[r, :len(tokens)] = torch.tensor(tokens)
                tail_mask[r, :len(tokens)] = 1
        index = torch.tensor([b for b, _ in rows])
        full_mask = torch.cat([mask[index], tail_mask], dim=1)
        tail_positions = mask.sum(dim=1)[index][:, None] + torch.arange(width)[None, :]
        later = torch.log_softmax(model(
            input_ids=tail.to(device), attention_mask=full_mask.to(device),
            position_ids=tail_positions.to(device), past_key_values=cache, use_cache=True,
        ).logits.float(), dim=-1)
    scores: list[list[ChoiceScore]] = [[] for _ in items]
    for r, (b, j) in enumerate(rows):
        targets = conts[b][j]
        dists = first[b][None, :]
        if len(targets) > 1 and later is not None:
            dists = torch.cat([dists, later[r, :len(targets) - 1]], dim=0)
        scores[b].append(_choice_score(dists, targets))
    return scores


@torch.inference_mode()
def _score_plain(model: torch.nn.Module, items: list[ScoringItem], pad_id: int,
                 max_length: int, batch_size: int, device: torch.device
                 ) -> list[list[ChoiceScore]]:
    """One full row per choice; rows left-padded so continuations end in the last column."""
    pairs = []  # (item, choice, ids truncated to the window, continuation length)
    for i, item in enumerate(items):
        for j, whole in enumerate(item.wholes):
            n_cont = max(len(whole) - len(item.context), 1)
            ids = whole[-(max_length + 1):]
            pairs.append((i, j, ids, min(n_cont, len(ids) - 1)))
    pairs.sort(key=lambda p: -len(p[2]))
    scores: list[dict[int, ChoiceScore]] = [{} for _ in items]
    max_padding = MAX_PADDING_CPU if device.type == "cpu" else None
    for start, end in _chunks([len(p[2]) - 1 for p in pairs], batch_size * 4, max_padding):
        chunk = pairs[start:end]
        batch_ids, mask = _left_padded([p[2][:-1] for p in chunk], pad_id)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        keep = max(p[3] for p in chunk)
        logits = model(input_ids=batch_ids.to(device), attention_mask=mask.to(device),
                       position_ids=positions.to(device), logits_to_keep=keep).logits.float()
        for row, (i, j, tokens, n_cont) in enumerate(chunk):
            logprobs = torch.log_softmax(logits[row, keep - n_cont:], dim=-1)
            scores[i][j] = _choice_score(logprobs, tokens[-n_cont:])
    return [[s[j] for j in range(len(s))] for s in scores]
