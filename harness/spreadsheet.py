"""CSV cells that a spreadsheet shows as text, never runs as a formula.

Model outputs, vote reasons and model names come from people and models we do
not control; a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is a formula to Excel, LibreOffice and Google Sheets (CSV injection).
Such a cell gets a leading apostrophe, which spreadsheets hide; plain numbers
(``-5``, ``+1.5e3``) are left as they are, so numeric answers stay numbers.
"""

from __future__ import annotations

import re
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


def safe_row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: safe_cell(value) for key, value in row.items()}
