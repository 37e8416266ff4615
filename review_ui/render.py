"""Model outputs (and prompts) as Markdown whose HTML is always text.

Outputs are untrusted: a model can be prompted into writing ``<script>`` or
``<img onerror=...>``. They are rendered here, on the server, with
markdown-it in CommonMark mode with raw HTML *disabled* (every ``<`` that is
not Markdown syntax becomes ``&lt;``), and with links and images turned off
(no clickable ``javascript:`` URL, no remote image that could track a
reviewer). Code blocks, emphasis, lists, tables and headings still render.
The browser only ever receives HTML that markdown-it produced from escaped
text, so the page shows the payload and runs nothing.
"""

from __future__ import annotations

import html

from markdown_it import MarkdownIt

# breaks: a newline in an output is a line break, as the model wrote it (CommonMark
# would join the lines of a paragraph into one)
_MD = (MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
       .enable(["table", "strikethrough"])
       .disable(["image", "link", "autolink"]))


def markdown_html(text: str | None) -> str:
    """Safe HTML for a Markdown text that may contain hostile HTML."""
    if not text:
        return ""
    return _MD.render(text)


# logging out changes state, so it is a POST (a form), never a link a page could embed
LOGOUT_FORM = ('<form method="post" action="/logout" style="display:inline">'
               '<button type="submit" id="logout">Log out</button></form>')


def text_html(text: str) -> str:
    """Plain text (a name, a message) as HTML; NUL shown as U+FFFD, as Markdown does."""
    return html.escape(text.replace("\x00", "\ufffd"))


def output_panel(label: str, text: str | None, elem: str) -> str:
    """A labelled box holding one rendered output; ``elem`` names it for tests and CSS."""
    return (f'<div class="ea-panel" data-testid="{html.escape(elem)}">'
            f'<div class="ea-label">{text_html(label)}</div>'
            f'<div class="ea-body">{markdown_html(text)}</div></div>')
