"""Who can see what in the review server (the whole app, Gradio included, in process)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import add_account, seed_run

import review_ui.service
from harness.store import Store
from review_ui.api import COOKIE, create_app
from review_ui.campaigns import CampaignSpec, create_campaign
from review_ui.service import ReviewService

MODELS = ("secret-model-one", "secret-model-two")
PLACEHOLDERS = {"campaign_id": "1", "fmt": "csv", "api_name": "predict", "event_id": "e",
                "session_hash": "s", "size": "64", "key": "k", "run": "1", "component_id": "1",
                "segment_id": "1", "ext": "ts", "id": "1", "environment": "e", "type": "t",
                "file_name": "f"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    db = tmp_path_factory.mktemp("security") / "sec.db"
    with Store(db) as store:
        prompts = [f"Question {i}" for i in range(8)]
        seed_run(store, MODELS[0], prompts, lambda i, _: f"first answer {i}")
        seed_run(store, MODELS[1], prompts, lambda i, _: f"second answer {i}")
        add_account(store, "ann", "ann-password")
        add_account(store, "bob", "bob-password")
        add_account(store, "boss", "boss-password", role="admin")
        add_account(store, "gone", "gone-password")
        store.set_annotator_disabled("gone", True)
        record, _ = create_campaign(store, CampaignSpec(name="sec", suite="smoke"))
    service = ReviewService(db, seed=3)
    app = create_app(service)
    with TestClient(app) as anonymous:
        yield {"app": app, "client": anonymous, "service": service, "campaign": record.id}
    service.close()


def _routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, frozenset[str]]]:
    """Every route of the app, mounted Gradio apps and included routers too."""
    for route in routes:
        if hasattr(route, "original_router"):  # fastapi include_router
            yield from _routes(route.original_router.routes,
                               prefix + (getattr(route.include_context, "prefix", "") or ""))
        elif hasattr(route, "endpoint") or not hasattr(route, "routes"):
            yield prefix + route.path, frozenset(getattr(route, "methods", None) or {"GET"})
        else:  # a Mount
            yield from _routes(route.routes, prefix + route.path)


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: PLACEHOLDERS.get(m.group(1), "x"), path)


def _login(app: Any, name: str, password: str) -> TestClient:
    client = TestClient(app)
    response = client.post("/api/login", json={"name": name, "password": password})
    assert response.status_code == 200, response.text
    return client


def test_no_route_answers_without_a_session(server: dict[str, Any]) -> None:
    client: TestClient = server["client"]
    client.cookies.clear()
    routes = sorted(set(_routes(server["app"].routes)), key=lambda r: r[0])
    assert len(routes) > 100  # Gradio's own routes are in the list
    public = {"/login", "/api/login", "/logout"}
    checked = 0
    for path, methods in routes:
        if path in public:
            continue
        url = _concrete(path)
        for method in methods & {"GET", "POST", "HEAD"}:
            response = client.request(method, url, follow_redirects=False,
                                      headers={"accept": "text/html"})
            assert response.status_code in (401, 303), (method, url, response.status_code)
            if response.status_code == 303:
                assert response.headers["location"] == "/login"
            assert "secret-model" not in response.text and "answer" not in response.text
            checked += 1
    assert checked > 100
    assert client.get("/login").status_code == 200
    assert "secret" not in client.get("/login").text


def test_a_forged_or_revoked_cookie_is_no_session(server: dict[str, Any]) -> None:
    client = TestClient(server["app"])
    client.cookies.set(COOKIE, "forged-token")
    assert client.get("/api/campaigns").status_code == 401
    user = _login(server["app"], "ann", "ann-password")
    assert user.get("/api/me").json() == {"name": "ann", "role": "annotator"}
    # a GET (a link or an <img> on any page) does not log anyone out
    assert user.get("/logout", follow_redirects=False).status_code == 405
    assert user.get("/api/me").status_code == 200
    user.post("/logout")
    assert user.get("/api/me").status_code == 401


def test_wrong_login_never_says_which_part_was_wrong(server: dict[str, Any]) -> None:
    client: TestClient = server["client"]
    answers = [client.post("/api/login", json={"name": name, "password": password})
               for name, password in (("ann", "not-her-password"), ("nobody", "ann-password"),
                                      ("gone", "gone-password"), ("ann", ""))]
    assert {r.status_code for r in answers} == {401}
    assert {r.text for r in answers} == {'{"error":"wrong name or password"}'}
    assert all(COOKIE not in r.headers.get("set-cookie", "") for r in answers)
    pages = [client.post("/login", data={"name": n, "password": "wrong-password"})
             for n in ("ann", "nobody")]
    assert pages[0].status_code == pages[1].status_code == 401
    assert pages[0].text == pages[1].text and "wrong name or password" in pages[0].text


def test_annotators_cannot_reach_admin_pages_or_exports(server: dict[str, Any]) -> None:
    user = _login(server["app"], "ann", "ann-password")
    cid = server["campaign"]
    for url in (f"/api/admin/campaigns/{cid}/report", f"/api/admin/campaigns/{cid}/votes.csv",
                f"/api/admin/campaigns/{cid}/votes.jsonl", "/api/admin/annotators", "/admin/",
                "/admin/config", "/admin/gradio_api/info"):
        response = user.get(url)
        assert response.status_code == 403, url
        assert "secret-model" not in response.text
    assert user.get("/", follow_redirects=False).headers["location"] == "/annotate/"
    admin = _login(server["app"], "boss", "boss-password")
    assert admin.get(f"/api/admin/campaigns/{cid}/report").status_code == 200
    assert admin.get("/admin/").status_code == 200


def test_model_names_stay_hidden_until_the_vote(server: dict[str, Any]) -> None:
    user = _login(server["app"], "ann", "ann-password")
    cid = server["campaign"]
    before = [user.get("/api/campaigns"), user.get(f"/api/campaigns/{cid}"),
              user.post(f"/api/campaigns/{cid}/next"), user.get("/annotate/config"),
              user.get("/annotate/"), user.get("/annotate/gradio_api/info")]
    assert all(r.status_code == 200 for r in before)
    assert not any("secret-model" in r.text for r in before)
    item = before[2].json()
    assert set(item) == {"campaign_id", "item_id", "kind", "prompt", "progress", "a", "b"}
    voted = user.post(f"/api/campaigns/{cid}/vote", json={"item_id": item["item_id"],
                                                         "choice": "b"})
    assert voted.status_code == 200
    assert set(voted.json()["reveal"].values()) == set(MODELS)


def test_an_annotator_cannot_act_on_or_read_another_annotators_item(
        server: dict[str, Any]) -> None:
    cid = server["campaign"]
    ann = _login(server["app"], "ann", "ann-password")
    bob = _login(server["app"], "bob", "bob-password")
    item = ann.post(f"/api/campaigns/{cid}/next").json()
    other = bob.post(f"/api/campaigns/{cid}/next").json()
    assert other["item_id"] != item["item_id"]  # the open item is leased to ann
    for action, body in (("vote", {"item_id": item["item_id"], "choice": "a"}),
                         ("skip", {"item_id": item["item_id"]})):
        refused = bob.post(f"/api/campaigns/{cid}/{action}", json=body)
        assert refused.status_code == 409 and "secret-model" not in refused.text
    assert bob.post(f"/api/campaigns/{cid}/undo").status_code == 409  # bob has no votes
    # a body cannot name someone else: the user is always the session's
    assert bob.post(f"/api/campaigns/{cid}/vote", json={
        "item_id": other["item_id"], "choice": "a", "annotator": "ann"}).status_code == 422


def test_unused_gradio_endpoints_are_closed_even_to_admins(server: dict[str, Any]) -> None:
    admin = _login(server["app"], "boss", "boss-password")
    for url in ("/annotate/gradio_api/upload", "/admin/gradio_api/upload",
                "/annotate/gradio_api/proxy=http://example.invalid/",
                "/annotate/gradio_api/vibe-code", "/annotate/monitoring"):
        assert admin.post(url).status_code == 404, url
        assert admin.get(url).status_code == 404, url


def test_cross_site_posts_are_refused(server: dict[str, Any]) -> None:
    user = _login(server["app"], "bob", "bob-password")
    response = user.post(f"/api/campaigns/{server['campaign']}/next",
                         headers={"origin": "http://evil.example"})
    assert response.status_code == 403


def test_disabling_an_account_ends_its_session(server: dict[str, Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    service: ReviewService = server["service"]
    with Store(service.db_path) as store:
        add_account(store, "temp", "temp-password")
    user = _login(server["app"], "temp", "temp-password")
    assert user.get("/api/me").status_code == 200
    with Store(service.db_path) as store:
        store.set_annotator_disabled("temp", True)
    monkeypatch.setattr(review_ui.service, "ANNOTATOR_CACHE_S", 0.0)
    assert user.get("/api/me").status_code == 401


def test_cookie_flags(server: dict[str, Any]) -> None:
    client = TestClient(server["app"])
    response = client.post("/api/login", json={"name": "ann", "password": "ann-password"})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie


def test_password_never_stored(server: dict[str, Any]) -> None:
    raw = Path(server["service"].db_path).read_bytes()
    assert b"ann-password" not in raw and b"boss-password" not in raw


def test_failed_logins_are_throttled_per_name_and_per_client(tmp_path: Path) -> None:
    """Five wrong passwords for a name lock that name (even with the right password)
    without running the KDF; other names still work; a client failing twenty times
    is locked out whatever name it tries."""
    db = tmp_path / "throttle.db"
    with Store(db) as store:
        add_account(store, "ann", "ann-password")
        add_account(store, "bob", "bob-password")
    service = ReviewService(db)
    app = create_app(service, with_ui=False)
    try:
        with TestClient(app) as client:
            def login(name: str, password: str) -> Any:
                return client.post("/api/login", json={"name": name, "password": password})

            assert [login("ann", "wrong-password").status_code for _ in range(5)] == [401] * 5
            locked = login("ann", "ann-password")
            assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
            assert "too many failed logins" in locked.json()["error"]
            assert login("bob", "bob-password").status_code == 200
            for i in range(14):  # 5 + 14 = 19 failures from this client so far
                assert login(f"nobody-{i}", "x" * 8).status_code == 401
            assert login("bob", "wrong-password").status_code == 401  # the 20th
            assert login("bob", "bob-password").status_code == 429  # the client is locked
    finally:
        service.close()
