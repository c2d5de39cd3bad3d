"""Profiling routes, off unless ``JOBRUNNER_DEBUG_ROUTES`` (``jobrunner api --debug-routes``).

``GET /debug/profile?seconds=N`` samples the API's event-loop thread with pyinstrument while it
serves whatever traffic arrives meanwhile, and answers HTML (or speedscope JSON with
``format=speedscope``). ``GET /debug/heap`` answers the top allocations of a tracemalloc
snapshot; tracing starts with the app, since it only sees memory allocated after it starts.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pyinstrument import Profiler
from pyinstrument.renderers import SpeedscopeRenderer

from jobrunner.api.errors import ApiError

TRACEMALLOC_FRAMES = 5


@contextmanager
def tracing_allocations() -> Iterator[None]:
    """Trace allocations for the app's lifetime (only if nothing else traces already)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(TRACEMALLOC_FRAMES)
    try:
        yield
    finally:
        if started:
            tracemalloc.stop()


def debug_router() -> APIRouter:
    router = APIRouter(prefix="/debug", tags=["debug"])
    busy = asyncio.Lock()

    @router.get("/profile", response_class=HTMLResponse)
    async def profile(
        seconds: Annotated[float, Query(gt=0, le=60)] = 5.0,
        format: Literal["html", "speedscope"] = "html",
    ) -> Response:
        """Profile the API for ``seconds`` while it serves its traffic."""
        if busy.locked():
            raise ApiError(409, "profile_running", "a profile is already being recorded")
        async with busy:
            profiler = Profiler(interval=0.001, async_mode="disabled")
            profiler.start()
            try:
                await asyncio.sleep(seconds)  # the measurement window: other requests run now
            finally:
                profiler.stop()
        if format == "speedscope":
            return Response(profiler.output(SpeedscopeRenderer()), media_type="application/json")
        return HTMLResponse(profiler.output_html())

    @router.get("/heap")
    async def heap(top: Annotated[int, Query(ge=1, le=200)] = 25) -> JSONResponse:
        """The lines that hold the most memory allocated since the app started."""
        snapshot = tracemalloc.take_snapshot()
        stats = snapshot.statistics("lineno")[:top]
        current, peak = tracemalloc.get_traced_memory()
        return JSONResponse(
            {
                "traced_bytes": current,
                "peak_bytes": peak,
                "top": [
                    {"where": str(stat.traceback[0]), "bytes": stat.size, "blocks": stat.count}
                    for stat in stats
                ],
            }
        )

    return router
