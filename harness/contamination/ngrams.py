"""N-gram overlap between benchmark items and a corpus (docs/beyond_accuracy.md).

The definition follows the GPT-3 report (Brown et al. 2020, appendix C): text is
lower-cased, punctuation is dropped, words are split on white space, and an item
is *dirty* when any of its 13-grams (all of it, when it is shorter than 13 words)
also occurs in the corpus. Like the Llama 2 report (Touvron et al. 2023, appendix
A.6), the share of the item's words that lie inside a matched n-gram is given too
(``coverage``), so a threshold on it can replace "any match".

Streaming and memory-bounded: only the items' n-grams are held (a set of tuples);
the corpus is read a document (JSONL) or a block of lines (text) at a time, and
each block's n-grams are intersected with that set in C (``set.intersection`` over
``zip`` of shifted word lists), never stored. Text files carry the last n-1 words
of a block into the next, so an n-gram across a line break is still seen.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_N = 13
_DROP = str.maketrans({c: " " for c in string.punctuation + "“”‘’—–…"})
TEXT_BLOCK_LINES = 2000  # lines of a text file read as one block


def words(text: str) -> list[str]:
    """Lower-cased, punctuation replaced by spaces, split on white space."""
    return text.lower().translate(_DROP).split()


def grams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    """The item's n-grams; an item shorter than n words is one n-gram of itself."""
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return set(zip(*(tokens[i:] for i in range(n)), strict=False))


@dataclass(frozen=True)
class ItemOverlap:
    sample_id: str
    n_words: int
    n_grams: int
    matched: int  # of the item's n-grams, how many the corpus has
    coverage: float  # share of the item's words inside a matched n-gram
    examples: tuple[str, ...]  # a few matched n-grams, for the audit trail

    @property
    def dirty(self) -> bool:
        return self.matched > 0


@dataclass(frozen=True)
class CorpusScan:
    files: tuple[str, ...]
    bytes_read: int
    documents: int
    seconds: float
    fingerprint: str  # of the files' paths, sizes and modification times


def open_text(path: Path) -> io.TextIOBase:
    """A corpus file as text, gunzipped when it ends in .gz; bad bytes replaced."""
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")  # noqa: SIM115  (the caller closes it)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


def corpus_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, and every .jsonl/.txt (optionally .gz) file under a folder."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and _kind(p) is not None)
        else:
            found.append(path)
    return found


def _kind(path: Path) -> str | None:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith((".txt", ".text")):
        return "text"
    return None


def fingerprint(files: list[Path]) -> str:
    parts = [f"{p.resolve()}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def blocks(path: Path, text_field: str, n: int) -> Iterator[list[str]]:
    """The file's word lists: one per JSONL document, one per block of text lines."""
    kind = _kind(path)
    with open_text(path) as handle:
        if kind == "jsonl":
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line).get(text_field)
                except (json.JSONDecodeError, AttributeError):
                    raise ValueError(f"{path}: line {number}: not a JSON object") from None
                if isinstance(value, str):
                    yield words(value)
            return
        carry: list[str] = []
        lines: list[str] = []
        for line in handle:
            lines.append(line)
            if len(lines) >= TEXT_BLOCK_LINES:
                block = carry + words("".join(lines))
                yield block
                carry, lines = block[-(n - 1):] if n > 1 else [], []
        if lines or carry:
            yield carry + words("".join(lines))


class OverlapIndex:
    """The items' n-grams, and which of them a corpus has."""

    def __init__(self, items: dict[str, str], n: int = DEFAULT_N) -> None:
        self.n = n
        self.tokens = {sample_id: words(text) for sample_id, text in items.items()}
        self.item_grams = {sample_id: grams(t, n) for sample_id, t in self.tokens.items()}
        self.all_grams: set[tuple[str, ...]] = set().union(*self.item_grams.values()) \
            if self.item_grams else set()
        # items shorter than n are matched as a whole (their one, shorter, gram)
        self.short_lengths = sorted({len(g) for g in self.all_grams if len(g) < n})
        self.found: set[tuple[str, ...]] = set()

    def scan(self, tokens: list[str]) -> None:
        for size in (self.n, *self.short_lengths):
            if len(tokens) >= size:
                self.found |= self.all_grams.intersection(
                    zip(*(tokens[i:] for i in range(size)), strict=False))

    def overlaps(self) -> list[ItemOverlap]:
        found = []
        for sample_id, item in self.item_grams.items():
            tokens = self.tokens[sample_id]
            matched = item & self.found
            covered = _covered(tokens, matched, self.n)
            found.append(ItemOverlap(sample_id, len(tokens), len(item), len(matched),
                                     covered / len(tokens) if tokens else 0.0,
                                     tuple(" ".join(g) for g in sorted(matched)[:3])))
        return found


def _covered(tokens: list[str], matched: set[tuple[str, ...]], n: int) -> int:
    if not matched:
        return 0
    if len(tokens) < n:
        return len(tokens)
    inside = [False] * len(tokens)
    for start in range(len(tokens) - n + 1):
        if tuple(tokens[start:start + n]) in matched:
            inside[start:start + n] = [True] * n
    return sum(inside)


def scan_corpus(index: OverlapIndex, paths: list[Path], text_field: str = "text") -> CorpusScan:
    """Stream every corpus file through the index."""
    import time

    started = time.perf_counter()
    files = corpus_files(paths)
    documents = 0
    if not files:
        raise ValueError("no .jsonl or .txt file (optionally .gz) among the corpus paths")
    for path in files:
        try:
            for tokens in blocks(path, text_field, index.n):
                index.scan(tokens)
                documents += 1
        except (OSError, EOFError) as exc:  # a truncated or corrupt .gz, an unreadable file
            raise ValueError(f"{path}: cannot be read ({exc})") from None
    if not documents:
        raise ValueError(f"no document in the corpus has a text field {text_field!r}")
    return CorpusScan(tuple(str(p) for p in files), sum(os.path.getsize(p) for p in files),
                      documents, time.perf_counter() - started, fingerprint(files))
