"""The driver socket's own WebSocket layer (server.nativews), over real sockets: the parts of
RFC 6455 a stock client uses that the driver tests do not."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.app import create_app
from server.settings import Settings
from tests.conftest import AUTH, scaled
from tests.tracking.test_driver_socket import pings, register, ws_url


def raw_request(base: str, head: bytes) -> bytes:
    url = urlparse(base)
    with socket.create_connection((url.hostname, url.port), timeout=scaled(5)) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_handshake_without_a_key_is_answered_400(live_server: str) -> None:
    answer = raw_request(
        live_server,
        b"GET /ws/driver?token=x HTTP/1.1\r\nHost: fleet\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Sec-WebSocket-Key" in answer
    assert httpx.get(f"{live_server}/health").status_code == 200


async def test_ping_fragments_and_close_from_a_stock_client(live_server: str) -> None:
    token = register(live_server, "native-1")
    start = int(time.time() * 1000) - 5000
    batch = json.dumps({"type": "pings", "seq": 3, "pings": pings(start, 3)})
    async with connect(ws_url(live_server, f"/ws/driver?token={token}")) as ws:
        latency = await asyncio.wait_for(ws.ping(b"are you there"), scaled(5))
        await asyncio.wait_for(latency, scaled(5))  # the pong came back with our payload
        await ws.send([batch[:10], batch[10:40], batch[40:]])  # one message in three frames
        ack = json.loads(await asyncio.wait_for(ws.recv(), scaled(5)))
        assert ack == {"type": "ack", "seq": 3, "accepted": 3, "duplicates": 0, "rejected": []}
        await ws.close(1000, "shift over")
    assert ws.close_code == 1000
    track = httpx.get(f"{live_server}/vehicles/native-1/track", headers=AUTH).json()
    assert [point["ts"] for point in track] == [start, start + 1000, start + 2000]


async def test_a_protocol_violation_closes_with_1002_and_the_server_lives_on(
    live_server: str,
) -> None:
    token = register(live_server, "native-2")
    async with connect(ws_url(live_server, f"/ws/driver?token={token}")) as ws:
        ws.transport.write(b"\x81\x02ok")  # an unmasked client frame
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), scaled(5))
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1002
    async with connect(ws_url(live_server, f"/ws/driver?token={token}")) as ws:
        now = int(time.time() * 1000)
        await ws.send(json.dumps({"type": "pings", "seq": 1, "pings": pings(now, 1)}))
        assert json.loads(await asyncio.wait_for(ws.recv(), scaled(5)))["type"] == "ack"


def wait_started(server: uvicorn.Server) -> None:
    deadline = time.monotonic() + scaled(10)
    while not server.started:
        assert time.monotonic() < deadline, "the plain uvicorn server did not start"
        time.sleep(0.02)


async def test_under_a_plain_asgi_server_the_driver_socket_still_works(
    redis_url: str, tmp_path: Path, live_server: str
) -> None:
    """Another ASGI server than fleet's own gets /ws/driver through the app's ASGI route."""
    settings = Settings(redis_url=redis_url, data_dir=tmp_path, port=0, log_level="warning")
    config = uvicorn.Config(
        create_app(settings), ws="websockets-sansio", log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        await asyncio.to_thread(wait_started, server)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        token = register(live_server, "asgi-1")  # the same Redis: either server registers
        now = int(time.time() * 1000)
        async with connect(ws_url(base, f"/ws/driver?token={token}")) as ws:
            await ws.send(json.dumps({"type": "pings", "seq": 9, "pings": pings(now - 2000, 2)}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), scaled(5)))
        assert ack == {"type": "ack", "seq": 9, "accepted": 2, "duplicates": 0, "rejected": []}
        async with connect(ws_url(base, "/ws/driver?token=wrong")) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), scaled(5))
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4001
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, scaled(20))
        sock.close()
