"""Per-token statistics of a text under an in-process transformers model, for
membership scores (harness/contamination/membership.py): each token's
log-probability and the mean and standard deviation of log p(z) under the
next-token distribution it was drawn from. The text follows the BOS token (an empty
context, as multiple-choice scoring has it), so its first token is scored too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from harness.backends.hf import empty_context_token


def token_statistics(backend: Any, texts: Sequence[str]
                     ) -> list[tuple[list[float], list[float], list[float]]]:
    """(log-probabilities, means, standard deviations) per text, one pass each; texts
    longer than the model's context keep their first tokens."""
    model, tokenizer = backend.model, backend.tokenizer
    prefix = empty_context_token(tokenizer)
    found = []
    for text in texts:
        ids = [prefix, *tokenizer(text, add_special_tokens=False).input_ids][:backend.max_length]
        with torch.no_grad():
            logits = model(torch.tensor([ids], device=backend.device)).logits[0, :-1]
        # float64, and the variance as E[(log p - mu)^2]: a peaked distribution (a
        # memorised token) has a tiny sigma, which E[x^2] - mu^2 in float32 gets wrong
        logp = torch.log_softmax(logits.double(), dim=-1)
        probs = logp.exp()
        finite = torch.where(probs > 0, logp, torch.zeros_like(logp))  # 0 * -inf is 0 here
        mean = (probs * finite).sum(-1)
        std = (probs * (finite - mean[:, None]).square()).sum(-1).sqrt()
        actual = logp.gather(1, torch.tensor(ids[1:], device=logp.device)[:, None])[:, 0]
        found.append((actual.tolist(), mean.tolist(), std.tolist()))
    return found
