"""Validation of the contamination checks (docs/beyond_accuracy.md), on real parts.

1. N-gram overlap: a synthetic corpus of random text (words drawn from the items' own
   vocabulary and a list of random words, so the corpus shares the items' words) with
   50 of the run's items planted verbatim inside its documents, and 12-word fragments
   of the other items planted too (one word short of an n-gram: they must not count).
   `evalarena contamination ngrams` must flag exactly the 50.
2. Speed: the same check over a ~1 GB text corpus (``--gigabytes``), timed.
3. Membership: the embedded model's Min-K%++ on the 100 items (50 to be "seen", 50
   not) gives an AUROC near 0.5; the model is then fine-tuned on the 50 for a few
   steps on this CPU and scored again through `evalarena contamination membership
   --model hf:DIR`; the AUROC after must be >= 0.9. Min-K% and the perturbation gap
   are reported too.

The run is the embedded model on HellaSwag's 100 items (transformers, ~2 min), made
here unless ``--db`` and ``--run`` name one.

    .venv/bin/python benchmarks/contamination_validation.py
    .venv/bin/python benchmarks/contamination_validation.py --gigabytes 0.1 --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.backends import load_backend
from harness.backends.embedded import converted_model_dir
from harness.contamination import auroc_ci, item_texts, words
from harness.runner import execute, plan_run
from harness.store import Store

SEEN = 50


def _cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, check=False, env={**os.environ, "COLUMNS": "200"})
    if done.returncode != 0:
        sys.exit(f"evalarena {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def _random_words(rng: random.Random, count: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(count)]


def plant_corpus(path: Path, texts: dict[str, str], planted: list[str], seed: int) -> None:
    rng = random.Random(seed)
    invented = _random_words(rng, 5000)
    vocabulary = sorted({w for t in texts.values() for w in words(t)}) + invented
    with path.open("w", encoding="utf-8") as corpus:
        for number in range(20_000):
            body = rng.choices(vocabulary, k=rng.randint(40, 200))
            corpus.write(json.dumps({"id": number, "text": " ".join(body)}) + "\n")
        for sample_id, text in texts.items():
            tokens = words(text)  # as the check counts words: "gerbil's" is two
            if sample_id in planted:  # verbatim, inside a random document
                inside = text
            else:  # a 12-word fragment: one short of a 13-gram
                start = rng.randrange(max(1, len(tokens) - 12))
                inside = " ".join(tokens[start:start + 12])
            # invented words around a plant: an item word next to a fragment could make it
            # a 13-gram by chance (about 1 in 4,000 per side)
            around = rng.choices(invented, k=60)
            corpus.write(json.dumps({"text": " ".join(around[:30]) + " " + inside + " "
                                     + " ".join(around[30:])}) + "\n")


def big_corpus(path: Path, gigabytes: float, seed: int) -> None:
    rng = random.Random(seed)
    vocabulary = _random_words(rng, 50_000)
    target = int(gigabytes * 1e9)
    with path.open("w", encoding="utf-8") as corpus:
        while corpus.tell() < target:
            corpus.write("\n".join(" ".join(rng.choices(vocabulary, k=100))
                                   for _ in range(1000)) + "\n")


def fine_tune(texts: list[str], out: Path, steps: int, lr: float, seed: int) -> float:
    """A few steps of full fine-tuning of the embedded model on ``texts`` (CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    source = converted_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    order = random.Random(seed)
    started = time.perf_counter()
    for _ in range(steps):
        batch = order.sample(texts, 10)
        encoded = tokenizer([tokenizer.bos_token + t for t in batch], return_tensors="pt",
                            padding=True, add_special_tokens=False)
        labels = encoded.input_ids.masked_fill(encoded.attention_mask == 0, -100)
        loss = model(**encoded, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return time.perf_counter() - started


def _aurocs(db: Path, run_id: str, seen: set[str]) -> dict[str, tuple[float, float, float]]:
    with Store(db) as store:
        signals = store.signals(run_id, "membership")
    found = {}
    for name, pick in (("min_k_pp", lambda s: s.value), ("min_k", lambda s: s.detail["min_k"]),
                       ("gap", lambda s: s.detail["gap"])):
        positives = [pick(s) for s in signals if s.sample_id in seen]
        negatives = [pick(s) for s in signals if s.sample_id not in seen]
        found[name] = auroc_ci(positives, negatives)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--run", default=None)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db, run_id = args.db, args.run
        if db is None or run_id is None:
            db = work / "v.db"
            plan = plan_run("hellaswag", "smollm2-135m")
            with Store(db) as store:
                execute(store, plan, lambda: load_backend(plan.model))
            run_id = plan.run_id
        with Store(db) as store:
            texts = item_texts(store, store.get_run(run_id))
        ids = sorted(texts)
        planted = sorted(random.Random(args.seed).sample(ids, SEEN))

        corpus = work / "planted.jsonl"
        plant_corpus(corpus, texts, planted, args.seed)
        print(_cli("contamination", "ngrams", run_id, "--corpus", str(corpus), "--db",
                   str(db)).strip())
        with Store(db) as store:
            flagged = sorted(s.sample_id for s in store.signals(run_id, "ngram") if s.flagged)
        print(f"n-gram: planted {len(planted)} of {len(ids)}, flagged {len(flagged)}, "
              f"flagged == planted: {flagged == planted}")

        if args.gigabytes > 0:
            big = work / "random.txt"
            big_corpus(big, args.gigabytes, args.seed)
            print("1 GB-scale scan: " + _cli("contamination", "ngrams", run_id, "--corpus",
                                              str(big), "--db", str(db)).strip())

        seen = set(planted)
        _cli("contamination", "membership", run_id, "--model", "smollm2-135m", "--db", str(db))
        before = _aurocs(db, run_id, seen)
        tuned = work / "tuned"
        seconds = fine_tune([texts[i] for i in planted], tuned, args.steps, args.lr, args.seed)
        _cli("contamination", "membership", run_id, "--model", f"hf:{tuned}", "--db", str(db))
        after = _aurocs(db, run_id, seen)
        print(f"fine-tune: {args.steps} steps of 10 texts, lr {args.lr}, {seconds:.0f} s on CPU")
        for name in before:
            b, a = before[name], after[name]
            print(f"AUROC {name:9s} before {b[0]:.3f} [{b[1]:.3f}, {b[2]:.3f}]  after "
                  f"{a[0]:.3f} [{a[1]:.3f}, {a[2]:.3f}]")
        ok = flagged == planted and after["min_k_pp"][0] >= 0.9
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
