"""`evalarena review`, `evalarena annotators ...` and `evalarena campaign ...`.

Thin like the rest of the CLI: the work is in ``review_ui`` and the store.
Every bad input is one line on stderr and exit 2, raised before anything is
written.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.common import (
    DEFAULT_DB,
    CampaignKind,
    DbOption,
    ExportFormat,
    FormatOption,
    ListFormat,
    Role,
    Terminated,
    open_existing,
    out,
    sigterm_interrupts,
)
from harness.cli.listing import Column, print_listing
from harness.errors import InputError, MissingDependencyError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")

annotators_app = typer.Typer(no_args_is_help=True, help="Manage review accounts: add, list, "
                             "disable and enable annotators and admins.")
campaign_app = typer.Typer(no_args_is_help=True, help="Create, list and export human review "
                           "campaigns built from stored runs.")


def register(app: typer.Typer) -> None:
    """Add these commands to the `evalarena` app (harness/cli/__init__.py calls it)."""
    app.command()(review)
    app.add_typer(annotators_app, name="annotators")
    app.add_typer(campaign_app, name="campaign")


def review(
    db: DbOption = DEFAULT_DB,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine "
                                      "only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 7860,
    undo_window: Annotated[float, typer.Option(
        min=0, help="Seconds after a vote during which it can be undone.")] = 60.0,
    session_hours: Annotated[float, typer.Option(
        min=0.01, help="Sign an annotator out after this many idle hours (sessions also "
                       "end 7 days after login; both survive a restart).")] = 12.0,
    behind_proxy: Annotated[str | None, typer.Option(
        help="Address(es) of a TLS-terminating reverse proxy, comma-separated: trust its "
             "X-Forwarded-For/-Proto headers and always send Secure cookies "
             "(docs/review.md).")] = None,
) -> None:
    """Start the review web app: annotators log in and vote; admins see progress."""
    with open_existing(db) as store:
        accounts = store.annotators()
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise MissingDependencyError("gradio", "review", "the review app") from None
    from review_ui.api import serve

    if not any(a.role == "admin" for a in accounts):
        out.print("note: no admin account yet; add one with "
                  "`evalarena annotators add NAME --role admin`")
    out.print(f"evalarena review on http://{host}:{port}/ (database {db}); Ctrl-C stops it")
    try:
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again once its
        # own handler is gone: ours turns that into a clean exit instead of a kill
        with sigterm_interrupts():
            serve(str(db), host, port, undo_window_s=undo_window, session_hours=session_hours,
                  behind_proxy=behind_proxy)
    except Terminated:
        out.print("evalarena review stopped (SIGTERM)")


def _password(source: str) -> str:
    from review_ui.auth import check_new_password

    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    problem = check_new_password(password)
    if problem:
        raise InputError(source, None, f"password {problem}")
    return password


@annotators_app.command("add")
def annotators_add(
    name: Annotated[str, typer.Argument(help="Login name: letters, digits, . _ @ - (max 64).")],
    role: Annotated[Role, typer.Option(help="annotator (votes) or admin (also sees reports "
                                       "and exports).")] = Role.ANNOTATOR,
    exist_ok: Annotated[bool, typer.Option(
        "--exist-ok", help="If the account exists, leave it as it is and succeed.")] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Add an account; the password is prompted for, or read as one line from stdin."""
    from harness.store import Store
    from review_ui.auth import hash_password

    if not NAME_PATTERN.match(name):
        raise InputError("NAME", None, f"{name!r} is not a usable login name")
    if db.exists():
        with Store(db) as store:
            if store.annotator(name) is not None:
                if exist_ok:
                    out.print(f"annotator {name} exists; left unchanged")
                    return
                raise InputError("NAME", None, f"an annotator named {name!r} already exists")
    password = _password("stdin" if not sys.stdin.isatty() else "password")
    with Store(db) as store:
        store.add_annotator(name, role.value, hash_password(password))
    out.print(f"added {role} {name}")


@annotators_app.command("list")
def annotators_list(db: DbOption = DEFAULT_DB, format: FormatOption = ListFormat.TABLE) -> None:
    """List accounts with their role and whether they are disabled."""
    with open_existing(db) as store:
        accounts = store.annotators()
    columns = (Column("name"), Column("role"), Column("status"), Column("created", drop=1))
    rows = [{"name": a.name, "role": a.role, "status": "disabled" if a.disabled else "active",
             "created": a.created_at} for a in accounts]
    print_listing(out, f"annotators in {db}", columns, rows, format)


def _set_disabled(db: Path, name: str, disabled: bool) -> None:
    with open_existing(db) as store:
        if not store.set_annotator_disabled(name, disabled):
            raise InputError("NAME", None, f"no annotator named {name!r}")
        ended = store.delete_sessions(name) if disabled else 0
    out.print(f"{'disabled' if disabled else 'enabled'} {name}"
              + (f" ({ended} session(s) ended)" if disabled else ""))


@annotators_app.command("revoke")
def annotators_revoke(
    name: Annotated[str, typer.Argument(help="The account to sign out everywhere.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Sign an annotator out of every browser (a lost laptop); the account stays usable."""
    with open_existing(db) as store:
        if store.annotator(name) is None:
            raise InputError("NAME", None, f"no annotator named {name!r}")
        ended = store.delete_sessions(name)
    out.print(f"signed out {name}: {ended} session(s) ended")


@annotators_app.command("disable")
def annotators_disable(
    name: Annotated[str, typer.Argument(help="The account to disable.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Disable an account: it can no longer log in, and live sessions end within seconds."""
    _set_disabled(db, name, True)


@annotators_app.command("enable")
def annotators_enable(
    name: Annotated[str, typer.Argument(help="The account to enable again.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Enable a disabled account again (its votes were never removed)."""
    _set_disabled(db, name, False)


@campaign_app.command("create")
def campaign_create(
    name: Annotated[str, typer.Option(help="Unique campaign name (not all digits).")],
    suite: Annotated[str, typer.Option(help="Suite whose stored runs supply the items.")],
    models: Annotated[list[str] | None, typer.Option(
        help="Models to compare (run model identities), comma-separated or repeated; "
        "default ALL: every model with a completed run of the suite.")] = None,
    kind: Annotated[CampaignKind, typer.Option(help="pairwise (A vs B) or single (rate one "
                                               "output).")] = CampaignKind.PAIRWISE,
    votes_per_item: Annotated[int, typer.Option(
        help="Distinct annotators wanted on each item.")] = 3,
    guidelines: Annotated[Path | None, typer.Option(
        help="Markdown file shown to annotators (default: built-in guidelines).")] = None,
    scale: Annotated[str, typer.Option(help="Single rating: the scale LOW-HIGH.")] = "1-5",
    gold: Annotated[Path | None, typer.Option(
        help="JSONL of known answers: {sample_id, answer[, model]}; answer is the better "
        "model's name, tie or both_bad (pairwise) or a rating (single).")] = None,
    gold_every: Annotated[int, typer.Option(
        min=2, help="Serve a gold item as every Nth item of an annotator.")] = 5,
    quota: Annotated[int, typer.Option(
        min=0, help="Most items per annotator (0: no limit).")] = 0,
    limit: Annotated[int, typer.Option(min=0, help="Use the first N samples (0: all).")] = 0,
    keep_identical: Annotated[bool, typer.Option(
        help="Keep pairs whose two outputs are identical (skipped by default).")] = False,
    exist_ok: Annotated[bool, typer.Option(
        "--exist-ok", help="If a campaign of this name exists, leave it and succeed.")] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Create a review campaign from completions already stored for a suite."""
    from review_ui.campaigns import (
        DEFAULT_GUIDELINES,
        CampaignSpec,
        create_campaign,
        parse_scale,
        read_gold,
    )

    names = [m.strip() for value in (models or []) for m in value.split(",") if m.strip()]
    if names == ["ALL"]:
        names = []
    if guidelines is not None and not guidelines.is_file():
        raise InputError("--guidelines", None, f"no file at {guidelines}")
    text = guidelines.read_text(encoding="utf-8") if guidelines else DEFAULT_GUIDELINES
    spec = CampaignSpec(
        name=name, suite=suite, kind=kind.value, models=tuple(names), votes_per_item=votes_per_item,
        guidelines=text, scale=parse_scale(scale), gold=read_gold(gold) if gold else (),
        gold_every=gold_every, quota=quota, limit=limit, keep_identical=keep_identical)
    with open_existing(db) as store:
        existing = store.campaign(name) if exist_ok and not name.isdigit() else None
        if existing is not None:
            out.print(f"campaign {name} exists (id {existing.id}); left unchanged")
            return
        record, n_items = create_campaign(store, spec)
    models_used = ", ".join(record.config["models"])
    out.print(f"campaign {record.name} (id {record.id}, {record.kind}): {n_items} items from "
              f"{models_used}; {record.config['skipped_identical']} identical pairs skipped")


@campaign_app.command("list")
def campaign_list(db: DbOption = DEFAULT_DB, format: FormatOption = ListFormat.TABLE) -> None:
    """List campaigns with their kind, suite, items and votes so far."""
    from review_ui.assign import CampaignState

    rows = []
    with open_existing(db) as store:
        for c in store.campaigns():
            state = CampaignState.build(c, store.campaign_items(c.id), store.campaign_votes(c.id))
            done, wanted = state.campaign_progress()
            rows.append({"id": c.id, "name": c.name, "kind": c.kind, "suite": c.suite,
                         "models": list(c.config["models"]), "items": len(state.items),
                         "votes": done, "votes_wanted": wanted,
                         "progress": f"{done} / {wanted}"})
    columns = (Column("id", justify="right"), Column("name"), Column("kind", drop=2),
               Column("suite", drop=3), Column("models", shrinks=True, show=", ".join, drop=1),
               Column("items", justify="right"), Column("progress", "votes", justify="right",
                                                         in_data=False),
               Column("votes", in_table=False), Column("votes_wanted", in_table=False))
    print_listing(out, f"campaigns in {db}", columns, rows, format)


@campaign_app.command("export")
def campaign_export(
    campaign: Annotated[str, typer.Argument(help="Campaign name or id.")],
    db: DbOption = DEFAULT_DB,
    format: Annotated[ExportFormat, typer.Option(help="csv or jsonl.")] = ExportFormat.JSONL,
    output: Annotated[Path | None, typer.Option("--out", help="File (default stdout).")] = None,
) -> None:
    """Export every vote row of a campaign (undos and skips included)."""
    from review_ui.assign import CampaignState
    from review_ui.reports import export_rows, to_csv, to_jsonl

    with open_existing(db) as store:
        record = store.campaign(campaign)
        if record is None:
            raise InputError("CAMPAIGN", None, f"no campaign {campaign!r} in {db}")
        rows = store.campaign_votes(record.id)
        state = CampaignState.build(record, store.campaign_items(record.id), rows)
    table = export_rows(state, rows)
    text = to_csv(table) if format == "csv" else to_jsonl(table)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)



