"""Geometry for the site's plots: intervals with error bars, and coloured matrices.

The functions here only compute coordinates, colours and label texts; the
Jinja2 templates (``site_templates/_plots.html``) turn them into inline SVG.
Keeping names out of hand-built markup means every label goes through
Jinja2's autoescaping, and inline SVG needs no script, no font and no network,
so the published pages open from disk and are byte-for-byte reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

CHAR_W = 7.0  # approximate width of one label character at 12px, in SVG units
LABEL_CHARS = 28  # longer labels are cut with an ellipsis (the full name is the tooltip)


def short(label: str, limit: int = LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def nice_ticks(low: float, high: float, target: int = 6) -> list[float]:
    """Round tick positions (1, 2 or 5 × 10^k apart) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(target - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [round(k * step, 10) for k in range(first, last + 1)]


def _fmt_tick(value: float) -> str:
    return f"{value:g}"


def interval_plot(rows: Sequence[dict[str, Any]], *, digits: int = 1, width: int = 720,
                  row_h: int = 24, axis_label: str = "rating") -> dict[str, Any]:
    """Dot-and-whisker geometry: one row per item (``label``, ``value``, ``low``, ``high``).

    Optional per row: ``href`` (link the label), ``flagged`` (drawn dashed: the
    interval is partly set by the prior, not the data).
    """
    label_w = min(LABEL_CHARS, max((len(r["label"]) for r in rows), default=4)) * CHAR_W + 16
    left, right, top = label_w, width - 24.0, 12.0
    lows = [min(r["low"], r["value"]) for r in rows]
    highs = [max(r["high"], r["value"]) for r in rows]
    lo, hi = (min(lows), max(highs)) if rows else (0.0, 1.0)
    pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 1.0)
    lo, hi = lo - pad, hi + pad
    span = hi - lo

    def x(v: float) -> float:
        return round(left + (v - lo) / span * (right - left), 2)

    height = top + row_h * len(rows) + 40
    bottom = top + row_h * len(rows)
    items = []
    for i, r in enumerate(rows):
        y = round(top + row_h * (i + 0.5), 2)
        value, low, high = r["value"], r["low"], r["high"]
        items.append({
            "y": y, "label": short(r["label"]), "full": r["label"], "href": r.get("href"),
            "x": x(value), "x_low": x(low), "x_high": x(high),
            "flagged": bool(r.get("flagged")),
            "tip": f"{r['label']}: {value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]",
        })
    ticks = [{"x": x(t), "label": _fmt_tick(t)} for t in nice_ticks(lo, hi)]
    return {"width": width, "height": round(height, 2), "left": round(left, 2),
            "right": right, "top": top, "bottom": round(bottom, 2), "rows": items,
            "ticks": ticks, "axis_label": axis_label, "label_x": round(left - 8, 2),
            "row_h": row_h}


def _mix(c0: tuple[int, int, int], c1: tuple[int, int, int], t: float) -> tuple[int, ...]:
    return tuple(round(a + (b - a) * t) for a, b in zip(c0, c1, strict=True))


_RED, _WHITE, _BLUE = (202, 62, 49), (247, 247, 247), (33, 102, 172)
_PALE, _DEEP = (240, 246, 252), (8, 81, 156)
_EMPTY = "#d9d9d9"


def rate_colour(p: float) -> tuple[int, ...]:
    """Diverging: red (0) through white (0.5) to blue (1)."""
    return _mix(_RED, _WHITE, p / 0.5) if p < 0.5 else _mix(_WHITE, _BLUE, (p - 0.5) / 0.5)


def count_colour(n: float, top: float) -> tuple[int, ...]:
    """Sequential: pale (few battles) to deep blue (the most, on a square-root scale)."""
    return _mix(_PALE, _DEEP, math.sqrt(n / top) if top > 0 else 0.0)


def _hex(rgb: tuple[int, ...]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _ink(rgb: tuple[int, ...]) -> str:
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return "#ffffff" if luminance < 140 else "#1a1a1a"


def matrix_plot(models: Sequence[str], values: np.ndarray, kind: str,
                hrefs: Sequence[str | None] | None = None) -> dict[str, Any]:
    """Heatmap geometry; rows and columns in ``models`` order, columns numbered.

    ``kind``: ``"rate"`` (P(row beats column) in [0, 1], shown as a percentage,
    NaN where the pair never met) or ``"count"`` (battles per pair).
    Columns carry the row numbers rather than names so long names never
    collide; each cell's tooltip spells the pair out.
    """
    n = len(models)
    cell = float(max(20, min(44, 520 // max(n, 1))))
    labels = [f"{i + 1}. {short(m, 24)}" for i, m in enumerate(models)]
    left = max((len(s) for s in labels), default=4) * CHAR_W + 12
    top = 22.0
    top_count = float(np.nanmax(values)) if n and kind == "count" else 0.0
    cells = []
    for i in range(n):
        for j in range(n):
            v = float(values[i, j])
            x, y = round(left + j * cell, 2), round(top + i * cell, 2)
            if i == j:
                fill, text, ink = _EMPTY, "", "#1a1a1a"
                tip = models[i]
            elif kind == "rate":
                if math.isnan(v):
                    fill, text, ink = _EMPTY, "–", "#555555"
                    tip = f"{models[i]} vs {models[j]}: never met"
                else:
                    rgb = rate_colour(v)
                    fill, text, ink = _hex(rgb), f"{100 * v:.0f}", _ink(rgb)
                    tip = f"{models[i]} beats {models[j]}: {100 * v:.1f}%"
            else:
                rgb = count_colour(v, top_count)
                fill, text, ink = _hex(rgb), f"{v:.0f}", _ink(rgb)
                tip = f"{models[i]} vs {models[j]}: {v:.0f} battles"
            cells.append({"x": x, "y": y, "fill": fill, "text": text, "ink": ink, "tip": tip,
                          "cx": round(x + cell / 2, 2), "cy": round(y + cell / 2 + 4, 2)})
    rows = [{"y": round(top + (i + 0.5) * cell + 4, 2), "label": labels[i], "full": m,
             "href": hrefs[i] if hrefs else None} for i, m in enumerate(models)]
    cols = [{"x": round(left + (j + 0.5) * cell, 2), "label": str(j + 1), "full": m}
            for j, m in enumerate(models)]
    font = 11 if cell >= 28 else 9
    return {"width": round(left + n * cell + 8, 2), "height": round(top + n * cell + 8, 2),
            "cell": cell, "cells": cells, "rows": rows, "cols": cols, "left": round(left, 2),
            "label_x": round(left - 6, 2), "top": top, "font": font, "kind": kind}
