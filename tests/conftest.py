"""Shared fixtures: a real ``redis-server`` per session, flushed per test, and a live server.

Timeouts in tests are multiplied by ``FLEET_TEST_TIMEOUT_SCALE`` (default 1) for slow machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from geo.roads import Roads
from server.app import create_app
from server.auth import token_hash
from server.cli import main
from server.keys import staff_token
from server.redis_process import PrivateRedis
from server.serving import build_server
from server.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
STAFF_TOKEN = "test-dispatcher-token"
AUTH = {"Authorization": f"Bearer {STAFF_TOKEN}"}
TIMEOUT_SCALE = float(os.environ.get("FLEET_TEST_TIMEOUT_SCALE", "1"))


def default_sigint() -> None:
    """``preexec_fn`` for children a test stops with Ctrl-C (SIGINT): a test run started in the
    background has SIGINT ignored, which children would inherit and Ctrl-C would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def scaled(seconds: float) -> float:
    """A timeout for tests, stretched by FLEET_TEST_TIMEOUT_SCALE."""
    return seconds * TIMEOUT_SCALE


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """One real redis-server on a free loopback port for the whole session."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed; run scripts/test, which installs it")
    server = PrivateRedis(tmp_path_factory.mktemp("redis"), startup_timeout_s=scaled(10))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: PrivateRedis) -> str:
    """URL of the session's Redis, flushed before the test; it knows the dispatcher token
    ``STAFF_TOKEN`` (send ``AUTH`` as headers)."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.hset(staff_token(token_hash(STAFF_TOKEN)), mapping={"role": "dispatcher"})
    client.close()
    return redis_server.url


def serve_in_thread(
    server: Any, running: list[tuple[Any, threading.Thread, socket.socket]]
) -> tuple[threading.Thread, socket.socket]:
    """Run ``server`` (from ``build_server``) in a thread on an ephemeral loopback socket, as
    the CLI does; noted in ``running`` before it starts; returns once it serves."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    running.append((server, thread, sock))
    deadline = time.monotonic() + scaled(10)
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the live server did not start")
        time.sleep(0.02)
    return thread, sock


@pytest.fixture
def server_factory(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start real app servers (uvicorn in a thread, ephemeral port) on the test's Redis; each
    call starts one more and returns its base URL. All stop after the test."""
    running: list[tuple[Any, threading.Thread, socket.socket]] = []

    def start(*, roads: Roads | None = None, **overrides: Any) -> str:
        settings = Settings(
            redis_url=redis_url, data_dir=tmp_path, port=0, log_level="warning", **overrides
        )
        server = build_server(create_app(settings, roads=roads), log_level="warning")
        _, sock = serve_in_thread(server, running)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, _, _ in running:
        server.should_exit = True
    stuck: list[str] = []
    slow: list[str] = []
    for server, thread, sock in running:
        thread.join(scaled(10))
        if thread.is_alive():  # stuck in its graceful stop: skip the wait for connections
            server.force_exit = True
            thread.join(scaled(10))
        if thread.is_alive():  # a loaded machine, or a hang: note where it is, wait longer
            where = _where_stuck(server, thread)
            thread.join(scaled(40))
            (stuck if thread.is_alive() else slow).append(where)
        sock.close()
    for where in slow:  # shown with the test's output if it fails for another reason
        print(f"a live server took over {scaled(20):.0f} s to stop:\n{where}", file=sys.stderr)
    # A server left running would plan and publish into the next test's Redis.
    assert not stuck, (
        f"{len(stuck)} live server(s) did not stop within {scaled(60):.0f} s:\n" + "\n".join(stuck)
    )


def _where_stuck(server: Any, thread: threading.Thread) -> str:
    """What a server thread that would not stop is doing: its stack and its loop's tasks."""
    lines = ["server thread:"]
    frame = sys._current_frames().get(thread.ident or -1)
    lines += traceback.format_stack(frame) if frame is not None else ["(no frame)"]
    try:
        loop = server.servers[0].get_loop() if server.servers else None
        for task in asyncio.all_tasks(loop) if loop is not None else ():
            out = io.StringIO()
            task.print_stack(limit=8, file=out)
            lines.append(out.getvalue())
    except RuntimeError as exc:  # the loop changed its task set while we looked
        lines.append(f"(tasks unavailable: {exc})")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


@pytest.fixture(scope="session")
def andorra(tmp_path_factory: pytest.TempPathFactory) -> Roads:
    """The real road network of Andorra, imported once per session into a temporary cache."""
    extract = SHARED_DATA / "osm" / "andorra.osm.pbf"
    if not extract.is_file():
        pytest.skip(f"{extract} is absent: the Andorra tests need ../shared/data/osm")
    return Roads.open(extract, tmp_path_factory.mktemp("roads"), progress=lambda _: None)


@pytest.fixture
def live_server(server_factory: Callable[..., str]) -> str:
    """The real app served by uvicorn on an ephemeral port; its base URL."""
    return server_factory()


def run_cli(*args: str) -> tuple[int, str, str]:
    """``fleet ARGS`` in this process: its exit code, stdout and stderr. Captured here rather
    than with ``capsys``, whose stream is closed after the test: a server created meanwhile would
    keep logging to it (Litestar binds its log handler to ``sys.stderr`` when an app is made)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()
