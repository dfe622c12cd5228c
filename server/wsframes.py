"""The server side of RFC 6455, as small pure pieces: the opening handshake and the frame codec.

Used by :mod:`server.nativews`, which serves the driver socket straight off the transport: at
thousands of messages a second, the generic ASGI WebSocket path (a protocol object, an ASGI
message dict, a framework wrapper and a task switch per frame) costs more than everything else a
ping needs. Only what a server needs is here: client frames are masked, server frames are not;
no extensions (``permessage-deflate`` is declined by not answering it), no subprotocols.

>>> reader = FrameReader(max_size=1024)
>>> reader.feed(b"\\x81\\x85" + b"\\x00\\x00\\x00\\x00" + b"hello")
[(1, b'hello')]
>>> server_frame(OP_TEXT, b"ok")
b'\\x81\\x02ok'
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

try:
    from websockets.speedups import apply_mask as apply_mask  # C; the load client uses it too
except ImportError:  # pragma: no cover - a platform without the C extension
    from websockets.utils import apply_mask as apply_mask

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_DATA = (OP_TEXT, OP_BINARY)
_CONTROL = (OP_CLOSE, OP_PING, OP_PONG)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_SERVICE_RESTART = 1012


class ProtocolError(Exception):
    """The peer broke RFC 6455: the connection is closed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Handshake:
    """An opening handshake request, parsed: its target and what the answer needs."""

    method: str
    path: str  # without the query
    query: str
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value

    @property
    def key(self) -> str:
        return self.headers.get("sec-websocket-key", "")


def parse_request(raw: bytes) -> Handshake | None:
    """The request line and headers of ``raw`` (one complete request head), or ``None`` when
    they are not readable as HTTP/1.1."""
    head, sep, _ = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    method, target, _version = parts
    path, _, query = target.partition("?")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            return None
        headers[name.strip().lower()] = value.strip()
    return Handshake(method=method, path=path, query=query, headers=headers)


def handshake_problem(request: Handshake) -> str | None:
    """Why ``request`` cannot be upgraded (a 400 answer), or ``None``."""
    if request.method != "GET":
        return "a WebSocket handshake is a GET request"
    if "websocket" not in request.headers.get("upgrade", "").lower():
        return "missing 'Upgrade: websocket'"
    if request.headers.get("sec-websocket-version") != "13":
        return "only WebSocket version 13 is supported"
    try:
        key = base64.b64decode(request.key, validate=True)
    except ValueError:
        key = b""
    if len(key) != 16:
        return "missing or malformed Sec-WebSocket-Key"
    return None


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` answer to a client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2).

    >>> accept_key("dGhlIHNhbXBsZSBub25jZQ==")  # the RFC's own example
    's3pPLMBiTxaQ9kYGzzhZRbK+xOo='
    """
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def switching_protocols(key: str) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    ).encode()


def bad_request(reason: str) -> bytes:
    body = reason.encode()
    return (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def server_frame(opcode: int, payload: bytes) -> bytes:
    """One unfragmented, unmasked frame."""
    length = len(payload)
    if length < 126:
        return bytes((0x80 | opcode, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, length) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, length) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return server_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:123])


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a close frame's payload (1005: no code given)."""
    if len(payload) < 2:
        return 1005, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


class FrameReader:
    """Turns the bytes a client sends into whole messages.

    :meth:`feed` returns ``(opcode, payload)`` pairs: data messages (fragments joined, text
    checked to be UTF-8) and control frames (close, ping, pong) in arrival order. It raises
    :class:`ProtocolError` for an unmasked frame, reserved bits, a bad fragment sequence, a
    control frame over 125 bytes, invalid UTF-8 in text (1007) or a message over ``max_size``
    bytes (1009), so a huge frame is refused from its header, before its payload arrives.
    """

    def __init__(self, *, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self._fragment_size = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer
        buffer += data
        out: list[tuple[int, bytes]] = []
        pos = 0
        end = len(buffer)
        while end - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            if first & 0x70:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set")
            if not second & 0x80:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            opcode = first & 0x0F
            fin = first & 0x80
            length = second & 0x7F
            head = pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                head = pos + 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                head = pos + 10
            if opcode in _CONTROL:
                if length > 125 or not fin:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "bad control frame")
            elif opcode not in _DATA and opcode != OP_CONTINUATION:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            elif self._fragment_size + length > self.max_size:
                raise ProtocolError(CLOSE_TOO_BIG, f"message over {self.max_size} bytes")
            start = head + 4
            if end - start < length:
                break
            payload = apply_mask(buffer[start : start + length], bytes(buffer[head:start]))
            pos = start + length
            if opcode in _CONTROL:
                out.append((opcode, payload))
                continue
            if opcode == OP_CONTINUATION:
                if not self._fragments:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation of nothing")
            elif self._fragments:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "a new message inside a fragmented one")
            else:
                self._fragment_opcode = opcode
            if not fin or self._fragments:
                self._fragments.append(payload)
                self._fragment_size += length
                if not fin:
                    continue
                payload = b"".join(self._fragments)
                self._fragments.clear()
                self._fragment_size = 0
            message_opcode = opcode if opcode != OP_CONTINUATION else self._fragment_opcode
            if message_opcode == OP_TEXT:
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError(CLOSE_INVALID_DATA, "text is not UTF-8") from None
            out.append((message_opcode, payload))
        if pos:
            del buffer[:pos]
        return out
