"""Write a leaderboard as files: a static site plus Markdown, JSON and CSV.

The site is plain HTML with inline SVG plots and inline CSS: no script, no
font, no request to anything, so it opens from disk (``file://``) and can be
copied anywhere. Its Content-Security-Policy forbids scripts and fetches
outright, and every name goes through Jinja2 autoescaping (Markdown gets its
own escaping), so a model called ``<script>…`` is shown, never run.

Reproducibility: every file records the parameters and the data hash, holds
no timestamp, and is rendered in a fixed order with fixed rounding, so
publishing the same database with the same parameters rewrites identical
bytes. ``leaderboard.json`` is the canonical machine-readable output.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from harness import __version__
from harness.errors import InputError

from .board import FORMAT, Board, BoardSpec, Leaderboard
from .data_files import render_csv, render_markdown
from .plots import interval_plot, matrix_plot

MODELS_DIR = "models"
DATA_FILES = ("leaderboard.json", "leaderboard.md", "leaderboard.csv")
MAX_TASK_PLOTS = 12

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("leaderboards", "site_templates"),
    autoescape=True,  # every template here is HTML/SVG
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=False,
)


@dataclass(frozen=True)
class Published:
    out: Path
    index: Path
    files: tuple[str, ...]  # relative to ``out``


def slug(name: str) -> str:
    """A file name for a model page: readable part + hash, safe for any model name."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:40] or "model"
    return f"{readable}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}.html"


def _num(value: float, digits: int) -> float | None:
    """Rounded for stable output; None (JSON null) where there is no number."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return _num(value, 6)
    return value


def command_line(spec: BoardSpec, out: str = "DIR", breakdowns: bool = True) -> str:
    """The `evalarena publish` invocation that reproduces these files from the database."""
    parts = ["evalarena", "publish", "--out", out, "--source", spec.source]
    if spec.category is not None:
        parts += ["--category", spec.category]
    parts += ["--method", spec.method, "--ci", spec.ci, "--rounds", str(spec.rounds),
              "--seed", str(spec.seed)]
    if spec.anchor is not None:
        parts += ["--anchor", spec.anchor, "--anchor-value", f"{spec.anchor_value:g}"]
    if not breakdowns:
        parts.append("--no-breakdowns")
    return " ".join(shlex.quote(p) for p in parts)


# -- the canonical document ------------------------------------------------------------
def _board_doc(board: Board, matrices: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key": board.key,
        "title": board.title,
        "params": board.spec.params(),
        "data_hash": board.data_hash,
        "n_battles": board.n_battles,
        "n_models": board.counts.n_models,
        "ratings": [
            {"model": r["model"], "rating": _num(r["rating"], 3), "ci_low": _num(r["ci_low"], 3),
             "ci_high": _num(r["ci_high"], 3), "rank_ub": r["rank_ub"],
             "n_battles": r["n_battles"], "prior_limited": r["flagged"]}
            for r in board.records()
        ],
        "warnings": list(board.ratings.warnings),
        "fit": _json_safe(dict(board.ratings.params)),
    }
    if matrices:
        m = board.matrices()
        doc["matrices"] = {
            "models": m["models"],
            "battles": [[int(v) for v in row] for row in m["battles"]],
            "win_rate": [[_num(v, 4) for v in row] for row in m["win_rate"]],
            "predicted_win_rate": [[_num(v, 4) for v in row] for row in m["predicted_win_rate"]],
        }
    return doc


def document(lb: Leaderboard, files: list[str] | None = None, breakdowns: bool = True,
             beyond: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Everything published, as one JSON-ready dict (``leaderboard.json``)."""
    doc: dict[str, Any] = {
        "format": FORMAT,
        "evalarena": __version__,
        "params": lb.spec.params(),
        "data_hash": lb.data_hash,
        "command": command_line(lb.spec, breakdowns=breakdowns),
        "board": _board_doc(lb.main, matrices=True),
        "breakdowns": [_board_doc(b, matrices=False) for b in lb.breakdowns],
        "task_metrics": {
            "data_hash": lb.tasks.data_hash,
            "cells": [{"model": c.model, "suite": c.suite, "metric": c.metric,
                       "value": _num(c.value, 6), "ci_low": _num(c.ci_low, 6),
                       "ci_high": _num(c.ci_high, 6), "n": c.n, "n_errors": c.n_errors,
                       "run_id": c.run_id} for c in lb.tasks.cells],
        },
    }
    if beyond is not None:  # robustness, fairness, contamination rows (harness/beyond.py)
        doc["beyond_accuracy"] = _json_safe(beyond)
    if files is not None:
        doc["files"] = files
    return doc


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2, allow_nan=False) + "\n"


# -- the site --------------------------------------------------------------------------
def _rows(board: Board, href: dict[str, str]) -> list[dict[str, Any]]:
    return [{"model": r["model"], "href": href.get(r["model"]), "rating": f"{r['rating']:.1f}",
             "ci": f"[{r['ci_low']:.1f}, {r['ci_high']:.1f}]", "rank_ub": r["rank_ub"],
             "n_battles": r["n_battles"], "flagged": r["flagged"]} for r in board.records()]


def _plot(board: Board, href: dict[str, str]) -> dict[str, Any]:
    return interval_plot([{"label": r["model"], "value": r["rating"], "low": r["ci_low"],
                           "high": r["ci_high"], "flagged": r["flagged"],
                           "href": href.get(r["model"])}
                          for r in board.records()])


def _texts(spec: BoardSpec, fit: dict[str, Any]) -> dict[str, str]:
    method = ("Bradley-Terry" if spec.method == "bt"
              else f"online Elo (K={fit.get('k', 4):g}, battles in stored order)")
    ci = {"bootstrap": f"bootstrap intervals ({spec.rounds} rounds, seed {spec.seed})",
          "sandwich": "sandwich (robust normal) intervals", "none": "no intervals"}[spec.ci]
    anchor = (f"{spec.anchor} pinned at {spec.anchor_value:g}" if spec.anchor is not None
              else "the pool mean is 1000")
    return {"method_text": method, "ci_text": ci, "anchor_text": anchor}


def _opponents(board: Board, name: str, href: dict[str, str],
               m: dict[str, Any]) -> list[dict[str, Any]]:
    """Wins, losses and ties against each opponent met, both seat orders pooled."""
    c, i = board.counts, board.counts.index(name)
    table: dict[int, list[float]] = {}
    for a, b, wa, wb, t in zip(c.pair_a, c.pair_b, c.wins_a, c.wins_b, c.ties, strict=True):
        if i in (a, b):
            mine, theirs, other = (wa, wb, b) if a == i else (wb, wa, a)
            row = table.setdefault(int(other), [0.0, 0.0, 0.0])
            row[0], row[1], row[2] = row[0] + mine, row[1] + theirs, row[2] + t
    pos = m["models"].index(name)
    out = []
    for j, other in enumerate(m["models"]):
        k = c.index(other)
        if k not in table:
            continue
        w, losses, ties = table[k]
        out.append({"model": other, "href": href[other], "battles": int(w + losses + ties),
                    "wins": int(w), "losses": int(losses), "ties": int(ties),
                    "observed": f"{100 * m['win_rate'][pos, j]:.1f}%",
                    "predicted": f"{100 * m['predicted_win_rate'][pos, j]:.1f}%"})
    return out


def _fmt_cell(cell: Any) -> dict[str, Any]:
    return {"suite": cell.suite, "metric": cell.metric, "value": f"{cell.value:.3f}",
            "ci_low": f"{cell.ci_low:.3f}", "ci_high": f"{cell.ci_high:.3f}", "n": cell.n,
            "run_id": cell.run_id}


def render_site(lb: Leaderboard, doc: dict[str, Any]) -> dict[str, str]:
    """Relative path -> HTML for index.html and one page per rated model."""
    main = lb.main
    models = list(main.ratings.models)
    href = {m: f"{MODELS_DIR}/{slug(m)}" for m in models}
    level = round(100 * lb.spec.level)
    common = {"version": __version__, "data_hash": doc["data_hash"], "params": doc["params"],
              "params_json": json.dumps(doc["params"], ensure_ascii=False, sort_keys=True),
              "command": doc["command"], "level": level, "heading": "Leaderboard",
              **_texts(lb.spec, dict(main.ratings.params))}
    mats = main.matrices()
    order_href = [href[m] for m in mats["models"]]
    view = {
        "rows": _rows(main, href), "warnings": list(main.ratings.warnings),
        "n_models": main.counts.n_models, "n_battles": main.n_battles,
        "plot": _plot(main, href),
        "win_plot": matrix_plot(mats["models"], mats["win_rate"], "rate", order_href),
        "predicted_plot": matrix_plot(mats["models"], mats["predicted_win_rate"], "rate",
                                      order_href),
        "count_plot": matrix_plot(mats["models"], mats["battles"], "count", order_href),
    }
    breakdowns = [{"title": b.title,
                   "anchor_id": f"board-{n}-" + re.sub(r"[^A-Za-z0-9_-]", "-", b.key),
                   "rows": _rows(b, href), "warnings": list(b.ratings.warnings),
                   "n_models": b.counts.n_models, "n_battles": b.n_battles,
                   "plot": _plot(b, href), "data_hash": b.data_hash}
                  for n, b in enumerate(lb.breakdowns, 1)]
    tasks = lb.tasks
    columns = tasks.columns
    task_view = {
        "data_hash": tasks.data_hash,
        "columns": [{"suite": s, "metric": m} for s, m in columns],
        "rows": [{"model": name, "href": href.get(name),
                  "cells": [_fmt_cell(c) if (c := tasks.cell(name, col)) else None
                            for col in columns]} for name in tasks.models],
        "plots": [{"caption": f"{suite} · {metric}: mean with 95% interval",
                   "plot": interval_plot(
                       [{"label": c.model, "value": c.value, "low": c.ci_low, "high": c.ci_high,
                         "href": href.get(c.model)}
                        for c in sorted((c for c in tasks.cells
                                         if (c.suite, c.metric) == (suite, metric)),
                                        key=lambda c: (-c.value, c.model))],
                       digits=3, axis_label=metric)}
                  for suite, metric in columns[:MAX_TASK_PLOTS]],
    }
    beyond = doc.get("beyond_accuracy") or {}
    pages = {"index.html": _ENV.get_template("index.html").render(
        **common, main=view, breakdowns=breakdowns, tasks=task_view, files=doc["files"],
        beyond={name: beyond.get(name, []) for name in
                ("robustness", "fairness", "contamination")})}
    records = {r["model"]: r for r in main.records()}
    siblings = {m: slug(m) for m in models}  # links from one model page to another
    for name in models:
        r = records[name]
        boards = [{"title": b.title, "rating": f"{br['rating']:.1f}",
                   "ci": f"[{br['ci_low']:.1f}, {br['ci_high']:.1f}]",
                   "rank_ub": br["rank_ub"], "n_battles": br["n_battles"]}
                  for b in lb.breakdowns for br in b.records() if br["model"] == name]
        page = {"name": name, "rating": f"{r['rating']:.1f}",
                "ci": f"[{r['ci_low']:.1f}, {r['ci_high']:.1f}]", "rank_ub": r["rank_ub"],
                "n_battles": r["n_battles"], "flagged": r["flagged"],
                "warnings": [w for w in main.ratings.warnings if r["flagged"] and name in w],
                "opponents": _opponents(main, name, siblings, mats),
                "boards": boards,
                "tasks": [_fmt_cell(c) for c in tasks.cells if c.model == name]}
        pages[href[name]] = _ENV.get_template("model.html").render(**common, model=page)
    return pages


# -- writing ---------------------------------------------------------------------------
def prepare_out(out: Path) -> Path:
    """Create ``out`` and prove it is writable, before any fitting is done."""
    try:
        (out / MODELS_DIR).mkdir(parents=True, exist_ok=True)
        probe = out / ".evalarena-write-test"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise InputError("--out", str(out), f"cannot write there ({exc.strerror or exc})") \
            from None
    return out


def _previous_files(out: Path) -> set[str]:
    try:
        old = json.loads((out / "leaderboard.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(old, dict) or old.get("format") != FORMAT:
        return set()
    return {f for f in old.get("files", []) if isinstance(f, str)}


_PAGE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,40}-[0-9a-f]{8}\.html$")  # what slug() writes


def _own_page(out: Path, listed: str) -> Path | None:
    """The model page a previous publish listed, if it is one ``slug`` could have named,
    directly in ``out/models`` and a plain file. leaderboard.json is read back from
    disk, so it is input like any other: ``models/../../x`` is never touched."""
    folder, _, name = listed.partition("/")
    if folder != MODELS_DIR or not _PAGE_NAME.match(name):
        return None
    path = out / MODELS_DIR / name
    if path.is_symlink() or not path.is_file():
        return None
    if path.resolve().parent != (out / MODELS_DIR).resolve():
        return None
    return path


def publish(lb: Leaderboard, out: Path, breakdowns: bool = True,
            beyond: dict[str, list[dict[str, Any]]] | None = None) -> Published:
    """Write the site and the data files into ``out``; remove pages a previous publish
    there wrote for models that are gone. Returns what was written."""
    prepare_out(out)
    names = ["index.html", *DATA_FILES,
             *sorted(f"{MODELS_DIR}/{slug(m)}" for m in lb.main.ratings.models)]
    doc = document(lb, files=names, breakdowns=breakdowns, beyond=beyond)
    contents = render_site(lb, doc)
    contents["leaderboard.json"] = render_json(doc)
    contents["leaderboard.md"] = render_markdown(doc)
    contents["leaderboard.csv"] = render_csv(doc)
    try:
        for stale in sorted(_previous_files(out) - set(names)):
            path = _own_page(out, stale)
            if path is not None:
                path.unlink()
        for name in names:
            with (out / name).open("w", encoding="utf-8", newline="\n") as handle:
                handle.write(contents[name])
    except OSError as exc:
        raise InputError("--out", str(out), f"cannot write there ({exc.strerror or exc})") \
            from None
    return Published(out, out / "index.html", tuple(names))
