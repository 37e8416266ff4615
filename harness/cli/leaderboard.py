"""The `leaderboard` and `publish` commands. Thin calls into leaderboards.board/publish."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.cli.common import (
    DEFAULT_DB,
    BoardFormat,
    DbOption,
    IntervalMethod,
    RatingMethod,
    open_existing,
    out,
)

SourceOption = Annotated[str, typer.Option(
    help="Which battles: all, human, judge (every judge), or one source such as judge:ID.")]
CategoryOption = Annotated[str | None, typer.Option(
    help="Only battles of this category (suite or tag); default: every category.")]
MethodOption = Annotated[RatingMethod, typer.Option(
    help="Rating method: bt (Bradley-Terry) or elo (online Elo in stored order).")]
CiOption = Annotated[IntervalMethod, typer.Option(
    "--ci", help="Intervals: bootstrap, sandwich (bt only) or none.")]
RoundsOption = Annotated[int, typer.Option(help="Bootstrap rounds.")]
SeedOption = Annotated[int, typer.Option(help="Bootstrap seed (same seed, same intervals).")]
AnchorOption = Annotated[str | None, typer.Option(
    help="Pin this model at --anchor-value (default: the pool mean is 1000).")]
AnchorValueOption = Annotated[float, typer.Option(help="Rating the --anchor model is pinned at.")]
BreakdownsOption = Annotated[bool, typer.Option(
    help="Also fit one board per source and per category when there are several.")]


def _require(db: Path) -> None:
    """A missing database is an input error; checked before the (slow) rating imports."""
    from harness.errors import InputError

    if not db.exists():
        raise InputError("--db", None, f"no database at {db}")


def _spec(source: str, category: str | None, method: RatingMethod, ci: IntervalMethod,
          rounds: int, seed: int,
          anchor: str | None, anchor_value: float) -> Any:
    from leaderboards.board import BoardSpec

    spec = BoardSpec(source=source, category=category, method=method.value, ci=ci.value,
                     rounds=rounds,
                     seed=seed, anchor=anchor, anchor_value=anchor_value)
    spec.validate()  # before the database is opened: bad input never touches it
    return spec


def _print_board(board: Any, caption: str) -> None:
    level = round(100 * board.spec.level)
    table = Table(title=escape(caption))
    for column in ("rank", "model", "rating", f"{level}% interval", "battles"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in board.records():
        table.add_row(str(r["rank_ub"]), Text(r["model"] + (" †" if r["flagged"] else "")),
                      f"{r['rating']:.1f}", f"[{r['ci_low']:.1f}, {r['ci_high']:.1f}]",
                      str(r["n_battles"]))
    out.print(table)
    for warning in board.ratings.warnings:
        out.print(f"warning: {warning}", markup=False, highlight=False)


def _print_tasks(tasks: Any) -> None:
    table = Table(title="task metrics (mean [95% CI] n)")
    table.add_column("model")
    columns = tasks.columns
    for suite, metric in columns:
        table.add_column(Text(f"{suite}\n{metric}"), justify="right")
    for model in tasks.models:
        cells = [tasks.cell(model, c) for c in columns]
        table.add_row(Text(model), *(f"{c.value:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}] {c.n}"
                               if c else "-" for c in cells))
    out.print(table)
    out.print(f"data hash {tasks.data_hash}", highlight=False)


def leaderboard(
    db: DbOption = DEFAULT_DB,
    source: SourceOption = "all",
    category: CategoryOption = None,
    method: MethodOption = RatingMethod.BT,
    ci: CiOption = IntervalMethod.BOOTSTRAP,
    rounds: RoundsOption = 1000,
    seed: SeedOption = 0,
    anchor: AnchorOption = None,
    anchor_value: AnchorValueOption = 1000.0,
    breakdowns: BreakdownsOption = False,
    tasks: Annotated[bool, typer.Option(
        help="Show the task-metric board (model × suite from runs) instead of ratings.")]
        = False,
    format: Annotated[BoardFormat, typer.Option(
        help="table, md, json or csv.")] = BoardFormat.TABLE,
    save: Annotated[bool, typer.Option(
        help="Record the fitted board in rating_snapshots (once per data and params).")]
        = False,
) -> None:
    """Print the leaderboard fitted on stored battles (human votes, judge verdicts or both)."""
    from leaderboards.board import assemble, task_board
    from leaderboards.data_files import render_csv, render_markdown
    from leaderboards.publish import document, render_json

    _require(db)
    spec = _spec(source, category, method, ci, rounds, seed, anchor, anchor_value)
    with open_existing(db) as store:
        if tasks:
            _print_tasks(task_board(store))
            return
        lb = assemble(store, spec, breakdowns=breakdowns)
        if save:
            _save(store, lb)
    if format != "table":
        doc = document(lb, breakdowns=breakdowns)
        render = {"md": render_markdown, "json": render_json, "csv": render_csv}[format]
        sys.stdout.write(render(doc))
        return
    scope = f"source {spec.source}" + (f" · category {spec.category}" if spec.category else "")
    _print_board(lb.main, f"leaderboard · {scope} · {lb.main.n_battles} battles · "
                          f"{spec.method}, {spec.ci}")
    for board in lb.breakdowns:
        _print_board(board, f"{board.title} · {board.n_battles} battles")
    out.print(f"data hash {lb.data_hash} · params method={spec.method} ci={spec.ci} "
              f"rounds={spec.rounds} seed={spec.seed} anchor={spec.anchor}", highlight=False,
              markup=False, soft_wrap=True)


def _save(store: Any, lb: Any) -> int:
    board = lb.main
    ratings = [{k: r[k] for k in ("model", "rating", "ci_low", "ci_high", "rank_ub",
                                  "n_battles")} for r in board.records()]
    return int(store.save_rating_snapshot(board.spec.method, board.spec.params(),
                                          board.data_hash, ratings))


def publish(
    out_dir: Annotated[Path, typer.Option(
        "--out", help="Folder for the site (index.html, models/) and leaderboard.md/.json/.csv "
                      "(created if missing).")],
    db: DbOption = DEFAULT_DB,
    source: SourceOption = "all",
    category: CategoryOption = None,
    method: MethodOption = RatingMethod.BT,
    ci: CiOption = IntervalMethod.BOOTSTRAP,
    rounds: RoundsOption = 1000,
    seed: SeedOption = 0,
    anchor: AnchorOption = None,
    anchor_value: AnchorValueOption = 1000.0,
    breakdowns: BreakdownsOption = True,
) -> None:
    """Publish the leaderboard as a static site that opens from disk, plus md, json and csv."""
    from leaderboards.board import assemble
    from leaderboards.publish import prepare_out
    from leaderboards.publish import publish as write

    _require(db)  # before the output folder is created
    spec = _spec(source, category, method, ci, rounds, seed, anchor, anchor_value)
    prepare_out(out_dir)
    from harness.beyond import beyond_accuracy

    with open_existing(db) as store:
        lb = assemble(store, spec, breakdowns=breakdowns)
        beyond = beyond_accuracy(store, seed=seed)  # before anything is written
        _save(store, lb)
    result = write(lb, out_dir, breakdowns=breakdowns, beyond=beyond)
    out.print(f"published {lb.main.counts.n_models} models, {lb.main.n_battles} battles "
              f"({len(lb.breakdowns)} breakdown boards, {len(lb.tasks.cells)} task cells) · "
              f"data hash {lb.data_hash} · {len(result.files)} files in {out_dir}",
              highlight=False, markup=False, soft_wrap=True)
    print(result.index.resolve())


def register(app: typer.Typer) -> None:
    """Add these commands to the `evalarena` app."""
    app.command()(leaderboard)
    app.command()(publish)
