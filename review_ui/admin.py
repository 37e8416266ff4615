"""The admin pages (Gradio Blocks at /admin): progress, agreement, per-annotator
statistics, exports, accounts and the leaderboard.

The whole /admin prefix is refused to non-admins by the server's gate, and
the ``auth_dependency`` of this app only names admins, so even a handler
called by hand runs for an admin only. Reports are computed from the database
(a second connection), never from the live in-memory state.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from review_ui.render import LOGOUT_FORM, text_html
from review_ui.reports import campaign_report, leaderboard
from review_ui.service import ReviewService

AGREEMENT_HELP = (
    "Fleiss' kappa and Krippendorff's alpha run over items with two or more live votes; "
    "1 is perfect agreement, 0 is chance, below 0 is worse than chance. For ratings, "
    "the interval alpha counts 4 vs 5 as a smaller disagreement than 1 vs 5. "
    "Agreement with majority compares each vote with the plurality of the *other* "
    "annotators on the item (items with a tie among them are left out)."
)


def _admin(request: gr.Request | None) -> str:
    name = getattr(request, "username", None)
    if not name:
        raise gr.Error("Admins only: log in again.")
    return str(name)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else str(value)


def build_admin_app(service: ReviewService) -> gr.Blocks:
    with gr.Blocks(title="evalarena review · admin") as demo:
        header = gr.HTML(elem_id="admin-header")
        with gr.Row():
            campaign = gr.Dropdown(label="Campaign", choices=[], interactive=True,
                                   elem_id="admin-campaign")
            refresh = gr.Button("Refresh", elem_id="admin-refresh")
        with gr.Tabs():
            with gr.Tab("Progress"):
                summary = gr.HTML(elem_id="admin-progress")
                per_annotator = gr.Dataframe(interactive=False, elem_id="admin-annotator-stats")
            with gr.Tab("Agreement"):
                agreement = gr.HTML(elem_id="admin-agreement")
                gr.Markdown(AGREEMENT_HELP)
            with gr.Tab("Export"):
                export = gr.HTML(elem_id="admin-export")
            with gr.Tab("Annotators"):
                accounts = gr.Dataframe(interactive=False, elem_id="admin-accounts")
                gr.Markdown("Add or disable accounts with `evalarena annotators add|disable`.")
            with gr.Tab("Leaderboard"):
                source = gr.Radio(["human", "all"], value="human", label="Battles from",
                                  elem_id="admin-board-source")
                board = gr.Dataframe(interactive=False, elem_id="admin-leaderboard")

        def on_load(request: gr.Request) -> dict[Any, Any]:
            user = _admin(request)
            choices = [(c.name, str(c.id)) for c in service.campaigns()]
            return {header: f"Admin: <b>{text_html(user)}</b> · <a href='/annotate/'>Annotate"
                            f"</a> · {LOGOUT_FORM}",
                    campaign: gr.update(choices=choices,
                                        value=choices[0][1] if choices else None)}

        def report(campaign_id: Any, request: gr.Request) -> dict[Any, Any]:
            _admin(request)
            listing = pd.DataFrame([{"name": a.name, "role": a.role, "disabled": a.disabled,
                                     "created": a.created_at} for a in service.annotator_list()])
            if campaign_id in (None, ""):
                return {summary: "No campaign yet: `evalarena campaign create ...`",
                        accounts: listing}
            cid = int(campaign_id)
            data = campaign_report(*service.snapshot(cid))
            p, a = data["progress"], data["agreement"]
            progress_html = (
                f"<p><b>{text_html(data['campaign'])}</b> ({data['kind']}): "
                f"{p['votes']} of {p['votes_wanted']} votes ({p['percent']}%), "
                f"{p['items_complete']} of {p['items']} items complete, "
                f"{p['gold_items']} gold items.</p>")
            rows = "".join(f"<tr><td>{text_html(k)}</td><td>{_fmt(v)}</td></tr>"
                           for k, v in a.items())
            links = (f"<p><a id='export-csv' href='/api/admin/campaigns/{cid}/votes.csv'>"
                     f"votes.csv</a> · <a id='export-jsonl' "
                     f"href='/api/admin/campaigns/{cid}/votes.jsonl'>votes.jsonl</a> — every "
                     "row, undos and skips included (column <code>undone</code> marks votes "
                     "later taken back).</p>")
            return {summary: progress_html, per_annotator: pd.DataFrame(data["annotators"]),
                    agreement: f"<table>{rows}</table>", export: links, accounts: listing}

        def ranking(which: str, request: gr.Request) -> pd.DataFrame:
            _admin(request)
            return pd.DataFrame(leaderboard(service.battles(None if which == "all" else which)))

        outputs = [summary, per_annotator, agreement, export, accounts]
        private: dict[str, Any] = {"api_visibility": "private", "queue": False}
        demo.load(on_load, outputs=[header, campaign], **private).then(
            report, inputs=[campaign], outputs=outputs, **private).then(
            ranking, inputs=[source], outputs=[board], **private)
        campaign.input(report, inputs=[campaign], outputs=outputs, **private)
        refresh.click(report, inputs=[campaign], outputs=outputs, **private).then(
            ranking, inputs=[source], outputs=[board], **private)
        source.change(ranking, inputs=[source], outputs=[board], **private)
    return demo
