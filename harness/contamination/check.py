"""Contamination checks of a stored run's items, and their report, from the database
(docs/beyond_accuracy.md). Each check stores one signal per item, with a flag:

- ``ngram``: the item's n-gram overlap with a corpus (ngrams.py); flagged when any
  n-gram matches (GPT-3's "dirty") and the matched words cover at least
  ``min_coverage`` of the item;
- ``membership``: the model's Min-K%++ score of the item (membership.py) when the model
  runs in process, its Min-K% from an OpenAI-compatible server's token log-probabilities
  otherwise (``params.score`` says which), with the score of the item with typos (the
  perturbation gap) kept beside it; flagged only above a ``threshold`` the user
  calibrated (no threshold holds for every model).

The item's text is what a training corpus would hold of it: the data fields its
prompt shows (as perturbations choose them) and its reference answer.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.backends.base import Backend
from harness.contamination import membership
from harness.contamination.ngrams import DEFAULT_N, OverlapIndex, scan_corpus
from harness.errors import EvalarenaError, InputError
from harness.perturb.text import typos
from harness.stats.bootstrap import bootstrap_mean_ci
from harness.store import RunRecord, Signal, Store
from harness.suites.config import SuiteConfig
from harness.suites.perturbed import prompt_fields

GAP_TYPO_RATE = 0.05  # the edit behind the perturbation gap


def item_texts(store: Store, run: RunRecord) -> dict[str, str]:
    """Per sample id: the prompt's data fields, then the reference answer."""
    config = SuiteConfig.model_validate(run.manifest["suite"]["config"])
    samples = [s.sample for s in store.run_samples(run.id)]
    fields = prompt_fields(config, [s.doc for s in samples])
    texts = {}
    for sample in samples:
        parts = [str(sample.doc[f]) for f in fields if isinstance(sample.doc.get(f), str)]
        if isinstance(sample.target, int) and sample.choices:
            parts.append(sample.choices[sample.target])
        elif sample.target not in (None, ""):
            parts.append(str(sample.target))
        texts[sample.id] = "\n".join(parts)
    return texts


def ngram_check(store: Store, run_id: str, corpus: list[Path], *, n: int = DEFAULT_N,
                text_field: str = "text", min_coverage: float = 0.0) -> dict[str, Any]:
    run = store.get_run(run_id)
    for path in corpus:
        if not path.exists():
            raise InputError("--corpus", str(path), "no such file or folder")
    index = OverlapIndex(item_texts(store, run), n)
    try:
        scan = scan_corpus(index, corpus, text_field)
    except ValueError as exc:
        raise InputError("--corpus", None, str(exc)) from None
    signals = [Signal(o.sample_id, o.coverage, o.dirty and o.coverage >= min_coverage,
                      {"matched": o.matched, "n_grams": o.n_grams, "words": o.n_words,
                       "examples": list(o.examples)}) for o in index.overlaps()]
    params = {"files": list(scan.files), "fingerprint": scan.fingerprint, "n": n,
              "text_field": text_field, "min_coverage": min_coverage}
    summary = {"bytes": scan.bytes_read, "documents": scan.documents,
               "seconds": round(scan.seconds, 3), "items": len(signals),
               "flagged": sum(s.flagged for s in signals)}
    store.save_check(run.id, "ngram", params, summary, signals)
    return summary


def membership_check(store: Store, run_id: str, backend: Backend, *,
                     k: float = membership.DEFAULT_K, threshold: float | None = None,
                     seed: int = 0) -> dict[str, Any]:
    """Min-K%++ with a model in process (the whole next-token distribution), Min-K% from
    a server's echoed token log-probabilities; an item whose text a server could not
    score gets no signal and is counted among the errors, by kind."""
    in_process = hasattr(backend, "tokenizer") and hasattr(backend, "model")
    if not in_process and not hasattr(backend, "token_logprobs"):
        raise InputError("--model", backend.model_id, "this backend returns no token "
                         "log-probabilities: use a model in process (smollm2-135m, hf:PATH) "
                         "or an OpenAI-compatible server with echo + logprobs (vLLM)")
    run = store.get_run(run_id)
    texts = item_texts(store, run)
    ids = list(texts)
    edited = [typos(texts[i], random.Random(f"{seed}:{i}"), GAP_TYPO_RATE) for i in ids]
    score_name = "min_k_pp" if in_process else "min_k"
    scored = _scores(backend, [texts[i] for i in ids], k, in_process)
    perturbed = _scores(backend, edited, k, in_process)
    signals: list[Signal] = []
    errors: dict[str, int] = {}
    for sample_id, mine, other in zip(ids, scored, perturbed, strict=True):
        if isinstance(mine, str) or isinstance(other, str):
            kind = str(mine if isinstance(mine, str) else other)
            errors[kind] = errors.get(kind, 0) + 1
            continue
        (score, raw, tokens), (edited_score, _, _) = mine, other
        signals.append(Signal(sample_id, score, threshold is not None and score > threshold,
                              {"min_k": raw, "perturbed": edited_score,
                               "gap": score - edited_score, "tokens": tokens}))
    if not signals:  # nothing to store: say why instead of saving an empty check
        counts = ", ".join(f"{kind} {n}" for kind, n in errors.items())
        raise EvalarenaError(f"no item could be scored ({counts}); nothing was stored")
    params = {"model": backend.model_id, "score": score_name, "k": k, "threshold": threshold,
              "gap_typo_rate": GAP_TYPO_RATE, "seed": seed}
    summary = {"items": len(signals), "flagged": sum(s.flagged for s in signals),
               "errors": errors}
    store.save_check(run.id, "membership", params, summary, signals)
    return summary


def _scores(backend: Any, texts: list[str], k: float, in_process: bool
            ) -> list[tuple[float, float, int] | str]:
    """Per text: (the score, Min-K%, tokens scored), or the kind of error that stopped it."""
    if in_process:
        from harness.backends.hf_tokens import token_statistics

        found: list[tuple[float, float, int] | str] = []
        for stats in token_statistics(backend, texts):
            tokens = membership.TokenStatistics(*map(tuple, stats))
            score = membership.min_k_plus_plus(tokens, k)
            found.append("empty" if math.isnan(score) else
                         (score, membership.min_k(tokens, k), len(tokens.logprobs)))
        return found
    found = []
    for result in backend.token_logprobs(texts):
        if isinstance(result, list) and result:
            tokens = membership.TokenStatistics(tuple(result), (), ())
            value = membership.min_k(tokens, k)
            found.append((value, value, len(result)))
        else:
            found.append(result.kind.value if not isinstance(result, list) else "empty")
    return found


@dataclass(frozen=True)
class Split:
    metric: str
    clean: tuple[float, float, float, int]  # mean, low, high, n over unflagged items
    flagged: tuple[float, float, float, int]


@dataclass(frozen=True)
class CheckReport:
    method: str
    params: dict[str, Any]
    summary: dict[str, Any]
    flagged_share: tuple[float, float, float, int]
    splits: list[Split]
    mean_signal: tuple[float, float, float, int]
    mean_gap: tuple[float, float, float, int] | None  # membership: score minus perturbed


def contamination_report(store: Store, run_id: str, seed: int = 0) -> tuple[RunRecord,
                                                                           list[CheckReport]]:
    run = store.get_run(run_id)
    checks = store.checks(run.id)
    if not checks:
        raise InputError("RUN", run.id, "has no contamination check; run `evalarena "
                         "contamination ngrams` or `membership` first")
    scores: dict[str, dict[str, float]] = {}
    for row in store.scores(run.id):
        scores.setdefault(row.metric, {})[row.sample_id] = row.value
    reports = []
    for check in checks:
        signals = store.signals(run.id, check.method)
        flags = {s.sample_id: s.flagged for s in signals}
        splits = []
        for metric, values in scores.items():
            parts = ([v for i, v in values.items() if not flags.get(i, False)],
                     [v for i, v in values.items() if flags.get(i, False)])
            splits.append(Split(metric, _mean(parts[0], seed), _mean(parts[1], seed)))
        gaps = [s.detail["gap"] for s in signals if "gap" in s.detail]
        reports.append(CheckReport(
            check.method, check.params, check.summary,
            _mean([float(s.flagged) for s in signals], seed), splits,
            _mean([s.value for s in signals], seed), _mean(gaps, seed) if gaps else None))
    return run, reports


def _mean(values: list[float], seed: int) -> tuple[float, float, float, int]:
    if not values:
        return float("nan"), float("nan"), float("nan"), 0
    mean, low, high = bootstrap_mean_ci(values, seed=seed)
    return mean, low, high, len(values)
