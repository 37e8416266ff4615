"""Sessions live in the database, hashed, with an idle limit and an absolute end: a
restart keeps annotators signed in, and logout, `annotators revoke` and `annotators
disable` hold for every app process on the same database."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import CliRun, add_account, running_server

from harness.store import Store
from review_ui.api import COOKIE, create_app
from review_ui.auth import SessionStore
from review_ui.service import ReviewService


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "sessions.db"
    with Store(path) as store:
        add_account(store, "ann", "ann-password")
        add_account(store, "bob", "bob-password")
    return path


def _login(app: Any, name: str, password: str) -> str:
    with TestClient(app) as client:
        response = client.post("/api/login", json={"name": name, "password": password})
        assert response.status_code == 200, response.text
        return str(response.cookies[COOKIE])


def _me(app: Any, token: str) -> int:
    with TestClient(app, cookies={COOKIE: token}) as client:
        return client.get("/api/me").status_code


def _stored(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT token_hash, annotator FROM review_sessions").fetchall()


def test_a_restart_keeps_the_session_and_only_its_hash_is_stored(db: Path) -> None:
    first = ReviewService(db)
    token = _login(create_app(first, with_ui=False), "ann", "ann-password")
    first.close()
    assert _stored(db) == [(hashlib.sha256(token.encode()).hexdigest(), "ann")]
    assert token.encode() not in db.read_bytes()
    restarted = ReviewService(db)
    try:
        assert _me(create_app(restarted, with_ui=False), token) == 200
    finally:
        restarted.close()


def test_logout_and_revocation_hold_for_every_process(db: Path, cli: CliRun) -> None:
    one, two = ReviewService(db), ReviewService(db)  # two app processes, one database
    app_one, app_two = create_app(one, with_ui=False), create_app(two, with_ui=False)
    try:
        token = _login(app_one, "ann", "ann-password")
        assert _me(app_two, token) == 200
        with TestClient(app_two, cookies={COOKIE: token}) as client:
            assert client.post("/logout", follow_redirects=False).status_code == 303
        assert _me(app_one, token) == 401
        # `annotators revoke` signs one annotator out everywhere, nobody else
        ann_tabs = [_login(app_one, "ann", "ann-password") for _ in range(2)]
        bob = _login(app_two, "bob", "bob-password")
        done = cli("annotators", "revoke", "ann", "--db", str(db))
        assert done.returncode == 0 and "2 session(s) ended" in done.stdout
        assert [_me(app_two, t) for t in ann_tabs] == [401, 401]
        assert _me(app_one, bob) == 200
        done = cli("annotators", "revoke", "nobody", "--db", str(db))
        assert done.returncode == 2 and "no annotator named 'nobody'" in done.stderr
        # disabling ends the account's sessions at once, in the database
        done = cli("annotators", "disable", "bob", "--db", str(db))
        assert done.returncode == 0 and "1 session(s) ended" in done.stdout
        assert _stored(db) == []
    finally:
        one.close()
        two.close()


def test_idle_limit_and_absolute_end(db: Path) -> None:
    idle = SessionStore(db, idle_timeout_s=0.3, max_age_s=3600, touch_every_s=0.0)
    kept_alive = idle.create("ann", "annotator")
    left_alone = idle.create("ann", "annotator")
    for _ in range(4):  # used every 0.15 s: stays alive past the idle limit
        time.sleep(0.15)
        assert idle.get(kept_alive.token) is not None
    assert idle.get(left_alone.token) is None
    idle.close()
    capped = SessionStore(db, idle_timeout_s=3600, max_age_s=0.4, touch_every_s=0.0)
    session = capped.create("bob", "annotator")
    for _ in range(2):
        assert capped.get(session.token) is not None
        time.sleep(0.1)
    time.sleep(0.3)
    assert capped.get(session.token) is None  # activity does not extend the absolute end
    assert capped.get("x" * 10_000) is None and capped.get("") is None
    capped.close()


def test_secure_cookies_setting(db: Path) -> None:
    service = ReviewService(db)
    try:
        for secure in (False, True):
            with TestClient(create_app(service, with_ui=False, secure_cookies=secure)) as client:
                response = client.post("/api/login",
                                       json={"name": "ann", "password": "ann-password"})
                cookie = response.headers["set-cookie"].lower()
                assert ("; secure" in cookie) is secure
                assert "max-age=604800" in cookie and "httponly" in cookie
    finally:
        service.close()


@pytest.mark.slow
def test_real_server_restart_and_tls_proxy_headers(db: Path) -> None:
    """`evalarena review` stopped and started again: the browser's cookie still works.
    Behind a proxy (`--behind-proxy 127.0.0.1`) the cookie is Secure and the throttle
    sees the forwarded client address, not the proxy's."""
    with running_server(db) as base:
        response = httpx.post(base + "/api/login",
                              json={"name": "ann", "password": "ann-password"})
        assert response.status_code == 200 and "secure" not in response.headers["set-cookie"]
        token = response.cookies[COOKIE]
    with running_server(db, extra=("--behind-proxy", "127.0.0.1")) as base:
        assert httpx.get(base + "/api/me", cookies={COOKIE: token}).json()["name"] == "ann"
        response = httpx.post(base + "/api/login",
                              json={"name": "bob", "password": "bob-password"},
                              headers={"X-Forwarded-Proto": "https"})
        assert "; secure" in response.headers["set-cookie"].lower()
        for i in range(20):  # one forwarded client fails twenty times: that client is locked
            httpx.post(base + "/api/login", json={"name": f"nobody-{i}", "password": "x" * 8},
                       headers={"X-Forwarded-For": "203.0.113.7"})
        locked = httpx.post(base + "/api/login", json={"name": "bob", "password": "bob-password"},
                            headers={"X-Forwarded-For": "203.0.113.7"})
        assert locked.status_code == 429
        other = httpx.post(base + "/api/login", json={"name": "bob", "password": "bob-password"},
                           headers={"X-Forwarded-For": "198.51.100.2"})
        assert other.status_code == 200


def test_password_hashing_never_blocks_the_event_loop(tmp_path: Path) -> None:
    """Four logins against a real-cost argon2id hash are in flight; a request served on
    the event loop itself (`/api/me` is async) still answers before any of them."""
    import asyncio

    from review_ui.auth import hash_password

    db = tmp_path / "loop.db"
    with Store(db) as store:
        store.add_annotator("slow", "annotator", hash_password("slow-password"))  # RFC 9106
        add_account(store, "fast", "fast-password")
    service = ReviewService(db)
    app = create_app(service, with_ui=False)

    async def scenario() -> tuple[float, list[float]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            login = await client.post("/api/login",
                                      json={"name": "fast", "password": "fast-password"})
            token = login.cookies[COOKIE]
            started = time.perf_counter()

            async def wrong_login() -> float:
                await client.post("/login", data={"name": "slow", "password": "not-it-at-all"})
                return time.perf_counter() - started

            async def me() -> float:
                await asyncio.sleep(0.01)  # the logins are running
                response = await client.get("/api/me", headers={"Cookie": f"{COOKIE}={token}"})
                assert response.status_code == 200
                return time.perf_counter() - started

            *logins, seen = await asyncio.gather(*(wrong_login() for _ in range(4)), me())
            return seen, logins

    try:
        seen, logins = asyncio.run(scenario())
    finally:
        service.close()
    assert seen < min(logins), f"/api/me took {seen:.3f} s; logins ended at {sorted(logins)}"
