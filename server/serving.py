"""How the app is served: one uvicorn configuration, used by the CLI and by the tests.

uvloop's libuv accepts one waiting connection per turn of the event loop, and a loaded server
turns its loop a dozen times a second: 500 drivers reconnecting at once (a network blip, a
restart) waited up to 15 s in the kernel's accept queue while the server ran at 20,000 pings/s.
So each connection accepted takes the ones waiting behind it too (``_accept_waiting``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from litestar import Litestar

from server.auth import redact_server_logs
from server.nativews import NativeWebSocket, router_for
from server.wsframes import Handshake

NativeRoute = Any  # async (socket, handshake request, app state) -> None

#: The most waiting connections accepted from one listening socket per connection accepted.
ACCEPT_BATCH = 128

log = logging.getLogger(__name__)


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
    return _Server(config)


class _Server(uvicorn.Server):
    """uvicorn's server; the connections waiting on its sockets are accepted in bulk."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # Only sockets handed in (as the CLI and the tests do) can be read from here; a TLS
        # server's connections would need its handshake too: it keeps libuv's pace.
        listeners = list(sockets or []) if self.config.ssl is None else []
        for listener in listeners:
            listener.setblocking(False)
        config = self.config  # loaded: uvicorn's serve() loads it before startup()
        config.http_protocol_class = _bulk_accepting(config.http_protocol_class, listeners)
        await super().startup(sockets=sockets)


def _bulk_accepting(base: type[asyncio.Protocol], listeners: list[socket.socket]) -> type[Any]:
    """``base`` (uvicorn's HTTP protocol), taking the waiting connections when one is made."""
    connecting: set[asyncio.Task[Any]] = set()

    class BulkAccepting(base):  # type: ignore[valid-type,misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            make = functools.partial(
                BulkAccepting,
                config=self.config,
                server_state=self.server_state,
                app_state=self.app_state,
            )
            _accept_waiting(listeners, make, connecting)

    return BulkAccepting


def _accept_waiting(
    listeners: list[socket.socket],
    make: Callable[[], asyncio.Protocol],
    connecting: set[asyncio.Task[Any]],
) -> None:
    """Accept up to ``ACCEPT_BATCH`` waiting connections per listener; each gets ``make()``."""
    loop = asyncio.get_running_loop()
    for listener in listeners:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = listener.accept()
            except OSError:  # none waiting; closed at shutdown; out of descriptors: libuv copes
                break
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(loop.connect_accepted_socket(make, conn))
            connecting.add(task)
            task.add_done_callback(_connected)
            task.add_done_callback(connecting.discard)


def _connected(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.debug("an accepted connection was gone before it was served: %s", exc)


async def _call_native(
    handler: NativeRoute, app: Litestar, socket: NativeWebSocket, request: Handshake
) -> None:
    await handler(socket, request, app.state)
