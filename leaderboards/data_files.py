"""The leaderboard as data files: Markdown (escaped for table cells) and CSV (one row
per board and model, cells safe to open in a spreadsheet). ``leaderboard.json``,
the canonical output, is ``publish.render_json``."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from harness.spreadsheet import safe_row


def _f(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


def md(text: object) -> str:
    """Escape for a Markdown table cell: no HTML, no emphasis, no broken columns."""
    raw = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", raw).replace("\n", " ")


def _code(text: str) -> str:
    """A Markdown code span that survives backticks inside ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}" if longest else f"`{text}`"


def _md_board(lines: list[str], board: dict[str, Any], level: int) -> None:
    lines += ["| rank | model | rating | " + f"{level}% interval | battles |",
              "|---:|---|---:|---:|---:|"]
    for r in board["ratings"]:
        mark = " †" if r["prior_limited"] else ""
        lines.append(f"| {r['rank_ub']} | {md(r['model'])}{mark} | {_f(r['rating'], 1)} | "
                     f"[{_f(r['ci_low'], 1)}, {_f(r['ci_high'], 1)}] | {r['n_battles']} |")
    lines += [""] + [f"- ⚠ {md(w)}" for w in board["warnings"]]
    if board["warnings"]:
        lines.append("")


def render_markdown(doc: dict[str, Any]) -> str:
    level = round(100 * doc["params"]["level"])
    lines = ["# Leaderboard", "", f"Data hash: `{doc['data_hash']}` · evalarena "
             f"{doc['evalarena']}", "", "| parameter | value |", "|---|---|"]
    lines += [f"| {k} | {md('—' if v is None else v)} |" for k, v in doc["params"].items()]
    lines += ["", f"Reproduce: {_code(doc['command'])}", "",
              f"## Ratings ({doc['board']['n_models']} models, {doc['board']['n_battles']} "
              "battles)", ""]
    _md_board(lines, doc["board"], level)
    lines.append("† partly set by the prior, not the data.")
    lines.append("")
    for b in doc["breakdowns"]:
        lines += [f"## {md(b['title'])} ({b['n_models']} models, {b['n_battles']} battles)", "",
                  f"Data hash: `{b['data_hash']}`", ""]
        _md_board(lines, b, level)
    tasks = doc["task_metrics"]
    lines += ["## Task metrics", "", f"Data hash: `{tasks['data_hash']}`", ""]
    if tasks["cells"]:
        lines += ["| model | suite | metric | value | 95% interval | n | run |",
                  "|---|---|---|---:|---:|---:|---|"]
        lines += [f"| {md(c['model'])} | {md(c['suite'])} | {md(c['metric'])} | "
                  f"{_f(c['value'], 3)} | [{_f(c['ci_low'], 3)}, {_f(c['ci_high'], 3)}] | "
                  f"{c['n']} | {c['run_id']} |" for c in tasks["cells"]]
    else:
        lines.append("No finished runs with metrics.")
    return "\n".join(lines).rstrip("\n") + "\n"


CSV_COLUMNS = ("board", "rank_ub", "model", "rating", "ci_low", "ci_high", "n_battles",
               "prior_limited", "source", "category", "method", "ci", "rounds", "seed",
               "anchor", "anchor_value", "level", "board_data_hash", "data_hash")


def render_csv(doc: dict[str, Any]) -> str:
    """One row per (board, model); parameters and hashes repeated on every row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for board in [doc["board"], *doc["breakdowns"]]:
        for r in board["ratings"]:
            writer.writerow(safe_row({**r, **board["params"], "board": board["key"],
                                      "prior_limited": int(r["prior_limited"]),
                                      "board_data_hash": board["data_hash"],
                                      "data_hash": doc["data_hash"]}))
    return buffer.getvalue()
