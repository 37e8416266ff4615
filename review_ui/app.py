"""The annotator pages (Gradio Blocks at /annotate) and the mounting of both apps.

Handlers hold no authority of their own: they pass the session's user name
(``gr.Request.username``, which our ``auth_dependency`` fills from the session
cookie) to ``ReviewService``, which decides what may be seen and done. Every
text that came from a model or a data set goes through ``review_ui.render``
and is displayed as escaped HTML, never as markup of its own.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd
from fastapi import FastAPI, Request

from review_ui.render import LOGOUT_FORM, markdown_html, output_panel, text_html
from review_ui.reports import leaderboard
from review_ui.service import ReviewError, ReviewService

SHORTCUTS = ("Keyboard: **A** or **1** = A is better · **B** or **2** = B is better · "
             "**T** or **3** = tie · **X** or **4** = both are bad · ratings: **1**-**9** "
             "then **Enter** · **S** = skip · **N** = next · **U** = undo")

KEYBOARD_JS = """
() => {
  if (window.__evalarenaKeys) return;
  window.__evalarenaKeys = true;
  const pair = {a: "vote-a", "1": "vote-a", b: "vote-b", "2": "vote-b", t: "vote-tie",
                "3": "vote-tie", x: "vote-bad", "4": "vote-bad"};
  const common = {s: "skip", n: "next", u: "undo"};
  const usable = (id) => {
    let el = document.getElementById(id);
    if (el && el.tagName !== "BUTTON") el = el.querySelector("button");
    return el && !el.disabled && el.offsetParent !== null ? el : null;
  };
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (target && (target.tagName === "TEXTAREA" || target.isContentEditable ||
        (target.tagName === "INPUT" && target.type !== "radio" && target.type !== "checkbox")))
      return;
    const key = event.key.toLowerCase();
    let button = null;
    if (usable("vote-a")) button = pair[key] ? usable(pair[key]) : null;
    else if (usable("submit-rating")) {
      if (/^[0-9]$/.test(key)) {
        const radio = document.querySelector(`#rating input[type=radio][value="${key}"]`);
        if (radio) { radio.click(); event.preventDefault(); }
        return;
      }
      if (key === "enter") button = usable("submit-rating");
    }
    if (!button && common[key]) button = usable(common[key]);
    if (button) { event.preventDefault(); button.click(); }
  });
}
"""

# Outputs as written, whatever their shape: a 20,000-character line wraps inside its
# panel, a 10,000-line output scrolls inside it, code keeps its indentation in
# monospace, and the vote buttons stay on screen (tests/review/test_review_browser.py)
CSS = """
.ea-panel {border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px;
           min-width: 0; max-width: 100%; box-sizing: border-box;}
.ea-label {font-weight: 600; margin-bottom: 6px; opacity: .75;}
.ea-body {overflow-wrap: anywhere; word-break: break-word; max-height: 50vh; overflow: auto;}
.ea-body pre {white-space: pre-wrap; overflow-wrap: anywhere; background:
              var(--background-fill-secondary); padding: 8px; border-radius: 6px;}
.ea-body pre, .ea-body code {font-family: var(--font-mono), ui-monospace, monospace;}
#output-a, #output-b {min-width: 0; flex: 1 1 0; overflow: hidden;}
#vote-row {position: fixed; left: 0; right: 0; bottom: 0; z-index: 5; margin: 0;
           padding: 8px 16px; background: var(--background-fill-primary);
           border-top: 1px solid var(--border-color-primary);}
.gradio-container {padding-bottom: 72px !important;}  /* room under the fixed buttons */
"""


def _user(request: gr.Request | None) -> str:
    name = getattr(request, "username", None)
    if not name:
        raise gr.Error("Your session has ended: reload the page and log in again.")
    return str(name)


def build_annotator_app(service: ReviewService) -> gr.Blocks:
    with gr.Blocks(title="evalarena review") as demo:
        header = gr.HTML(elem_id="header")
        campaign = gr.Dropdown(label="Campaign", choices=[], interactive=True,
                               elem_id="campaign")
        st = gr.State({})
        with gr.Tabs():
            with gr.Tab("Review"):
                status = gr.HTML(elem_id="status")
                prompt = gr.HTML(elem_id="prompt")
                with gr.Column(visible=False) as pair_box:
                    with gr.Row():
                        left = gr.HTML(elem_id="output-a")
                        right = gr.HTML(elem_id="output-b")
                    reason = gr.Textbox(label="Reason (optional)", elem_id="reason", lines=1)
                    with gr.Row(elem_id="vote-row"):
                        vote_a = gr.Button("A is better", elem_id="vote-a", variant="primary")
                        vote_b = gr.Button("B is better", elem_id="vote-b", variant="primary")
                        vote_tie = gr.Button("Tie", elem_id="vote-tie")
                        vote_bad = gr.Button("Both are bad", elem_id="vote-bad")
                with gr.Column(visible=False) as single_box:
                    output = gr.HTML(elem_id="output-single")
                    rating = gr.Radio(label="Rating", choices=[], elem_id="rating")
                    flags = gr.CheckboxGroup(label="Flags", choices=[], elem_id="flags")
                    comment = gr.Textbox(label="Comment (optional)", elem_id="comment")
                    submit = gr.Button("Submit rating", elem_id="submit-rating",
                                       variant="primary")
                reveal = gr.HTML(elem_id="reveal")
                with gr.Row():
                    skip = gr.Button("Skip", elem_id="skip")
                    nxt = gr.Button("Next", elem_id="next", interactive=False)
                    undo = gr.Button("Undo last vote", elem_id="undo")
                gr.Markdown(SHORTCUTS, elem_id="shortcuts")
            with gr.Tab("Guidelines"):
                guidelines = gr.HTML(elem_id="guidelines")
            with gr.Tab("Progress"):
                progress = gr.HTML(elem_id="progress")
            with gr.Tab("Leaderboard"):
                board = gr.Dataframe(interactive=False, elem_id="leaderboard")
                refresh = gr.Button("Refresh", elem_id="refresh-leaderboard")

        everything = [st, status, prompt, pair_box, left, right, reason, vote_a, vote_b,
                      vote_tie, vote_bad, single_box, output, rating, flags, comment, submit,
                      reveal, skip, nxt, guidelines, progress]
        votes = (vote_a, vote_b, vote_tie, vote_bad)

        def progress_html(p: dict[str, int], message: str = "") -> str:
            line = (f"You: {p['done']} / {p['target']} · campaign: {p['campaign_done']} / "
                    f"{p['campaign_target']} votes")
            return text_html(line) + (f" · <b>{text_html(message)}</b>" if message else "")

        def answering(view: dict[str, Any] | None, campaign_id: int, user: str,
                      message: str = "") -> dict[Any, Any]:
            """Updates that put an item on screen (or say there is none)."""
            up: dict[Any, Any] = {reveal: "", nxt: gr.update(interactive=False)}
            if view is None:
                p = service.progress(user, campaign_id)
                up.update({st: {"campaign": campaign_id, "item": None},
                           status: progress_html(p, message or "Nothing left for you here."),
                           prompt: "", pair_box: gr.update(visible=False),
                           single_box: gr.update(visible=False),
                           skip: gr.update(interactive=False)})
                return up
            up.update({st: {"campaign": campaign_id, "item": view["item_id"]},
                       status: progress_html(view["progress"], message),
                       prompt: output_panel("Prompt", view["prompt"], "prompt"),
                       skip: gr.update(interactive=True)})
            if view["kind"] == "pairwise":
                up.update({pair_box: gr.update(visible=True),
                           single_box: gr.update(visible=False),
                           left: output_panel("A", view["a"], "output-a"),
                           right: output_panel("B", view["b"], "output-b"), reason: ""})
                up.update({b: gr.update(interactive=True) for b in votes})
            else:
                low, high = view["scale"]
                up.update({pair_box: gr.update(visible=False),
                           single_box: gr.update(visible=True),
                           output: output_panel("Output", view["output"], "output-single"),
                           rating: gr.update(choices=[str(n) for n in range(low, high + 1)],
                                             value=None),
                           flags: gr.update(choices=view["flags"], value=[]), comment: "",
                           submit: gr.update(interactive=True)})
            return up

        def show(campaign_id: Any, request: gr.Request) -> dict[Any, Any]:
            user = _user(request)
            if campaign_id in (None, ""):
                return {status: "No campaign yet."}
            cid = int(campaign_id)
            info = service.describe(user, cid)
            up = answering(service.next_item(user, cid), cid, user)
            up[guidelines] = markdown_html(info["guidelines"])
            p = info["progress"]
            up[progress] = (f"<p>You have answered <b>{p['done']}</b> of <b>{p['target']}</b> "
                            f"items in {text_html(info['name'])}.</p><p>The campaign has "
                            f"{p['campaign_done']} of {p['campaign_target']} votes.</p>")
            return up

        def on_load(request: gr.Request) -> dict[Any, Any]:
            user = _user(request)
            choices = [(c.name, str(c.id)) for c in service.campaigns()]
            wanted = request.query_params.get("campaign") if request else None
            value = next((cid for name, cid in choices if name == wanted),
                         choices[0][1] if choices else None)
            return {header: f"Signed in as <b>{text_html(user)}</b> · "
                            f"{LOGOUT_FORM}",
                    campaign: gr.update(choices=choices, value=value)}

        def acted(state: dict[str, Any], result: dict[str, Any], message: str,
                  names: str = "") -> dict[Any, Any]:
            up: dict[Any, Any] = {status: progress_html(result["progress"], message),
                                  nxt: gr.update(interactive=True),
                                  skip: gr.update(interactive=False),
                                  submit: gr.update(interactive=False), reveal: names}
            up.update({b: gr.update(interactive=False) for b in votes})
            return up

        def cast(choice: str) -> Any:
            def handler(state: dict[str, Any], why: str, request: gr.Request) -> dict[Any, Any]:
                user = _user(request)
                try:
                    result = service.vote(user, state["campaign"], state["item"],
                                          choice=choice, reason=why)
                except (ReviewError, KeyError, TypeError) as exc:
                    raise gr.Error(str(exc)) from None
                shown = result["reveal"]
                names = (f"<p id='reveal-text'>A was <b>{text_html(shown['a'])}</b> · "
                         f"B was <b>{text_html(shown['b'])}</b></p>")
                return acted(state, result, "Vote recorded.", names)
            return handler

        def rate(state: dict[str, Any], value: str | None, ticked: list[str], note: str,
                 request: gr.Request) -> dict[Any, Any]:
            user = _user(request)
            if value in (None, ""):
                raise gr.Error("Choose a rating first.")
            try:
                result = service.vote(user, state["campaign"], state["item"],
                                      rating=int(str(value)), flags=ticked or [], reason=note)
            except (ReviewError, KeyError, TypeError) as exc:
                raise gr.Error(str(exc)) from None
            model = text_html(result["reveal"]["model"])
            names = f"<p id='reveal-text'>Output of <b>{model}</b></p>"
            return acted(state, result, "Rating recorded.", names)

        def skip_item(state: dict[str, Any], request: gr.Request) -> dict[Any, Any]:
            user = _user(request)
            try:
                service.skip(user, state["campaign"], state["item"])
            except (ReviewError, KeyError, TypeError) as exc:
                raise gr.Error(str(exc)) from None
            return answering(service.next_item(user, state["campaign"]), state["campaign"],
                             user, "Skipped.")

        def next_item(state: dict[str, Any], request: gr.Request) -> dict[Any, Any]:
            user = _user(request)
            if not state.get("campaign"):
                raise gr.Error("Choose a campaign first.")
            return answering(service.next_item(user, state["campaign"]), state["campaign"], user)

        def undo_last(state: dict[str, Any], request: gr.Request) -> dict[Any, Any]:
            user = _user(request)
            try:
                result = service.undo(user, state["campaign"])
            except (ReviewError, KeyError, TypeError) as exc:
                raise gr.Error(str(exc)) from None
            return answering(result["item"], state["campaign"], user,
                             "Undone: answer it again.")

        def refresh_board(request: gr.Request) -> pd.DataFrame:
            _user(request)
            return pd.DataFrame(leaderboard(service.battles("human")))

        private: dict[str, Any] = {"api_visibility": "private", "queue": False}
        demo.load(on_load, outputs=[header, campaign], **private).then(
            show, inputs=[campaign], outputs=everything, **private).then(
            refresh_board, outputs=[board], **private)
        campaign.input(show, inputs=[campaign], outputs=everything, **private)
        for button, choice in zip(votes, ("a", "b", "tie", "both_bad"), strict=True):
            button.click(cast(choice), inputs=[st, reason], outputs=everything, **private)
        submit.click(rate, inputs=[st, rating, flags, comment], outputs=everything, **private)
        skip.click(skip_item, inputs=[st], outputs=everything, **private)
        nxt.click(next_item, inputs=[st], outputs=everything, **private)
        undo.click(undo_last, inputs=[st], outputs=everything, **private)
        refresh.click(refresh_board, outputs=[board], **private)
    return demo


def mount_ui(app: FastAPI, service: ReviewService) -> None:
    """Mount the annotator and admin apps; Gradio learns the user from our session."""
    from review_ui.admin import build_admin_app

    def user(request: Request) -> str | None:
        session = request.scope.get("state", {}).get("session")
        return session.name if session is not None else None

    def admin(request: Request) -> str | None:
        session = request.scope.get("state", {}).get("session")
        return session.name if session is not None and session.is_admin else None

    common: dict[str, Any] = {"footer_links": [], "ssr_mode": False, "mcp_server": False,
                              "run_history": False, "css": CSS, "show_error": True}
    gr.mount_gradio_app(app, build_annotator_app(service), path="/annotate",
                        auth_dependency=user, js=KEYBOARD_JS, **common)
    gr.mount_gradio_app(app, build_admin_app(service), path="/admin",
                        auth_dependency=admin, **common)
