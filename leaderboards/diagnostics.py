"""When does the data pin the ratings down, and who is affected when it does not?

The Bradley-Terry maximum-likelihood estimate exists and is unique exactly when
the "scored against" graph is strongly connected (Zermelo 1929; Ford 1957):
draw an edge i -> j whenever i won or tied at least once against j. Otherwise
some ratings run off to +/- infinity (a model that never lost, a group that
never lost to another group) or float freely (separate components, models with
no battles). The fits stay finite through a weak Gaussian prior; this module
finds the affected models so the result can say so instead of silently
reporting prior-driven numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .battles import BattleCounts


def _names(models: tuple[str, ...], limit: int = 10) -> str:
    shown = ", ".join(models[:limit])
    more = len(models) - limit
    return f"{shown}, … and {more} more" if more > 0 else shown


@dataclass(frozen=True)
class Diagnosis:
    """Structural problems of a battle set, each listing the models involved."""

    no_battles: tuple[str, ...]
    never_won: tuple[str, ...]  # no win and no tie: MLE rating is -infinity
    never_lost: tuple[str, ...]  # no loss and no tie: MLE rating is +infinity
    components: tuple[tuple[str, ...], ...]  # weakly connected, models with battles
    unbounded_groups: tuple[tuple[str, ...], ...]  # strong components, when not explained above

    @property
    def well_posed(self) -> bool:
        """True when the unpenalised MLE exists and is unique."""
        return not (
            self.no_battles
            or self.never_won
            or self.never_lost
            or len(self.components) > 1
            or self.unbounded_groups
        )

    def messages(self, prior_sd: float | None) -> list[str]:
        """Human-readable warnings, one per problem."""
        why = (
            f"finite only because of the Gaussian prior (sd {prior_sd:g} points)"
            if prior_sd
            else "finite only because of the fallback prior"
        )
        out = []
        if self.no_battles:
            out.append(
                f"no battles: {_names(self.no_battles)} — rating is the pool mean "
                "(prior only); its interval reflects the prior, not data"
            )
        if self.never_won:
            out.append(
                f"never won or tied: {_names(self.never_won)} — the maximum-likelihood "
                f"rating is -infinity; the reported rating is {why}"
            )
        if self.never_lost:
            out.append(
                f"never lost or tied: {_names(self.never_lost)} — the maximum-likelihood "
                f"rating is +infinity; the reported rating is {why}"
            )
        if len(self.components) > 1:
            groups = "; ".join(f"[{_names(c, 5)}]" for c in self.components)
            out.append(
                f"comparison graph has {len(self.components)} disconnected components "
                f"({groups}) — each is centred on the pool mean by the prior; ratings "
                "across components are not comparable and intervals ignore the offset"
            )
        if self.unbounded_groups:
            groups = "; ".join(f"[{_names(c, 5)}]" for c in self.unbounded_groups)
            out.append(
                f"some groups never lost to (or never beat) another group ({groups}) — "
                f"the gaps between these groups are {why}"
            )
        return out


def diagnose(counts: BattleCounts) -> Diagnosis:
    """Check the battle graph for everything that breaks the plain MLE."""
    models = counts.models
    m = counts.n_models
    pairs = counts.unordered()
    a, b = pairs.pair_a, pairs.pair_b
    n_battles = pairs.n_battles
    # score = wins + ties; "lost" = the opponent scored
    scored = np.bincount(a, pairs.wins_a + pairs.ties, m) + np.bincount(
        b, pairs.wins_b + pairs.ties, m
    )
    conceded = np.bincount(a, pairs.wins_b + pairs.ties, m) + np.bincount(
        b, pairs.wins_a + pairs.ties, m
    )
    active = n_battles > 0
    never_won = active & (scored == 0)
    never_lost = active & (conceded == 0)

    ones = np.ones(len(a))
    undirected = coo_matrix((ones, (a, b)), shape=(m, m))
    _, weak = connected_components(undirected, directed=False)
    a_to_b = pairs.wins_a + pairs.ties > 0
    b_to_a = pairs.wins_b + pairs.ties > 0
    src = np.concatenate([a[a_to_b], b[b_to_a]])
    dst = np.concatenate([b[a_to_b], a[b_to_a]])
    directed = coo_matrix((np.ones(len(src)), (src, dst)), shape=(m, m))
    _, strong = connected_components(directed, directed=True, connection="strong")

    def groups(labels: np.ndarray) -> tuple[tuple[str, ...], ...]:
        out: dict[int, list[str]] = {}
        for i in np.flatnonzero(active):
            out.setdefault(int(labels[i]), []).append(models[i])
        return tuple(tuple(g) for g in sorted(out.values(), key=lambda g: (-len(g), g)))

    components = groups(weak)
    strong_groups = groups(strong)
    flagged = never_won | never_lost
    # A never-won / never-lost model is its own strong component; anything beyond
    # those plus one strong component per (partly unflagged) weak component is a
    # group-level separation that needs its own warning.
    unflagged_components = len({int(weak[i]) for i in np.flatnonzero(active & ~flagged)})
    explained = len(strong_groups) == int(flagged.sum()) + unflagged_components
    unbounded = (
        ()
        if explained
        else tuple(g for g in strong_groups if not (len(g) == 1 and flagged[models.index(g[0])]))
    )

    def pick(mask: np.ndarray) -> tuple[str, ...]:
        return tuple(models[i] for i in np.flatnonzero(mask))

    return Diagnosis(
        no_battles=pick(~active),
        never_won=pick(never_won),
        never_lost=pick(never_lost),
        components=components,
        unbounded_groups=unbounded,
    )
