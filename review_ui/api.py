"""The review server: one FastAPI app holding the login page, a small JSON API
and the two Gradio apps (annotator pages at /annotate, admin pages at /admin).

Access control sits in one ASGI middleware in front of *everything*, Gradio's
own routes (config, queue, files, assets) included, rather than in each
route: a request without a live session gets 401 (or a redirect to the login
page for a browser page), /admin and /api/admin need the admin role, and a
state-changing request whose Origin is another site is refused (CSRF; the
session cookie is also SameSite=Strict and HttpOnly).
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from review_ui.auth import LOGIN_FAILED, Session
from review_ui.reports import campaign_report, export_rows, leaderboard, to_csv, to_jsonl
from review_ui.service import ReviewError, ReviewService, TooManyLoginsError

COOKIE = "evalarena_session"
PUBLIC = frozenset({"/login", "/api/login", "/logout", "/favicon.ico"})
ADMIN_PREFIXES = ("/admin", "/api/admin")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Gradio endpoints these pages never use: file uploads (disk filling), the URL proxy,
# recording, dev-mode editing and monitoring. Refused for everyone, admins included.
UNUSED_GRADIO = ("/gradio_api/upload", "/gradio_api/proxy=", "/gradio_api/process_recording",
                 "/gradio_api/vibe", "/gradio_api/undo-vibe", "/gradio_api/dev/", "/monitoring")


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


class AuthGate:
    """Pure ASGI middleware: nothing past it without a session (see module docstring)."""

    def __init__(self, app: ASGIApp, service: ReviewService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        method: str = scope.get("method", "GET")
        origin = headers.get("origin")
        if method in UNSAFE and origin and origin.split("://", 1)[-1] != headers.get("host"):
            await self._deny(scope, receive, send, 403, "cross-site request refused")
            return
        if path in PUBLIC:
            await self.app(scope, receive, send)
            return
        token = cookie_parser(headers.get("cookie", "")).get(COOKIE)
        session = self.service.session(token)
        if session is None:
            wants_page = method == "GET" and not _under(path, "/api") \
                and "text/html" in headers.get("accept", "")
            if wants_page and scope["type"] == "http":
                await RedirectResponse("/login", status_code=303)(scope, receive, send)
            else:
                await self._deny(scope, receive, send, 401, "log in first")
            return
        if any(_under(path, p) for p in ADMIN_PREFIXES) and not session.is_admin:
            await self._deny(scope, receive, send, 403, "admins only")
            return
        if any(part in path for part in UNUSED_GRADIO):
            await self._deny(scope, receive, send, 404, "not here")
            return
        scope.setdefault("state", {})["session"] = session
        await self.app(scope, receive, send)

    @staticmethod
    async def _deny(scope: Scope, receive: Receive, send: Send, status: int, why: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await JSONResponse({"error": why}, status_code=status)(scope, receive, send)


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    password: str = Field(max_length=1000)


class ItemBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: int


class VoteBody(ItemBody):
    choice: str | None = None  # pairwise: a | b | tie | both_bad (a = the output shown as A)
    rating: int | None = None  # single rating
    flags: list[str] = Field(default_factory=list, max_length=10)
    reason: str | None = Field(default=None, max_length=5000)


LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>evalarena review · log in</title><meta name="viewport" content="width=device-width">
<style>body{{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.45rem;font-size:1rem}}
button{{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem}}.error{{color:#b00020}}</style>
</head><body><h1>evalarena review</h1>{message}
<form method="post" action="/login"><label for="name">Name</label>
<input id="name" name="name" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="login" type="submit">Log in</button></form></body></html>"""


def _session(request: Request) -> Session:
    return request.scope["state"]["session"]


def _set_cookie(response: Any, session: Session, request: Request) -> None:
    """Secure when the request came over HTTPS, and always with ``secure_cookies`` (set
    behind a TLS proxy, where the app itself speaks plain HTTP to the proxy)."""
    state = request.app.state
    response.set_cookie(COOKIE, session.token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https" or state.secure_cookies,
                        max_age=state.cookie_max_age)


def _client(request: Request) -> str:
    """The peer's address (behind a proxy: the proxy's, so the per-client limit then
    applies to everyone behind it; docs/review.md)."""
    return request.client.host if request.client is not None else "unknown"


def create_app(service: ReviewService, *, with_ui: bool = True,
               secure_cookies: bool = False) -> FastAPI:
    """The whole server; ``with_ui=False`` leaves out Gradio (API-only, for load tests);
    ``secure_cookies``: mark the session cookie Secure even on plain HTTP (behind a TLS
    proxy; docs/review.md)."""
    app = FastAPI(title="evalarena review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.secure_cookies = secure_cookies
    app.state.cookie_max_age = int(service.sessions.max_age_s)  # the session's absolute end

    @app.exception_handler(ReviewError)
    async def _review_error(_: Request, exc: ReviewError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.get("/", include_in_schema=False)
    def index(request: Request) -> RedirectResponse:
        return RedirectResponse("/admin/" if _session(request).is_admin else "/annotate/", 303)

    @app.get("/login", response_class=HTMLResponse)
    def login_page() -> HTMLResponse:
        return HTMLResponse(LOGIN_PAGE.format(message=""))

    @app.post("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Any:
        form = await request.form()
        # the KDF runs in a worker thread: on the event loop it would stall every user
        try:
            session = await run_in_threadpool(service.login, str(form.get("name", ""))[:200],
                                              str(form.get("password", "")), _client(request))
        except TooManyLoginsError as exc:
            message = f'<p class="error" id="login-error">{html.escape(str(exc))}</p>'
            return HTMLResponse(LOGIN_PAGE.format(message=message), status_code=429,
                                headers={"Retry-After": f"{exc.retry_after_s:.0f}"})
        if session is None:
            message = f'<p class="error" id="login-error">{html.escape(LOGIN_FAILED)}</p>'
            return HTMLResponse(LOGIN_PAGE.format(message=message), status_code=401)
        response = RedirectResponse("/", status_code=303)
        _set_cookie(response, session, request)
        return response

    @app.post("/api/login")
    def api_login(body: LoginBody, request: Request) -> JSONResponse:
        try:
            session = service.login(body.name, body.password, _client(request))
        except TooManyLoginsError as exc:
            return JSONResponse({"error": str(exc)}, status_code=429,
                                headers={"Retry-After": f"{exc.retry_after_s:.0f}"})
        if session is None:
            return JSONResponse({"error": LOGIN_FAILED}, status_code=401)
        response = JSONResponse({"name": session.name, "role": session.role})
        _set_cookie(response, session, request)
        return response

    @app.post("/logout")  # POST only: a link or an image on another page cannot log you out
    def logout(request: Request) -> RedirectResponse:
        service.sessions.revoke(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/api/me")
    async def me(request: Request) -> dict[str, str]:
        session = _session(request)
        return {"name": session.name, "role": session.role}

    @app.get("/api/campaigns")
    def campaigns(request: Request) -> list[dict[str, Any]]:
        user = _session(request).name
        return [service.describe(user, c.id) for c in service.campaigns()]

    @app.get("/api/campaigns/{campaign_id}")
    async def campaign(campaign_id: int, request: Request) -> dict[str, Any]:
        return service.describe(_session(request).name, campaign_id)

    # the hot paths are async: the service call is sub-millisecond (memory plus one
    # SQLite commit), and skipping the thread-pool hop roughly halves their CPU cost
    @app.post("/api/campaigns/{campaign_id}/next")
    async def next_item(campaign_id: int, request: Request) -> dict[str, Any]:
        view = service.next_item(_session(request).name, campaign_id)
        return view if view is not None else {"done": True}

    @app.post("/api/campaigns/{campaign_id}/vote")
    async def vote(campaign_id: int, body: VoteBody, request: Request) -> dict[str, Any]:
        return service.vote(_session(request).name, campaign_id, body.item_id,
                            choice=body.choice, rating=body.rating, flags=body.flags,
                            reason=body.reason)

    @app.post("/api/campaigns/{campaign_id}/skip")
    async def skip(campaign_id: int, body: ItemBody, request: Request) -> dict[str, Any]:
        return service.skip(_session(request).name, campaign_id, body.item_id)

    @app.post("/api/campaigns/{campaign_id}/undo")
    async def undo(campaign_id: int, request: Request) -> dict[str, Any]:
        return service.undo(_session(request).name, campaign_id)

    @app.get("/api/leaderboard")
    def board(source: str = "human") -> list[dict[str, Any]]:
        return leaderboard(service.battles(None if source == "all" else source))

    @app.get("/api/admin/campaigns/{campaign_id}/report")
    def report(campaign_id: int) -> dict[str, Any]:
        return campaign_report(*service.snapshot(campaign_id))

    @app.get("/api/admin/campaigns/{campaign_id}/votes.{fmt}")
    def export(campaign_id: int, fmt: str) -> PlainTextResponse:
        if fmt not in ("csv", "jsonl"):
            raise ReviewError("export as votes.csv or votes.jsonl")
        state, rows = service.snapshot(campaign_id)
        table = export_rows(state, rows)
        body = to_csv(table) if fmt == "csv" else to_jsonl(table)
        media = "text/csv" if fmt == "csv" else "application/x-ndjson"
        name = f"{state.campaign.name}-votes.{fmt}".replace('"', "")
        return PlainTextResponse(body, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/api/admin/annotators")
    def annotators() -> list[dict[str, Any]]:
        return [{"name": a.name, "role": a.role, "disabled": a.disabled,
                 "created_at": a.created_at} for a in service.annotator_list()]

    if with_ui:
        from review_ui.app import mount_ui

        mount_ui(app, service)
    # no cross-origin access at all; also stops Gradio adding its permissive default
    app.add_middleware(CORSMiddleware, allow_origins=[])
    app.add_middleware(AuthGate, service=service)
    return app


def serve(db: str, host: str = "127.0.0.1", port: int = 7860, *,
          undo_window_s: float = 60.0, session_hours: float = 12.0,
          behind_proxy: str | None = None) -> None:
    """Run the server until interrupted (what `evalarena review` does).

    ``behind_proxy``: the address(es) of a TLS-terminating reverse proxy. Its
    X-Forwarded-For and X-Forwarded-Proto headers are trusted (so throttling sees the
    real client), and the session cookie is always Secure."""
    import uvicorn

    service = ReviewService(db, undo_window_s=undo_window_s,
                            session_idle_s=session_hours * 3600)
    service.warm()
    app = create_app(service, secure_cookies=behind_proxy is not None)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                    proxy_headers=behind_proxy is not None,
                    forwarded_allow_ips=behind_proxy or "127.0.0.1")
    finally:
        service.close()
