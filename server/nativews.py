"""WebSockets served straight off the transport, for the few paths where ASGI costs too much.

uvicorn hands every WebSocket upgrade to one protocol class. :func:`router_for` builds that class:
a request for a path in ``routes`` gets a :class:`NativeWebSocket` (the handshake and frames of
:mod:`server.wsframes`, messages handed to an ``async`` handler); every other path goes, unchanged,
to uvicorn's own sans-I/O WebSocket protocol and the ASGI app. The driver socket is the one native
path today: thousands of vehicles, a few messages a second each, every one on the hot path.

A handler gets the connection and the parsed handshake request; it calls
:meth:`NativeWebSocket.receive` until ``None`` (the client has gone),
:meth:`NativeWebSocket.send` and :meth:`NativeWebSocket.close`. When it returns, the connection is
closed with 1000 if it is still open; if it raises, with 1011.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from server.wsframes import (
    CLOSE_NORMAL,
    CLOSE_SERVICE_RESTART,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    Handshake,
    ProtocolError,
    bad_request,
    close_frame,
    handshake_problem,
    parse_close,
    parse_request,
    server_frame,
    switching_protocols,
)

log = logging.getLogger("fleet.ws")

CLOSE_INTERNAL_ERROR = 1011
HIGH_WATER = 32  # messages waiting for the handler before the socket stops reading
LOW_WATER = 8

Handler = Callable[["NativeWebSocket", Handshake], Awaitable[None]]


class NativeWebSocket(asyncio.Protocol):
    """One server-side WebSocket connection, from the opening handshake to the close."""

    def __init__(self, handler: Handler, server_state: ServerState, *, max_size: int) -> None:
        self._handler = handler
        self._server_state = server_state
        self._reader = FrameReader(max_size=max_size)
        self._inbox: collections.deque[bytes] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._open = False  # after the handshake
        self._closed = False  # a close was sent or received, or the connection is gone
        self._paused_reading = False
        self._paused_writing = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        self._server_state.connections.add(self)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        if not self._open:
            self._handshake(data)
            return
        if self._closed:
            return
        try:
            messages = self._reader.feed(data)
        except ProtocolError as exc:
            self._close_now(exc.code, exc.reason)
            return
        for opcode, payload in messages:
            if opcode in (OP_TEXT, OP_BINARY):
                self._inbox.append(payload)
            elif opcode == OP_PING:
                self._write(server_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                code, _ = parse_close(payload)
                self._close_now(CLOSE_NORMAL if code == 1005 else code, "")
                break
        if len(self._inbox) >= HIGH_WATER and not self._paused_reading and self._transport:
            self._paused_reading = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server_state.connections.discard(self)
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # What uvicorn calls when the server stops.

    def shutdown(self) -> None:
        if self._open:
            self._close_now(CLOSE_SERVICE_RESTART, "server stopping")
        elif self._transport is not None:
            self._transport.close()

    # What a handler calls.

    @property
    def closed(self) -> bool:
        return self._closed

    async def receive(self) -> bytes | None:
        """The next text or binary message, or ``None`` once the connection is closed."""
        while not self._inbox:
            if self._closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        payload = self._inbox.popleft()
        if self._paused_reading and len(self._inbox) <= LOW_WATER and self._transport:
            self._paused_reading = False
            self._transport.resume_reading()
        return payload

    async def send(self, data: bytes, *, text: bool = True) -> None:
        """Send one message; waits while the client does not read. Nothing happens once the
        connection is closed (the next :meth:`receive` says so)."""
        if self._closed:
            return
        self._write(server_frame(OP_TEXT if text else OP_BINARY, data))
        if self._paused_writing and not self._closed:
            # Senders (the ack path, the route pusher) wait for the same drain; shielded, so
            # one of them being cancelled does not wake the others too early.
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._drained)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        self._close_now(code, reason)

    # Inside.

    def _handshake(self, data: bytes) -> None:
        request = parse_request(data)
        problem = "unreadable request" if request is None else handshake_problem(request)
        if request is None or problem is not None:
            self._write(bad_request(problem or "bad request"))
            if self._transport is not None:
                self._transport.close()
            return
        self._write(switching_protocols(request.key))
        self._open = True
        task = asyncio.get_running_loop().create_task(self._run(request))
        self._server_state.tasks.add(task)
        task.add_done_callback(self._server_state.tasks.discard)

    async def _run(self, request: Handshake) -> None:
        try:
            await self._handler(self, request)
        except Exception:
            log.exception("WebSocket handler for %s failed", request.path)
            self._close_now(CLOSE_INTERNAL_ERROR, "internal error")
        else:
            self._close_now(CLOSE_NORMAL, "")

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _close_now(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._write(close_frame(code, reason))
        if self._transport is not None:
            self._transport.close()  # after the buffered frames are written
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def _path_of(head: bytes) -> str:
    parts = head.split(b" ", 2)
    if len(parts) < 2:
        return ""
    return parts[1].split(b"?", 1)[0].decode("latin-1")


def router_for(routes: Mapping[str, Handler], *, max_size: int) -> type[asyncio.Protocol]:
    """uvicorn's ``ws`` protocol class: ``routes`` served natively, the rest by ASGI."""

    class WebSocketRouter(asyncio.Protocol):
        def __init__(
            self, config: Config, server_state: ServerState, app_state: dict[str, Any]
        ) -> None:
            self._config = config
            self._server_state = server_state
            self._app_state = app_state
            self._transport: asyncio.BaseTransport | None = None
            self._delegate: asyncio.Protocol | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._transport = transport

        def data_received(self, data: bytes) -> None:
            delegate = self._delegate
            if delegate is None:
                handler = routes.get(_path_of(data))
                if handler is not None:
                    delegate = NativeWebSocket(handler, self._server_state, max_size=max_size)
                else:
                    delegate = WebSocketsSansIOProtocol(
                        self._config, self._server_state, self._app_state
                    )
                self._delegate = delegate
                assert self._transport is not None
                delegate.connection_made(self._transport)
            delegate.data_received(data)

        def eof_received(self) -> bool | None:
            return self._delegate.eof_received() if self._delegate else None

        def connection_lost(self, exc: Exception | None) -> None:
            if self._delegate is not None:
                self._delegate.connection_lost(exc)

        def pause_writing(self) -> None:
            if self._delegate is not None:
                self._delegate.pause_writing()

        def resume_writing(self) -> None:
            if self._delegate is not None:
                self._delegate.resume_writing()

    return WebSocketRouter
