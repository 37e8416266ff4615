"""Listings (``runs``, ``suites``, ``annotators list``, ``campaign list``): one set of
rows, printed as a table that fits the terminal or as json, csv or markdown.

The table picks its columns for the width at hand: columns that may go are
dropped, least important first, until the rest fit on one line each; a
column marked ``shrinks`` is then cut with an ellipsis. Nothing ever wraps a
cell over several lines, so a listing piped into a log (80 columns) stays one
row per line. Tools should read ``--format json`` or ``csv``: those keep every
field, with numbers as numbers.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from harness.cli.common import ListFormat
from harness.spreadsheet import safe_cell


@dataclass(frozen=True)
class Column:
    key: str  # the field in json and csv
    header: str = ""  # the table heading (default: the key)
    drop: int = 0  # 0: always shown; higher numbers are dropped first when too wide
    shrinks: bool = False  # may be cut with an ellipsis (free text, not ids)
    justify: Literal["left", "right"] = "left"
    show: Callable[[Any], str] | None = None  # the cell text (default: str, "-" for None)
    in_table: bool = True  # shown in the table and markdown
    in_data: bool = True  # written in json and csv

    def text(self, value: Any) -> str:
        if self.show is not None:
            return self.show(value)
        return "-" if value is None else str(value)


def print_listing(console: Console, title: str, columns: Sequence[Column],
                  rows: Sequence[dict[str, Any]], fmt: ListFormat) -> None:
    data = [c for c in columns if c.in_data]
    columns = [c for c in columns if c.in_table]
    if fmt is ListFormat.JSON:
        sys.stdout.write(json.dumps([{c.key: row.get(c.key) for c in data} for row in rows],
                                    ensure_ascii=False, indent=2) + "\n")
    elif fmt is ListFormat.CSV:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([c.key for c in data])
        writer.writerows([safe_cell(_csv_value(row.get(c.key))) for c in data] for row in rows)
    elif fmt is ListFormat.MARKDOWN:
        sys.stdout.write(markdown(columns, rows))
    else:
        console.print(fitted_table(title, columns, rows, console.width))


def markdown(columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> str:
    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(c.header or c.key for c in columns) + " |",
             "|" + "|".join("---:" if c.justify == "right" else "---" for c in columns) + "|"]
    lines += ["| " + " | ".join(cell(c.text(row.get(c.key))) for c in columns) + " |"
              for row in rows]
    return "\n".join(lines) + "\n"


def fitted_table(title: str, columns: Sequence[Column], rows: Sequence[dict[str, Any]],
                 width: int) -> Table:
    """The columns that fit in ``width``, each cell on one line."""
    cells = {c.key: [c.text(row.get(c.key)) for row in rows] for c in columns}
    natural = {c.key: max([len(c.header or c.key), *map(len, cells[c.key])]) for c in columns}
    shown = list(columns)

    def needed(cols: Sequence[Column]) -> int:  # cells plus padding and borders
        return sum(natural[c.key] for c in cols) + 3 * len(cols) + 1

    for column in sorted((c for c in columns if c.drop), key=lambda c: -c.drop):
        if needed(shown) <= width:
            break
        shown.remove(column)
    widths = _shrunk({c.key: natural[c.key] for c in shown},
                     {c.key for c in shown if c.shrinks}, width - 3 * len(shown) - 1)
    table = Table(title=title)
    for c in shown:
        table.add_column(c.header or c.key, justify=c.justify, no_wrap=True,
                         overflow="ellipsis" if c.shrinks else "fold", width=widths[c.key])
    for index in range(len(rows)):
        table.add_row(*(cells[c.key][index] for c in shown))
    return table


def _shrunk(widths: dict[str, int], shrinking: set[str], room: int) -> dict[str, int]:
    """Cut the shrinking columns, widest first, until the cells fit in ``room``."""
    widths = dict(widths)
    floor = 8  # a cut column still shows its first few characters
    while sum(widths.values()) > room:
        cuttable = [k for k in shrinking if widths[k] > floor]
        if not cuttable:
            break  # ids and numbers are never cut: the terminal folds the line instead
        widest = max(cuttable, key=widths.__getitem__)
        widths[widest] -= 1
    return widths


def _csv_value(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else value
