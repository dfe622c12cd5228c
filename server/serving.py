"""How the app is served: one uvicorn configuration, used by the CLI and by the tests."""

from __future__ import annotations

import functools
from typing import Any

import uvicorn
from litestar import Litestar

from server.auth import redact_server_logs
from server.nativews import NativeWebSocket, router_for
from server.wsframes import Handshake

NativeRoute = Any  # async (socket, handshake request, app state) -> None


def build_server(
    app: Litestar, *, log_level: str = "info", ws_max_size: int = 65536
) -> uvicorn.Server:
    """A uvicorn server for ``app``: frames of at most ``ws_max_size`` bytes (larger ones close
    the socket with 1009), a 5 s graceful stop.

    The WebSocket paths in ``app.state.native_websockets`` (path → ``async (socket, request,
    state)``) are served by :mod:`server.nativews`, straight off the transport; every other
    WebSocket goes through uvicorn's sans-I/O protocol to the ASGI app."""
    routes = {
        path: functools.partial(_call_native, handler, app)
        for path, handler in app.state.get("native_websockets", {}).items()
    }
    config = uvicorn.Config(
        app,
        log_level=log_level,
        ws_max_size=ws_max_size,
        ws_per_message_deflate=False,  # small JSON frames: compression costs more than it saves
        lifespan="on",
        ws=router_for(routes, max_size=ws_max_size),
        timeout_graceful_shutdown=5,
    )
    redact_server_logs()  # after the Config: it (re)configures uvicorn's loggers
    return uvicorn.Server(config)


async def _call_native(
    handler: NativeRoute, app: Litestar, socket: NativeWebSocket, request: Handshake
) -> None:
    await handler(socket, request, app.state)
