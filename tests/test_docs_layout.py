"""docs/architecture.md's layout table matches the tree: every row names a path that
exists, every part of harness/ has a row, and every file a row names inside a
package (``spec.py`` in harness/backends/) exists there."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARCHITECTURE = REPO / "docs" / "architecture.md"


def _rows() -> dict[str, str]:
    text = ARCHITECTURE.read_text()
    table = text[text.index("## Layout"):text.index("## Layers")]
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \| (.*) \|$", table,
                                                          flags=re.M)}


def test_every_row_exists_and_every_part_of_harness_has_a_row() -> None:
    rows = _rows()
    assert all((REPO / path).exists() for path in rows), [p for p in rows
                                                          if not (REPO / p).exists()]
    parts = {f"harness/{p.name}" + ("/" if p.is_dir() else "")
             for p in (REPO / "harness").iterdir()
             if p.name not in ("__init__.py", "__main__.py", "__pycache__")}
    assert parts <= rows.keys(), sorted(parts - rows.keys())


def test_files_named_in_a_package_row_exist_in_it() -> None:
    for path, text in _rows().items():
        if not path.endswith("/") or not path.startswith(("harness/", "tests/")):
            continue
        for name in re.findall(r"`([\w/]+\.py|[\w]+/)`", text):
            if "/" in name.rstrip("/"):
                continue  # a path from the repository root, checked where it is a row
            assert (REPO / path / name).exists(), f"{path}{name}"
