"""Battle outcomes aggregated per (model_a, model_b) pair.

Every rating fit downstream (Bradley-Terry, sandwich errors, bootstrap) only
needs, for each pair of models, how often each side won and how often they
tied. Aggregating once up front makes the cost of everything after it grow
with the number of model *pairs* (at most a few thousand for an arena) instead
of the number of battles (millions).

A battle is ``(model_a, model_b, outcome)`` with outcome one of ``"a"``,
``"b"``, ``"tie"`` or ``"tie_bad"``; both tie kinds count as ties ("both good"
and "both bad" say the same thing about the *relative* strength). Pairs are
kept ordered (a, b) as they were shown, so position effects stay inspectable;
:meth:`BattleCounts.unordered` merges (a, b) with (b, a) for fitting.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

OUTCOMES = ("a", "b", "tie", "tie_bad")
Battle = tuple[str, str, str]

# Above this many possible ordered pairs, aggregate with a sort instead of a
# dense bincount table (which would cost n_models**2 memory).
_DENSE_PAIR_LIMIT = 10_000_000


def _readonly(values: object, dtype: type) -> np.ndarray:
    out: np.ndarray = np.array(values, dtype=dtype).reshape(-1)
    out.flags.writeable = False
    return out


def _integral(col: np.ndarray | list) -> bool:
    if isinstance(col, np.ndarray):
        return bool(np.issubdtype(col.dtype, np.integer))
    return bool(col) and isinstance(col[0], int | np.integer)


def encode_models(
    model_a: Sequence[str] | np.ndarray,
    model_b: Sequence[str] | np.ndarray,
    models: Sequence[str] | None = None,
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Name -> index mapping: (model names, index of a, index of b).

    Names default to the sorted distinct names. Integer arrays are taken as
    indices into ``models`` (which is then required). Strings are mapped
    through a dict (a C-level ``map``), which for millions of battles is ~5x
    faster than ``np.unique`` on unicode arrays (a sort of wide strings).
    """
    cols = [x.reshape(-1) if isinstance(x, np.ndarray) else list(x) for x in (model_a, model_b)]
    if len(cols[0]) != len(cols[1]):
        raise ValueError("model_a and model_b must have the same length")
    if _integral(cols[0]) and _integral(cols[1]):
        if models is None:
            raise ValueError("integer model arrays need the `models` names")
        names = tuple(models)
        a_idx, b_idx = (np.asarray(c, dtype=np.int64) for c in cols)
    else:
        lists = [c.astype(str).tolist() if isinstance(c, np.ndarray) else c for c in cols]
        if models is None:
            names = tuple(sorted(str(n) for n in set(lists[0]).union(lists[1])))
        else:
            names = tuple(str(m) for m in models)
        pos = {name: i for i, name in enumerate(names)}
        try:
            a_idx, b_idx = (
                np.fromiter(map(pos.__getitem__, col), dtype=np.int64, count=len(col))
                for col in lists
            )
        except KeyError as exc:
            raise ValueError(f"battles mention model {exc.args[0]!r} not in `models`") from None
    m = len(names)
    if a_idx.size and (min(a_idx.min(), b_idx.min()) < 0 or max(a_idx.max(), b_idx.max()) >= m):
        raise ValueError("model index out of range of `models`")
    return names, a_idx, b_idx


def outcome_masks(
    outcome: Sequence[str] | np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks (a won, b won, tie of either kind) for an outcome array."""
    out = np.asarray(outcome).astype(str).reshape(-1)
    if len(out) != n:
        raise ValueError("outcome must have one entry per battle")
    is_a, is_b = out == "a", out == "b"
    is_t = (out == "tie") | (out == "tie_bad")
    bad = ~(is_a | is_b | is_t)
    if bad.any():
        examples = sorted(set(out[bad][:20].tolist()))
        raise ValueError(f"unknown battle outcome(s) {examples}; expected one of {OUTCOMES}")
    return is_a, is_b, is_t


@dataclass(frozen=True)
class BattleCounts:
    """Win/loss/tie counts per (model_a, model_b) pair; arrays are read-only.

    ``pair_a``/``pair_b`` index into ``models``; counts are floats so that
    weighted or merged data fit the same type. Models may appear in ``models``
    without any battle: they still get a (prior-only) rating and a warning.
    A pair may occur in several rows (e.g. the length-bin cells of
    :func:`~.style.style_counts`); every consumer sums over rows.
    """

    models: tuple[str, ...]
    pair_a: np.ndarray
    pair_b: np.ndarray
    wins_a: np.ndarray
    wins_b: np.ndarray
    ties: np.ndarray

    def __post_init__(self) -> None:
        models = tuple(str(m) for m in self.models)
        if len(set(models)) != len(models):
            raise ValueError("BattleCounts.models contains duplicate names")
        object.__setattr__(self, "models", models)
        for name, dtype in (
            ("pair_a", np.int64),
            ("pair_b", np.int64),
            ("wins_a", np.float64),
            ("wins_b", np.float64),
            ("ties", np.float64),
        ):
            object.__setattr__(self, name, _readonly(getattr(self, name), dtype))
        sizes = {len(getattr(self, f)) for f in ("pair_a", "pair_b", "wins_a", "wins_b", "ties")}
        if len(sizes) != 1:
            raise ValueError("BattleCounts arrays must all have the same length")
        m = len(models)
        for idx in (self.pair_a, self.pair_b):
            if idx.size and (idx.min() < 0 or idx.max() >= m):
                raise ValueError("BattleCounts pair index out of range of models")
        if np.any(self.pair_a == self.pair_b):
            raise ValueError("a model cannot battle itself (pair_a == pair_b)")
        for counts in (self.wins_a, self.wins_b, self.ties):
            if not np.all(np.isfinite(counts)) or np.any(counts < 0):
                raise ValueError("battle counts must be finite and non-negative")

    # ----------------------------------------------------------------- views
    @property
    def n_models(self) -> int:
        return len(self.models)

    @property
    def n(self) -> np.ndarray:
        """Battles per pair."""
        return self.wins_a + self.wins_b + self.ties

    @property
    def total(self) -> float:
        """Total number of battles."""
        return float(self.n.sum())

    @property
    def n_battles(self) -> np.ndarray:
        """Battles per model (each battle counts for both of its models)."""
        n = self.n
        m = self.n_models
        return (np.bincount(self.pair_a, n, m) + np.bincount(self.pair_b, n, m)).astype(float)

    def index(self, model: str) -> int:
        return self.models.index(model)

    def unordered(self) -> BattleCounts:
        """Merge (a, b) and (b, a) into one pair with a < b and drop empty pairs.

        Bradley-Terry has no position term, so this loses nothing for fitting
        and halves the work for arenas that show both orders.
        """
        m = self.n_models
        swap = self.pair_a > self.pair_b
        lo = np.where(swap, self.pair_b, self.pair_a)
        hi = np.where(swap, self.pair_a, self.pair_b)
        wa = np.where(swap, self.wins_b, self.wins_a)
        wb = np.where(swap, self.wins_a, self.wins_b)
        code, inv = np.unique(lo * m + hi, return_inverse=True)
        k = len(code)
        out = BattleCounts(
            models=self.models,
            pair_a=code // m,
            pair_b=code % m,
            wins_a=np.bincount(inv, wa, k),
            wins_b=np.bincount(inv, wb, k),
            ties=np.bincount(inv, self.ties, k),
        )
        keep = out.n > 0
        if keep.all():
            return out
        return BattleCounts(
            self.models,
            out.pair_a[keep],
            out.pair_b[keep],
            out.wins_a[keep],
            out.wins_b[keep],
            out.ties[keep],
        )

    # ---------------------------------------------------------- constructors
    @classmethod
    def from_battles(
        cls, battles: Iterable[Battle], models: Sequence[str] | None = None
    ) -> BattleCounts:
        """Aggregate an iterable of ``(model_a, model_b, outcome)`` tuples.

        ``models`` fixes the model order and may include models without
        battles; by default the models seen are sorted by name.
        """
        table: dict[tuple[str, str], list[float]] = {}
        slot = {"a": 0, "b": 1, "tie": 2, "tie_bad": 2}
        for model_a, model_b, outcome in battles:
            try:
                i = slot[outcome]
            except KeyError:
                raise ValueError(
                    f"unknown battle outcome {outcome!r}; expected one of {OUTCOMES}"
                ) from None
            row = table.get((model_a, model_b))
            if row is None:
                row = table[(model_a, model_b)] = [0.0, 0.0, 0.0]
            row[i] += 1.0
        if models is None:
            models = sorted({m for pair in table for m in pair})
        pos = {m: i for i, m in enumerate(models)}
        missing = {m for pair in table for m in pair} - pos.keys()
        if missing:
            raise ValueError(f"battles mention models not in `models`: {sorted(missing)}")
        keys = list(table)
        rows = np.array([table[k] for k in keys], dtype=np.float64).reshape(-1, 3)
        return cls(
            models=tuple(models),
            pair_a=np.array([pos[a] for a, _ in keys], dtype=int),
            pair_b=np.array([pos[b] for _, b in keys], dtype=int),
            wins_a=rows[:, 0],
            wins_b=rows[:, 1],
            ties=rows[:, 2],
        )

    @classmethod
    def from_arrays(
        cls,
        model_a: Sequence[str] | np.ndarray,
        model_b: Sequence[str] | np.ndarray,
        outcome: Sequence[str] | np.ndarray,
        models: Sequence[str] | None = None,
    ) -> BattleCounts:
        """Aggregate column arrays (the fast path for millions of battles).

        ``model_a``/``model_b`` hold names, or integer indices into
        ``models`` (then ``models`` is required). ``outcome`` holds the strings
        of :data:`OUTCOMES`.
        """
        names, a_idx, b_idx = encode_models(model_a, model_b, models)
        is_a, is_b, is_t = outcome_masks(outcome, len(a_idx))
        m = len(names)
        code = a_idx * m + b_idx
        if m * m <= _DENSE_PAIR_LIMIT:
            pairs = np.flatnonzero(np.bincount(code, minlength=m * m))
            slot = np.zeros(m * m, dtype=np.int64)
            slot[pairs] = np.arange(len(pairs))
            inv, k = slot[code], len(pairs)
        else:
            pairs, inv = np.unique(code, return_inverse=True)
            k = len(pairs)
        return cls(
            models=names,
            pair_a=pairs // m,
            pair_b=pairs % m,
            wins_a=np.bincount(inv, is_a, k),
            wins_b=np.bincount(inv, is_b, k),
            ties=np.bincount(inv, is_t, k),
        )
