"""Errors a user can act on. Each prints as one line and maps to an exit code.

Input errors (exit 2) always name the file (or argument) and the field, so the
user knows exactly what to fix; they are raised before anything is written.
"""

from __future__ import annotations


class EvalarenaError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class InputError(EvalarenaError):
    """Something the user gave us is wrong. Nothing has been written."""

    exit_code = 2

    def __init__(self, source: str, field: str | None, message: str) -> None:
        self.source = source
        self.field = field
        self.message = message
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}")


class SuiteError(InputError):
    """A suite file is malformed or does not match its data."""


class DataError(InputError):
    """A data source is missing or unreadable."""


class ModelSpecError(InputError):
    """A model spec string does not parse or names something that is not there."""

    def __init__(self, spec: str, message: str) -> None:
        super().__init__("--model", repr(spec), message)


class MissingDependencyError(EvalarenaError):
    """An optional extra is needed for what was asked."""

    exit_code = 2

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package: pip install 'evalarena[{extra}]'"
        )


class RunNotFoundError(EvalarenaError):
    exit_code = 2

    def __init__(self, run_id: str, db_path: str) -> None:
        super().__init__(f"{db_path}: run {run_id!r} not found (see `evalarena runs`)")


class StoreError(EvalarenaError):
    """The database is unusable (newer schema, not an evalarena file, ...)."""

    exit_code = 2
