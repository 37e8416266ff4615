"""The review app in a real headless Chromium: log in, vote with mouse and
keyboard, skip, undo, rate, and check every row in the database; and prove an
output full of HTML payloads is shown as text and runs nothing."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import add_account, running_server, seed_run

from harness.store import Store
from review_ui.campaigns import CampaignSpec, create_campaign

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="Debian chromium not installed (apt-get install chromium)"),
]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAYLOAD = ('Try this: <script>window.__xss = "script"; alert("script")</script>\n\n'
           '<img src="x" onerror="window.__xss = \'img\'; alert(\'img\')">\n\n'
           '```html\n<script>window.__xss = "code"</script>\n```')
TIMEOUT = 20_000  # ms
LONG_LINE = "x" * 20_000  # one unbroken line
MANY_LINES = "\n".join(f"line {i}:    indented {'  ' * (i % 4)}text" for i in range(10_000)) + \
    "\n\n```python\ndef f(x):\n    return x  # indented code\n```"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "results" / "review-screenshots"


@pytest.fixture(scope="module")
def app_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    db = tmp_path_factory.mktemp("browser") / "ui.db"
    prompts = [f"Question number {i}?" for i in range(6)]
    with Store(db) as store:
        seed_run(store, "model-x", prompts, lambda i, _: f"**Answer {i}** from the first")
        seed_run(store, "model-y", prompts, lambda i, _: f"Second says `{i}`\n\n- a list")
        seed_run(store, "evil-1", ["<script>window.__xss='prompt'</script> hi?"],
                 lambda i, _: PAYLOAD, suite="xss")
        seed_run(store, "evil-2", ["<script>window.__xss='prompt'</script> hi?"],
                 lambda i, _: "plain <b>bold?</b> " + PAYLOAD, suite="xss")
        create_campaign(store, CampaignSpec(name="pairs", suite="smoke"))
        create_campaign(store, CampaignSpec(name="ratings", suite="smoke", kind="single",
                                            models=("model-x",)))
        create_campaign(store, CampaignSpec(name="xss", suite="xss"))
        seed_run(store, "long-line", ["Write one very long word."], lambda i, _: LONG_LINE,
                 suite="long")
        seed_run(store, "many-lines", ["Write many lines."], lambda i, _: MANY_LINES,
                 suite="long")
        create_campaign(store, CampaignSpec(name="long", suite="long"))
        add_account(store, "alice", "alice-password")
        add_account(store, "root", "root-password", role="admin")
    with running_server(db) as base:
        yield base, db


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


def rows(db: Path, campaign: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT v.id, v.item_id, v.outcome, v.left_is_a, v.reason, v.flags, v.supersedes "
            "FROM votes v JOIN campaigns c ON c.id = v.campaign_id WHERE c.name = ? "
            "ORDER BY v.id", (campaign,)).fetchall()


def battles(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT ref FROM battles WHERE source='human'")]


def wait_status(page: Any, text: str) -> None:
    page.wait_for_function("t => (document.getElementById('status')?.innerText || '')"
                           ".includes(t)", arg=text, timeout=TIMEOUT)


def prompt_text(page: Any) -> str:
    return str(page.inner_text("[data-testid=prompt] .ea-body"))


def wait_new_prompt(page: Any, old: str) -> str:
    page.wait_for_function(
        "old => { const e = document.querySelector('[data-testid=prompt] .ea-body');"
        " return e && e.innerText.trim() && e.innerText !== old; }", arg=old, timeout=TIMEOUT)
    return prompt_text(page)


def open_campaign(page: Any, base: str, name: str) -> None:
    page.goto(f"{base}/annotate/?campaign={name}")
    page.wait_for_selector("[data-testid=prompt] .ea-body", timeout=TIMEOUT)


def log_in(page: Any, base: str) -> None:
    page.goto(base + "/annotate/")
    assert page.url.endswith("/login")  # every page needs a session
    page.fill("#name", "alice")
    page.fill("#password", "not-the-password")
    page.click("#login")
    assert page.inner_text("#login-error") == "wrong name or password"
    page.fill("#name", "alice")
    page.fill("#password", "alice-password")
    page.click("#login")
    page.wait_for_url(f"{base}/annotate/", timeout=TIMEOUT)


def test_pairwise_votes_with_mouse_and_keyboard_skip_and_undo(app_db: tuple[str, Path],
                                                             browser: Any) -> None:
    base, db = app_db
    page = browser.new_page()
    log_in(page, base)
    open_campaign(page, base, "pairs")
    assert "Keyboard:" in page.inner_text("#shortcuts")
    assert "model-x" not in page.content() and "model-y" not in page.content()

    # 1. mouse: "A is better"; names appear only now
    first = prompt_text(page)
    page.click("#vote-a")
    page.wait_for_selector("#reveal-text", timeout=TIMEOUT)
    revealed = page.inner_text("#reveal-text")
    assert "model-x" in revealed and "model-y" in revealed
    (vote,) = rows(db, "pairs")
    shown_a_is_a = bool(vote[3])
    assert vote[2] == ("a" if shown_a_is_a else "b")
    assert battles(db) == [str(vote[0])]

    # 2. mouse "Next", keyboard "2" (B is better)
    page.click("#next")
    second = wait_new_prompt(page, first)
    page.keyboard.press("2")
    page.wait_for_selector("#reveal-text", timeout=TIMEOUT)
    latest = rows(db, "pairs")[-1]
    assert latest[2] == ("b" if latest[3] else "a")

    # 3. keyboard "n" then "s": skip the third item
    page.keyboard.press("n")
    third = wait_new_prompt(page, second)
    page.keyboard.press("s")
    wait_status(page, "Skipped.")
    fourth = prompt_text(page)
    assert fourth != third
    assert rows(db, "pairs")[-1][2] == "skip"

    # 4. keyboard "t" (tie) with a reason, then undo with the mouse: same item is back
    page.fill("#reason textarea", "both fine")
    page.click("#shortcuts")  # leave the text box so keys are shortcuts again
    page.keyboard.press("t")
    page.wait_for_selector("#reveal-text", timeout=TIMEOUT)
    tie = rows(db, "pairs")[-1]
    assert tie[2] == "tie" and tie[4] == "both fine"
    page.click("#undo")
    wait_status(page, "Undone")
    assert prompt_text(page) == fourth
    undo = rows(db, "pairs")[-1]
    assert undo[2] == "undo" and undo[6] == tie[0]
    assert str(tie[0]) not in battles(db)

    # 5. answer it again with the keyboard: "x" = both are bad
    page.keyboard.press("x")
    page.wait_for_selector("#reveal-text", timeout=TIMEOUT)
    final = rows(db, "pairs")[-1]
    assert final[2] == "both_bad" and final[1] == tie[1]
    outcomes = [r[2] for r in rows(db, "pairs")]
    assert outcomes[2:] == ["skip", "tie", "undo", "both_bad"]
    live_votes = [r for r in rows(db, "pairs") if r[2] not in ("skip", "undo")
                  and r[0] != tie[0]]
    assert sorted(battles(db)) == sorted(str(r[0]) for r in live_votes)
    page.close()


def test_single_rating_with_mouse_and_keyboard(app_db: tuple[str, Path],
                                               browser: Any) -> None:
    base, db = app_db
    page = browser.new_page()
    log_in(page, base)
    open_campaign(page, base, "ratings")
    page.wait_for_selector("[data-testid=output-single]", timeout=TIMEOUT)
    first = prompt_text(page)
    page.click("#rating label:has-text('4')")
    page.click("#flags label:has-text('incorrect')")
    page.fill("#comment textarea", "off by one")
    page.click("#submit-rating")
    page.wait_for_selector("#reveal-text", timeout=TIMEOUT)
    assert "model-x" in page.inner_text("#reveal-text")
    (rated,) = rows(db, "ratings")
    assert rated[2] == "rating:4" and rated[5] == '["incorrect"]' and rated[4] == "off by one"

    page.keyboard.press("n")
    wait_new_prompt(page, first)
    page.keyboard.press("2")
    page.wait_for_function("() => document.querySelector('#rating input[value=\"2\"]')?.checked",
                           timeout=TIMEOUT)
    page.keyboard.press("Enter")
    page.wait_for_selector("#reveal-text", timeout=TIMEOUT)
    assert rows(db, "ratings")[-1][2] == "rating:2"
    page.close()


def test_hostile_outputs_are_shown_as_text_and_run_nothing(app_db: tuple[str, Path],
                                                           browser: Any) -> None:
    base, db = app_db
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, base)
    open_campaign(page, base, "xss")
    page.wait_for_selector("[data-testid=output-a] .ea-body", timeout=TIMEOUT)
    page.wait_for_timeout(1000)  # give any payload time to fire
    for panel in ("prompt", "output-a", "output-b"):
        body = f"[data-testid={panel}] .ea-body"
        assert page.locator(f"{body} script, {body} img, {body} [onerror]").count() == 0
    shown = page.inner_text("[data-testid=output-a]") + page.inner_text("[data-testid=output-b]")
    assert '<script>window.__xss = "script"; alert("script")</script>' in shown
    assert "<img src=\"x\" onerror=" in shown
    assert "<b>bold?</b>" in shown  # even harmless tags are text
    assert '<script>window.__xss = "code"</script>' in shown  # the code block, verbatim
    assert page.locator("[data-testid=output-a] pre code").count() == 1
    assert "<script>window.__xss='prompt'</script>" in prompt_text(page)
    assert page.evaluate("() => window.__xss") is None
    assert dialogs == []
    page.keyboard.press("1")  # the page still works
    page.wait_for_selector("#reveal-text", timeout=TIMEOUT)
    assert page.evaluate("() => window.__xss") is None and dialogs == []
    assert len(rows(db, "xss")) == 1
    page.close()


def test_long_outputs_stay_in_their_panels_and_the_buttons_on_screen(
        app_db: tuple[str, Path], browser: Any) -> None:
    """By geometry: a 20,000-character line and a 10,000-line output never overlap each
    other or leave the window, line breaks and code indentation are kept, and the
    vote buttons are visible and work."""
    base, db = app_db
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    log_in(page, base)
    open_campaign(page, base, "long")
    page.wait_for_selector("[data-testid=output-b] .ea-body", timeout=TIMEOUT)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "long-outputs.png"))
    a = page.locator("[data-testid=output-a]").bounding_box()
    b = page.locator("[data-testid=output-b]").bounding_box()
    assert a is not None and b is not None
    left, right = sorted((a, b), key=lambda box: box["x"])
    assert left["x"] + left["width"] <= right["x"] + 1  # side by side, never overlapping
    assert right["x"] + right["width"] <= 1280 + 1  # nothing runs off the window
    for box in (a, b):
        assert box["height"] <= 800  # a long output scrolls inside its panel
    texts = [page.inner_text(f"[data-testid={p}] .ea-body") for p in ("output-a", "output-b")]
    many = next(t for t in texts if "line 9999" in t)
    assert many.count("\n") >= 10_000  # every line break kept
    assert "    return x  # indented code" in many  # code keeps its indentation
    assert page.locator("[data-testid=output-a] pre code, [data-testid=output-b] pre code"
                        ).first.evaluate("e => getComputedStyle(e).fontFamily").lower() \
        .find("mono") >= 0
    for button in ("#vote-a", "#vote-b", "#vote-tie", "#vote-bad"):
        box = page.locator(button).bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 800, button
    page.click("#vote-tie")
    page.wait_for_selector("#reveal-text", timeout=TIMEOUT)
    page.screenshot(path=str(SCREENSHOTS / "long-outputs-voted.png"))
    assert [r[2] for r in rows(db, "long")] == ["tie"]
    page.close()


def test_admin_sees_progress_agreement_and_exports(app_db: tuple[str, Path],
                                                   browser: Any) -> None:
    base, db = app_db
    annotator = browser.new_page()
    log_in(annotator, base)
    refused = annotator.goto(base + "/admin/")
    assert refused is not None and refused.status == 403
    annotator.close()

    page = browser.new_page(accept_downloads=True)
    page.goto(base + "/login")
    page.fill("#name", "root")
    page.fill("#password", "root-password")
    page.click("#login")
    page.wait_for_url(f"{base}/admin/", timeout=TIMEOUT)
    page.wait_for_selector("#admin-progress p", timeout=TIMEOUT)
    assert "pairs (pairwise)" in page.inner_text("#admin-progress")
    assert "alice" in page.inner_text("#admin-annotator-stats")
    page.click("button[role=tab]:has-text('Agreement')")
    assert "fleiss_kappa" in page.inner_text("#admin-agreement")
    page.click("button[role=tab]:has-text('Export')")
    with page.expect_download(timeout=TIMEOUT) as download:
        page.click("#export-csv")
    exported = Path(download.value.path()).read_text().splitlines()
    assert exported[0].startswith("vote_id,campaign,") and len(exported) - 1 == len(
        rows(db, "pairs"))
    page.click("#logout")  # a POST form: logging out is never a link
    page.wait_for_url("**/login", timeout=TIMEOUT)
    page.goto(base + "/admin/")
    assert page.url.endswith("/login")  # the session is gone
    page.close()
