"""The live web dashboard, served by the API: one static page, a server-sent event stream.

``GET /dashboard`` is a page with no build step (plain HTML, JS and CSS, and uPlot vendored as a
file); it draws queue depth, throughput and in-flight jobs from ``GET /dashboard/events`` and
reads the dead letters (``/failed``) and the schedules (``/schedules``) from the API's own routes.
Its feed (``LiveFeed``) samples Redis once a second for all viewers together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, StreamingResponse

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

    @router.get("/dashboard", response_class=FileResponse, include_in_schema=False)
    async def page() -> FileResponse:
        return static_file("index.html")

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


def static_file(name: str) -> FileResponse:
    path = STATIC_FILES.get(name)
    if path is None:
        raise ApiError(404, "not_found", f"no dashboard file {name!r}")
    cache = "no-cache" if path.suffix == ".html" else "public, max-age=3600"
    return FileResponse(path, media_type=CONTENT_TYPES[path.suffix],
                        headers={"Cache-Control": cache})  # fmt: skip
