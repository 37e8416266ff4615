"""The `evalarena` command: a thin layer over the library, one module per command group.

``runs`` (run, runs, show, export, suites), ``compare``, ``judge`` (judge,
judge-report, import), ``leaderboard`` (leaderboard, publish) and ``review``
(review, annotators, campaign). ``common`` holds the shared options, ``render``
and ``listing`` the terminal output. Errors are handled once, here: every
``EvalarenaError`` becomes one line on stderr and its exit code.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer._click.core import Context  # typer 0.29 vendors click
from typer._click.exceptions import UsageError  # a bad option value
from typer.core import TyperGroup

from harness import __version__
from harness.cli import compare, contamination, judge, leaderboard, review, robustness, runs
from harness.cli.common import LogLevel, configure_logging, err, out
from harness.errors import EvalarenaError


class _ReportingGroup(TyperGroup):
    """The one error handler: typed errors from any command (or sub-command), and a
    command's bad options (a value outside its choices, a number out of range),
    each as one line on stderr; a typed error exits with its code, a bad option 2."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except EvalarenaError as exc:
            _one_line(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "evalarena"
            message = exc.format_message().replace("Value error, ", "")
            _one_line(f"{message} (see `{command} --help`)")
            raise typer.Exit(exc.exit_code) from None


def _one_line(message: str) -> None:
    err.print(f"evalarena: error: {' '.join(message.split())}", markup=False, highlight=False,
              soft_wrap=True)


app = typer.Typer(
    name="evalarena", cls=_ReportingGroup, no_args_is_help=True, add_completion=False,
    help="Evaluate LLM checkpoints on task suites; judge, review and rank them.",
)


def _version(value: bool) -> None:
    if value:
        out.print(f"evalarena {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    log_level: Annotated[LogLevel | None, typer.Option(
        case_sensitive=False, help="Log records at this level and above go to stderr "
                                   "(default warning).")] = None,
    verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True, help="-v logs at info, -vv at debug.")] = 0,
) -> None:
    """Evaluate LLM checkpoints on task suites; judge, review and rank them."""
    configure_logging(log_level, verbose)


for _group in (runs, compare, robustness, contamination, judge, leaderboard, review):
    _group.register(app)
