"""What every command shares: the consoles, the ``--db`` option, opening a database,
``--where`` parsing and the choices that options with a fixed set of values take.

Errors are not handled here: the entry point (``harness.cli``) turns every
``EvalarenaError`` into one line on stderr and its exit code.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from harness.errors import InputError

if TYPE_CHECKING:
    from harness.store import Store

out = Console()
err = Console(stderr=True)

DbOption = Annotated[Path, typer.Option(
    "--db", envvar="EVALARENA_DB", help="SQLite database file (created if missing).")]
DEFAULT_DB = Path("evalarena.db")


class ListFormat(StrEnum):
    """How a listing command prints: a table fitted to the terminal, or data for tools."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    MARKDOWN = "markdown"


FormatOption = Annotated[ListFormat, typer.Option(
    "--format", case_sensitive=False,
    help="table (fitted to the terminal's width), json, csv or markdown.")]


# the choices of options that take one of a fixed set of values (typer validates them)
class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


class ReportFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class BoardFormat(StrEnum):
    TABLE = "table"
    MD = "md"
    JSON = "json"
    CSV = "csv"


class JudgeMode(StrEnum):
    SINGLE = "single"
    PAIRWISE = "pairwise"


class OrderPolicy(StrEnum):
    TIE = "tie"
    DROP = "drop"


class VerdictSource(StrEnum):
    GENERATE = "generate"
    LIKELIHOOD = "likelihood"


class JuryCombine(StrEnum):
    MAJORITY = "majority"
    MEAN = "mean"


class RatingMethod(StrEnum):
    BT = "bt"
    ELO = "elo"


class IntervalMethod(StrEnum):
    BOOTSTRAP = "bootstrap"
    SANDWICH = "sandwich"
    NONE = "none"


class Role(StrEnum):
    ANNOTATOR = "annotator"
    ADMIN = "admin"


class CampaignKind(StrEnum):
    PAIRWISE = "pairwise"
    SINGLE = "single"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def configure_logging(level: LogLevel | None, verbose: int) -> None:
    """Once, at the entry point: log records go to stderr (stdout stays data).

    ``-v`` means info, ``-vv`` debug; an explicit ``--log-level`` wins."""
    if level is None:
        level = LogLevel.DEBUG if verbose >= 2 else LogLevel.INFO if verbose else LogLevel.WARNING
    logging.basicConfig(
        level=level.value.upper(), stream=sys.stderr, force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C: the same clean stop (the run is marked
    interrupted, servers and engines are closed), exit code 143 instead of 130."""


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While the block runs, SIGTERM (what `kill`, systemd and CI runners send) raises
    ``Terminated`` in the main thread, so a stopped run ends like an interrupted one:
    every stored chunk whole, nothing half-written, a rerun resumes."""
    def stop(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parse_where(terms: list[str] | None) -> dict[str, list[str]]:
    """``FIELD=V1,V2`` terms (repeatable) as {field: [values]}."""
    where: dict[str, list[str]] = {}
    for term in terms or []:
        name, sep, values = term.partition("=")
        if not (sep and name.strip() and values.strip()):
            raise InputError("--where", term, "expected FIELD=VALUE[,VALUE...]")
        where.setdefault(name.strip(), []).extend(v.strip() for v in values.split(","))
    return where


def open_existing(db: Path) -> Store:
    """The store at ``db``; a command that only reads never creates a database."""
    from harness.store import Store

    if not db.exists():
        raise InputError("--db", None, f"no database at {db}")
    return Store(db)
