"""The pages: ``/console`` (dispatchers), ``/t/{token}`` (customers), ``/driver`` (drivers),
their static files under ``/static/`` and the maps' settings at ``/web/config``.

Pages are plain HTML files in ``web/pages/``; scripts and styles in ``web/static/`` (ES modules,
no bundler); front-end packages from npm are copied by ``scripts/setup`` into ``web/dist/vendor/``
and served from ``/static/vendor/``. Nothing is loaded from elsewhere unless ``FLEET_TILE_URL`` is
set. The pages carry no secret: each asks for its token (or reads it from the URL fragment, which
browsers never send to a server) and calls the API with it.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.router import Router
from litestar.static_files import create_static_files_router

from server import clock
from server.errors import NotFound
from server.orders.store import OrderStore
from server.settings import Settings
from server.web.tracking import order_for_link

CSP = (
    "default-src 'self'; img-src 'self' data: blob: https: http:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self' ws: wss:"
)


def web_dir() -> Path:
    """The ``web/`` folder: pages, static files and the vendored front-end packages."""
    return Path(str(importlib.resources.files("web")))


def _page(name: str, status_code: int = 200) -> Response[bytes]:
    body = (web_dir() / "pages" / name).read_bytes()
    return Response(
        body,
        media_type="text/html; charset=utf-8",
        status_code=status_code,
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CSP,
            "Referrer-Policy": "no-referrer",  # the tracking token is in the path
        },
    )


class PagesController(Controller):
    tags = ["web"]  # noqa: RUF012 - Litestar reads this class attribute
    include_in_schema = False

    @get("/")
    async def home(self) -> Redirect:
        return Redirect("/console")

    @get("/console")
    async def console(self) -> Response[bytes]:
        return _page("console.html")

    @get("/driver")
    async def driver(self) -> Response[bytes]:
        return _page("driver.html")

    @get("/t/{token:str}")
    async def tracking(
        self, token: FromPath[str], orders: NamedDependency[OrderStore]
    ) -> Response[bytes]:
        try:
            await order_for_link(orders, token, clock.now_ms())
        except NotFound:
            return _page("expired.html", status_code=404)
        return _page("track.html")

    @get("/web/config", include_in_schema=True, summary="Settings the web pages' maps need")
    async def config(self, settings: NamedDependency[Settings], state: State) -> dict[str, Any]:
        roads = state.get("roads")
        return {
            "tile_url": settings.tile_url,
            "region": roads.network.name if roads else None,
            "bbox": list(roads.network.bbox()) if roads else None,
            "tracking_visible_stops": settings.tracking_visible_stops,
            "tracking_visible_m": settings.tracking_visible_m,
            "tracking_visible_min": settings.tracking_visible_min,
            # the pages count "2 min ago" and "in 5 min" from the server's time, not the
            # browser's: a computer's clock can be off, and a simulation runs faster
            "clock": {"now_ms": clock.now_ms(), "rate": clock.current().rate},
            "time_zone": settings.time_zone,  # of vehicles' working hours (FLEET_TIME_ZONE)
        }


def static_router() -> Router:
    """``/static/…``: ``web/static`` first, then ``web/dist`` (vendored npm packages)."""
    root = web_dir()
    return create_static_files_router(
        path="/static",
        directories=[root / "static", root / "dist"],
        include_in_schema=False,
        cache_control=None,
    )
