"""Browser fixtures: Debian's Chromium driven by Python playwright, headless, against a real
server on Andorra's roads, real Redis and simulated vehicles on real driver sockets.

Screenshots go to ``$FLEET_TEST_ARTIFACTS/screenshots`` (``test-artifacts/`` by default), which
``scripts/test`` prints at the end. Without ``/usr/bin/chromium`` these tests skip, saying so;
``scripts/test`` installs it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from geo.roads import Roads
from tests.conftest import AUTH, REPO, STAFF_TOKEN, scaled

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
ANDORRA_LA_VELLA = (42.5078, 1.5211)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is absent: scripts/test installs Debian's chromium")
    for item in items:
        if "tests/web" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def no_server_leftovers() -> Iterator[None]:
    """After each browser test (and its servers) ends, nothing it opened is left for the garbage
    collector: a Redis connection found there would be one a server forgot to close.

    (A server stopped while 2,000 driver sockets dropped used to take ~20 s and leave Redis
    connections behind; since the driver socket uses the ingest path's own connection, it stops
    in under a second and leaves none.)
    """
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:  # this test's servers, once stopped
        if thread.name.endswith("(run)"):
            thread.join(scaled(30))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaked, f"left unclosed by the test's servers: {leaked[:5]}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The screenshots folder (created)."""
    root = Path(os.environ.get("FLEET_TEST_ARTIFACTS", REPO / "test-artifacts"))
    folder = root / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for the browser tests. Package-scoped: playwright's sync API keeps
    an event loop running in the main thread, so it must be gone before async tests run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """Open pages in fresh contexts (desktop size unless told); all closed after the test."""
    contexts: list[Any] = []

    def open_page(viewport: dict[str, int] | None = None, **options: Any) -> Any:
        context = browser.new_context(viewport=viewport or DESKTOP, **options)
        context.set_default_timeout(scaled(15) * 1000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    errors: list[str] = []
    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
def fleet_server(server_factory: Callable[..., str], andorra: Roads) -> Callable[..., str]:
    """Start a server on Andorra's roads (settings overridable); returns its base URL."""

    def start(**overrides: Any) -> str:
        settings: dict[str, Any] = {"eta_refresh_s": 1.0, "solver_time_limit_s": 0.5}
        settings.update(overrides)
        return server_factory(roads=andorra, **settings)

    return start


class Swarm:
    """Simulated vehicles in their own process (``tests/web/swarm.py``)."""

    def __init__(self, base: str, count: int, **options: Any) -> None:
        args = [sys.executable, "-m", "tests.web.swarm", base, STAFF_TOKEN, "--count", str(count)]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        self.process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
        ready = threading.Event()
        assert self.process.stdout is not None
        stdout = self.process.stdout

        def watch() -> None:
            for line in stdout:
                if line.startswith("ready"):
                    ready.set()

        threading.Thread(target=watch, daemon=True).start()
        if not ready.wait(scaled(60)):
            self.stop()
            raise AssertionError(f"the swarm of {count} vehicles did not get ready in time")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(scaled(10))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def swarm() -> Iterator[Callable[..., Swarm]]:
    """Start swarms of simulated vehicles; all stop after the test."""
    started: list[Swarm] = []

    def start(base: str, count: int, **options: Any) -> Swarm:
        s = Swarm(base, count, **options)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


class Driver:
    """One vehicle's driver socket, driven step by step from the test."""

    def __init__(self, base: str, vehicle_id: str) -> None:
        answer = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": vehicle_id})
        answer.raise_for_status()
        self.id = vehicle_id
        self.token = answer.json()["token"]
        self.seq = 0
        self._open = contextlib.ExitStack()
        self.ws: ClientConnection = self._open.enter_context(
            connect(base.replace("http", "ws", 1) + f"/ws/driver?token={self.token}")
        )

    def ping(
        self, lat: float, lon: float, *, ago_s: float = 0.0, now_s: float | None = None
    ) -> None:
        """One ping from ``ago_s`` before ``now_s`` (the server's time: real time unless told)."""
        ts = int(((time.time() if now_s is None else now_s) - ago_s) * 1000)
        reply = self._ask({"type": "pings", "pings": [{"lat": lat, "lon": lon, "ts": ts}]})
        assert reply["type"] == "ack", reply
        assert reply["accepted"] == 1, reply

    def report(self, order_id: str, event: str, **extra: str) -> str:
        """Report a stop event; the order's status the ack gives."""
        reply = self._ask({"type": "stop", "order_id": order_id, "event": event, **extra})
        assert reply["type"] == "stop_ack", reply
        status: str = reply["status"]
        return status

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send ``message`` with the next seq; the answer to it (route pushes skipped)."""
        self.seq += 1
        self.ws.send(json.dumps({**message, "seq": self.seq}))
        deadline = time.monotonic() + scaled(10)
        while time.monotonic() < deadline:
            reply: dict[str, Any] = json.loads(self.ws.recv(timeout=scaled(10)))
            if reply.get("seq") == self.seq:
                return reply
        raise AssertionError(f"no answer to {message['type']}")

    def close(self) -> None:
        self._open.close()


@pytest.fixture
def drivers() -> Iterator[Callable[[str, str], Driver]]:
    opened: list[Driver] = []

    def open_driver(base: str, vehicle_id: str) -> Driver:
        driver = Driver(base, vehicle_id)
        opened.append(driver)
        return driver

    yield open_driver
    for driver in opened:
        driver.close()


def order_body(lat: float, lon: float, hours: float = 3, **extra: Any) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "dropoff": {"lat": lat, "lon": lon},
        "window": {"start": now.isoformat(), "end": (now + dt.timedelta(hours=hours)).isoformat()},
        **extra,
    }


def open_phone(new_page: Callable[..., Any], base: str, token: str, at: tuple[float, float]) -> Any:
    """The driver's page of a vehicle's ``token`` on a phone at ``at``, connected."""
    phone = new_page(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        geolocation={"latitude": at[0], "longitude": at[1], "accuracy": 8},
        permissions=["geolocation"],
    )
    phone.goto(f"{base}/driver#token={token}")
    phone.wait_for_selector("#conn.ok")
    return phone


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + scaled(timeout_s)
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def open_console(new_page: Callable[..., Any], base: str, **options: Any) -> Any:
    """The console, signed in through the ``#token=`` link, once its socket is live."""
    page = new_page(**options)
    page.goto(f"{base}/console#token={STAFF_TOKEN}")
    page.wait_for_selector("#conn.ok")
    return page


def click_map(page: Any, lat: float, lon: float) -> None:
    """Click the console's map at a position."""
    point = page.evaluate(
        "([lat, lon]) => { const p = fleetConsole.map.latLngToContainerPoint([lat, lon]);"
        " return {x: p.x, y: p.y}; }",
        [lat, lon],
    )
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
