"""A lean RFC 6455 client connection on a raw asyncio transport, for the load generator.

``ClientSocket`` does the upgrade handshake, sends masked text frames and parses the server's
frames (fragments joined, pings answered, a close answered and closed); it reports to its owner by
callbacks (``on_open``, ``on_message``, ``on_lost``) rather than through a coroutine, so
thousands of them cost one process little (see :mod:`simulator.load`).
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import struct
from typing import Protocol, cast

from server.wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    accept_key,
    apply_mask,
)

CONNECTING, OPEN, CLOSING, CLOSED = 0, 1, 2, 3  # ClientSocket.state
_MAX_HEADERS = 16 * 1024
_mask_bits = random.Random().getrandbits  # seeded from os.urandom; masking needs no secrecy here
_TEXT_HEADS = [bytes((0x80 | OP_TEXT, 0x80 | n)) for n in range(126)]


class HandshakeError(Exception):
    """The server did not accept the WebSocket upgrade as RFC 6455 requires."""


def _encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame: masked with a fresh key (RFC 6455 §5.3)."""
    mask = _mask_bits(32).to_bytes(4, "big")
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask + apply_mask(payload, mask)


class SocketOwner(Protocol):
    """What a ``ClientSocket`` reports to: the vehicle it carries."""

    def on_open(self, ws: ClientSocket) -> None: ...

    def on_message(self, ws: ClientSocket, data: bytes) -> None: ...

    def on_lost(self, ws: ClientSocket) -> None: ...


class ClientSocket(asyncio.BufferedProtocol):
    """One client WebSocket: the upgrade handshake, masked sends, parsed (unmasked) receives.

    Reassembles fragmented messages, answers pings, answers a close and closes. A protocol
    violation, a failed handshake or a message over ``max_size`` aborts the connection: the owner
    sees it as lost. ``opened`` resolves when the handshake succeeded, or fails with
    ``HandshakeError`` or ``ConnectionError``.

    The transport reads into ``recv_buffer``, which every connection on one loop may share: each
    read is consumed before the next (a plain ``Protocol`` would allocate 256 KiB per read)."""

    def __init__(
        self,
        owner: SocketOwner,
        host: str,
        resource: str,
        *,
        recv_buffer: memoryview,
        max_size: int,
    ) -> None:
        self.owner = owner
        self.recv_buffer = recv_buffer
        self.host = host
        self.resource = resource
        self.max_size = max_size
        self.state = CONNECTING
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._key = base64.b64encode(os.urandom(16)).decode()
        self._buffer = bytearray()
        self._fragments: list[bytes] | None = None
        self._fragments_size = 0
        self._open_reported = False  # the owner heard on_open, so it hears on_lost too

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
        transport.write(
            f"GET {self.resource} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.recv_buffer

    def buffer_updated(self, nbytes: int) -> None:
        data = self.recv_buffer
        if self.state == OPEN and not self._buffer:
            # The usual case: exactly one small, final, unfragmented text frame.
            n = nbytes - 2
            if n >= 0 and data[0] == 0x81 and data[1] == n and n < 126:
                self.owner.on_message(self, data[2:nbytes].tobytes())
                return
        self._buffer += data[:nbytes]
        if self.state == CONNECTING:
            self._handshake()
        if self.state in (OPEN, CLOSING):
            self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = CLOSED
        self.transport = None
        if self._open_reported:
            self.owner.on_lost(self)
        elif not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))

    # sending

    def send(self, payload: bytes) -> None:
        """Send one text message (``payload`` is UTF-8)."""
        assert self.transport is not None
        mask = _mask_bits(32).to_bytes(4, "big")
        n = len(payload)
        if n < 126:
            self.transport.write(_TEXT_HEADS[n] + mask + apply_mask(payload, mask))
        else:
            self.transport.write(_encode_frame(OP_TEXT, payload))

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake; the transport closes when the server answers."""
        if self.state == OPEN and self.transport is not None:
            self.state = CLOSING
            self.transport.write(_encode_frame(OP_CLOSE, code.to_bytes(2, "big")))

    def abort(self) -> None:
        """Cut the connection at once, without a close handshake (nothing is sent after)."""
        if self.transport is not None:
            if self.state == OPEN:
                self.state = CLOSING
            self.transport.abort()

    # receiving

    def _fail(self) -> None:
        if self.state == CONNECTING and not self.opened.done():
            self.opened.set_exception(HandshakeError("the server refused the upgrade"))
        self.state = CLOSING  # stop parsing; connection_lost follows the abort
        self.abort()

    def _handshake(self) -> None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEADERS:
                self._fail()
            return
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        status = head[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                self._fail()
                return
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        connection = {token.strip().lower() for token in headers.get("connection", "").split(",")}
        if (
            len(status) < 2
            or status[0] != "HTTP/1.1"
            or status[1] != "101"
            or headers.get("upgrade", "").lower() != "websocket"
            or "upgrade" not in connection
            or headers.get("sec-websocket-accept") != accept_key(self._key)
            or "sec-websocket-extensions" in headers  # none offered, none may be chosen
            or "sec-websocket-protocol" in headers
        ):
            self._fail()
            return
        self.state = OPEN
        self._open_reported = True
        self.owner.on_open(self)
        if not self.opened.done():
            self.opened.set_result(None)

    def _parse(self) -> None:
        buf = self._buffer
        pos = 0
        while self.state in (OPEN, CLOSING) and self.transport is not None:
            available = len(buf) - pos
            if available < 2:
                break
            b0, b1 = buf[pos], buf[pos + 1]
            if b1 & 0x80 or b0 & 0x70:  # a masked server frame, or reserved bits: no extension
                self._fail()
                return
            n = b1 & 0x7F
            start = pos + 2
            if n == 126:
                if available < 4:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif n == 127:
                if available < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
                if n >> 63:
                    self._fail()
                    return
            if n > self.max_size:
                self._fail()
                return
            if len(buf) < start + n:
                break
            payload = bytes(buf[start : start + n])
            pos = start + n
            self._frame(b0 & 0x80, b0 & 0x0F, payload)
        del buf[:pos]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode >= OP_CLOSE:
            if not fin or len(payload) > 125:
                self._fail()
            elif opcode == OP_CLOSE:
                self._closed_by_server(payload)
            elif opcode == OP_PING:
                if self.state == OPEN and self.transport is not None:
                    self.transport.write(_encode_frame(OP_PONG, payload))
            elif opcode != OP_PONG:
                self._fail()
            return
        if opcode == OP_CONTINUATION:
            if self._fragments is None:
                self._fail()
                return
            self._fragments.append(payload)
            self._fragments_size += len(payload)
            if self._fragments_size > self.max_size:
                self._fail()
            elif fin:
                message = b"".join(self._fragments)
                self._fragments = None
                self._deliver(message)
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._fragments is not None:
                self._fail()
            elif fin:
                self._deliver(payload)
            else:
                self._fragments = [payload]
                self._fragments_size = len(payload)
        else:
            self._fail()

    def _deliver(self, message: bytes) -> None:
        if self.state == OPEN:
            self.owner.on_message(self, message)

    def _closed_by_server(self, payload: bytes) -> None:
        if len(payload) == 1:
            self._fail()
            return
        if self.state == OPEN and self.transport is not None:
            self.state = CLOSING
            self.transport.write(_encode_frame(OP_CLOSE, payload[:2]))
        if self.transport is not None:
            self.transport.close()
