"""The live web dashboard, served by the API: one static page, a server-sent event stream.

``GET /dashboard`` is a page with no build step (plain HTML, JS and CSS, and uPlot vendored as a
file); it draws queue depth, throughput and in-flight jobs from ``GET /dashboard/events`` and
reads the dead letters (``/failed``) and the schedules (``/schedules``) from the API's own routes.
Its feed (``LiveFeed``) samples Redis once a second for all viewers together.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from jobrunner.api.auth import SESSION_COOKIE, principal_of
from jobrunner.api.errors import ApiError
from jobrunner.api.live import LiveFeed

STATIC_DIR = Path(__file__).parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
# Only the files shipped with the package are served: a name is looked up, never joined to a path.
STATIC_FILES = {
    path.relative_to(STATIC_DIR).as_posix(): path
    for path in STATIC_DIR.rglob("*")
    if path.is_file() and path.suffix in CONTENT_TYPES
}
NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def live_feed(app: FastAPI) -> LiveFeed | None:
    """The app's feed while its lifespan runs, else None."""
    feed: LiveFeed | None = getattr(app.state, "live_feed", None)
    return feed


async def end_live_streams(app: FastAPI) -> None:
    """End every open event stream, so a graceful server shutdown does not wait on them."""
    feed = live_feed(app)
    if feed is not None:
        await feed.close()


def dashboard_router(interval: float = 1.0) -> APIRouter:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Runs inside the app's own lifespan, so its queue exists already.
        feed = LiveFeed(app.state.queue, app.state.queues, interval=interval)
        app.state.live_feed = feed
        feed.start()
        try:
            yield
        finally:
            await feed.stop()
            app.state.live_feed = None

    router = APIRouter(lifespan=lifespan, tags=["dashboard"])

    def feed_of(request: Request) -> LiveFeed:
        feed = live_feed(request.app)
        if feed is None:
            raise ApiError(503, "not_ready", "the dashboard feed is not running")
        return feed

    @router.get("/dashboard", include_in_schema=False)
    async def page(request: Request, token: str | None = None) -> Response:
        """The dashboard for a signed-in viewer, else its login page. ``?token=`` signs in and
        comes back here without it (as JupyterLab's URL does), so the token leaves the URL."""
        if token is not None:
            return await sign_in(request, token)
        if principal_of(request.state).has("read"):
            return static_file("index.html")
        return static_file("login.html")

    @router.post("/dashboard/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        """Sign in with a token (a form field or JSON ``token``); a cross-origin post is refused."""
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            raise ApiError(403, "csrf", "a login must come from this dashboard's own page")
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            token = str(json.loads(raw or b"{}").get("token", ""))
        else:
            token = parse_qs(raw.decode(errors="replace")).get("token", [""])[0]
        return await sign_in(request, token)

    @router.get("/dashboard/session", include_in_schema=False)
    async def session(request: Request) -> dict[str, Any]:
        """Who is signed in, and the CSRF token a change made with the session cookie needs."""
        principal = principal_of(request.state)
        csrf = principal.session.csrf if principal.session else None
        return {"name": principal.record.name, "scopes": list(principal.record.scopes),
                "queues": list(principal.record.queues), "csrf": csrf}  # fmt: skip

    @router.post("/dashboard/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        principal = principal_of(request.state)
        if principal.session_id:
            await request.app.state.authenticator.close_session(
                request.app.state.queue.redis, principal.session_id
            )
        response = RedirectResponse("/dashboard", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("/dashboard/static/{name:path}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        return static_file(name)

    @router.get("/dashboard/events", response_class=StreamingResponse)
    async def events(request: Request) -> StreamingResponse:
        """Server-sent events: `history` once (chart points so far), then a `tick` a second
        with every queue's depths and rates and the live workers."""
        return StreamingResponse(
            feed_of(request).stream(), media_type="text/event-stream", headers=NO_BUFFERING
        )

    @router.get("/dashboard/snapshot")
    async def snapshot(request: Request) -> dict[str, Any]:
        """The chart points kept so far and the latest tick, as one JSON document."""
        return feed_of(request).history()

    return router


async def sign_in(request: Request, token: str) -> Response:
    """Open a session for a token with the read scope; the cookie carries only its id."""
    authenticator = request.app.state.authenticator
    redis = request.app.state.queue.redis
    record = await authenticator.bearer(redis, token.strip()) if token else None
    if record is None or "read" not in record.scopes:
        refused = static_file("login.html")
        refused.status_code = 401
        return refused
    session_id, _ = await authenticator.open_session(redis, record)
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session_id, max_age=round(authenticator.session_ttl), path="/",
        httponly=True, samesite="strict", secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


def static_file(name: str) -> FileResponse:
    path = STATIC_FILES.get(name)
    if path is None:
        raise ApiError(404, "not_found", f"no dashboard file {name!r}")
    cache = "no-cache" if path.suffix == ".html" else "public, max-age=3600"
    return FileResponse(path, media_type=CONTENT_TYPES[path.suffix],
                        headers={"Cache-Control": cache})  # fmt: skip
