"""How the app is served: a busy server still takes a crowd of new connections at once."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar, get

from server.serving import build_server
from tests.conftest import scaled, serve_in_thread


@get("/ping", sync_to_thread=False)
def ping() -> str:
    return "pong"


def read_to_end(client: socket.socket) -> bytes:
    """What the server sent until it closed the connection (``Connection: close``)."""
    chunks = []
    while chunk := client.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def busy_server() -> Iterator[tuple[int, asyncio.AbstractEventLoop]]:
    """The app served as the CLI serves it (uvicorn, uvloop, a socket handed in), in a thread;
    its port and its event loop."""
    server = build_server(Litestar([ping]), log_level="warning")
    running: list[tuple[Any, threading.Thread, socket.socket]] = []
    thread, sock = serve_in_thread(server, running)
    yield sock.getsockname()[1], server.servers[0].get_loop()
    server.should_exit = True
    thread.join(scaled(10))
    sock.close()


def test_a_busy_server_accepts_a_crowd_of_connections_at_once(
    busy_server: tuple[int, asyncio.AbstractEventLoop],
) -> None:
    """A reconnecting crowd (a network blip, a restart) is let in within a few turns of a busy
    event loop; accepted one per turn, 200 clients would wait 200 turns (10 s here)."""
    port, loop = busy_server
    stop = threading.Event()

    def busy() -> None:  # each turn of the server's loop takes 50 ms, as under heavy load
        time.sleep(0.05)
        if not stop.is_set():
            loop.call_soon(busy)

    loop.call_soon_threadsafe(busy)
    time.sleep(0.1)
    clients = []
    try:
        started = time.monotonic()
        for _ in range(200):  # connected by the kernel, waiting to be accepted
            client = socket.create_connection(("127.0.0.1", port), timeout=scaled(20))
            client.sendall(b"GET /ping HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            clients.append(client)
        answers = [read_to_end(client) for client in clients]
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        for client in clients:
            client.close()
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers), answers[:3]
    assert all(answer.endswith(b"pong") for answer in answers), answers[:3]
    assert elapsed < 5.0, f"200 connections took {elapsed:.1f} s to be served"
