"""The native WebSocket codec against an independent encoder: the ``websockets`` library's own
client-side framing."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode

from server.nativews import NativeWebSocket
from server.wsframes import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    FrameReader,
    Handshake,
    ProtocolError,
    accept_key,
    handshake_problem,
    parse_close,
    parse_request,
    server_frame,
)


def client(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    """A frame as a real client sends it: masked with a random key."""
    return Frame(opcode, data, fin=fin).serialize(mask=True)


def feed_in_pieces(reader: FrameReader, data: bytes, cuts: list[int]) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        out += reader.feed(data[start:cut])
        start = max(start, cut)
    return out


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70_000])
def test_every_length_encoding_is_read(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    reader = FrameReader(max_size=1 << 20)
    assert reader.feed(client(Opcode.BINARY, payload)) == [(OP_BINARY, payload)]


def test_a_message_split_anywhere_comes_out_whole_and_once() -> None:
    data = client(Opcode.TEXT, b'{"type":"pings"}') + client(Opcode.TEXT, b"[1]")
    for cut in range(len(data) + 1):
        reader = FrameReader(max_size=1024)
        messages = reader.feed(data[:cut]) + reader.feed(data[cut:])
        assert messages == [(OP_TEXT, b'{"type":"pings"}'), (OP_TEXT, b"[1]")], cut


def test_fragments_are_joined_and_a_ping_between_them_is_answered_in_order() -> None:
    reader = FrameReader(max_size=1024)
    data = (
        client(Opcode.TEXT, b'{"a":', fin=False)
        + client(Opcode.PING, b"hi")
        + client(Opcode.CONT, b"1}", fin=True)
    )
    assert reader.feed(data) == [(OP_PING, b"hi"), (OP_TEXT, b'{"a":1}')]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x81\x02ok", 1002),  # not masked
        (b"\xc1\x80\x00\x00\x00\x00", 1002),  # a reserved bit set
        (client(Opcode.CONT, b"x"), 1002),  # a continuation of nothing
        (client(Opcode.TEXT, b"a", fin=False) + client(Opcode.TEXT, b"b"), 1002),
        (b"\x89\xfe\x00\x7e" + b"\x00" * 4, 1002),  # a ping of 126 bytes
        (b"\x83\x80\x00\x00\x00\x00", 1002),  # opcode 3 is reserved
        (client(Opcode.TEXT, b"\xff\xfe"), 1007),  # text that is not UTF-8
    ],
)
def test_protocol_violations_have_their_close_code(data: bytes, code: int) -> None:
    with pytest.raises(ProtocolError) as error:
        FrameReader(max_size=1024).feed(data)
    assert error.value.code == code


def test_an_oversized_message_is_refused_from_its_header_alone() -> None:
    header = client(Opcode.TEXT, b"x" * 2000)[:8]  # length and mask, no payload yet
    with pytest.raises(ProtocolError) as error:
        FrameReader(max_size=1024).feed(header)
    assert error.value.code == 1009
    fragments = client(Opcode.TEXT, b"x" * 600, fin=False) + client(Opcode.CONT, b"x" * 600)
    with pytest.raises(ProtocolError):
        FrameReader(max_size=1024).feed(fragments)


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(
        st.one_of(
            st.text(max_size=300).map(lambda s: (Opcode.TEXT, s.encode())),
            st.binary(max_size=300).map(lambda b: (Opcode.BINARY, b)),
        ),
        max_size=6,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
)
def test_any_messages_cut_anywhere_round_trip(
    messages: list[tuple[Opcode, bytes]], cuts: list[int]
) -> None:
    data = b"".join(client(opcode, payload) for opcode, payload in messages)
    got = feed_in_pieces(FrameReader(max_size=4096), data, cuts)
    assert got == [(int(opcode), payload) for opcode, payload in messages]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_messages_or_a_protocol_error_only(data: bytes) -> None:
    code = None
    try:
        FrameReader(max_size=64).feed(data)
    except ProtocolError as error:
        code = error.code
    assert code in (None, 1002, 1007, 1009)


def test_server_frames_read_back_with_the_library() -> None:
    for size in (0, 5, 200, 70_000):
        payload = b"y" * size
        frame = server_frame(OP_TEXT, payload)
        header = 2 if size < 126 else 4 if size < 65536 else 10
        assert frame[0] == 0x81
        assert len(frame) == header + size
        assert frame[header:] == payload


def test_close_payloads() -> None:
    assert parse_close(b"") == (1005, "")
    assert parse_close(b"\x03\xe8bye") == (1000, "bye")
    assert OP_CLOSE == 8


HANDSHAKE = (
    b"GET /ws/driver?token=abc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def test_handshake_checks() -> None:
    good = HANDSHAKE
    request = parse_request(good)
    assert request is not None
    assert (request.path, request.query) == ("/ws/driver", "token=abc")
    assert handshake_problem(request) is None
    assert accept_key(request.key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    no_key = parse_request(good.replace(b"Sec-WebSocket-Key", b"X-Other"))
    assert no_key is not None
    assert handshake_problem(no_key) is not None
    old = parse_request(good.replace(b"Version: 13", b"Version: 8"))
    assert old is not None
    assert "version 13" in (handshake_problem(old) or "")
    assert parse_request(b"GET /\r\n\r\n") is None
    assert parse_request(b"GET / HTTP/1.1\r\nno colon\r\n\r\n") is None


class _Transport(asyncio.Transport):
    """Collects what the connection writes; reading and closing are recorded, not performed."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def test_senders_waiting_for_a_slow_client_all_resume_when_it_drains() -> None:
    async def handler(socket: NativeWebSocket, request: Handshake) -> None:
        await asyncio.Event().wait()

    socket = NativeWebSocket(handler, ServerState(), max_size=1024)
    transport = _Transport()
    socket.connection_made(transport)
    socket.data_received(HANDSHAKE)
    socket.pause_writing()  # the client stopped reading
    ack = asyncio.ensure_future(socket.send(b'{"type":"ack"}'))
    route = asyncio.ensure_future(socket.send(b'{"type":"route"}'))
    await asyncio.sleep(0.01)
    assert not ack.done()
    assert not route.done()
    socket.resume_writing()
    await asyncio.wait_for(asyncio.gather(ack, route), 1)
    assert transport.written.count(b'"type":"') == 2
    socket.connection_lost(None)
