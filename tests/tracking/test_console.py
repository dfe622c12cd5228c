"""Console fan-out: viewport filtering, latest-wins batching, laggards, several processes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from server.tracking.console import EVENTS_PER_ROUND, MAX_QUEUED_FRAMES, TOKEN_REPLACED, Hub
from tests.conftest import STAFF_TOKEN, scaled
from tests.tracking.test_driver_socket import HELSINKI, register, send, ws_url

INSIDE = "24.90,60.15,24.98,60.19"


async def positions_until(ws: ClientConnection, wanted: Callable[[dict[str, Any]], bool]) -> dict:
    """Read frames until a ``positions`` frame with a vehicle ``wanted`` says yes to."""
    deadline = time.monotonic() + scaled(5)
    while time.monotonic() < deadline:
        frame = json.loads(await asyncio.wait_for(ws.recv(), scaled(5)))
        if frame["type"] == "positions":
            for vehicle in frame["vehicles"]:
                if wanted(vehicle):
                    return vehicle
    raise AssertionError("the console never saw the expected position")


async def test_console_sees_vehicles_inside_its_viewport_only(live_server: str) -> None:
    token_in = register(live_server, "inside")
    token_out = register(live_server, "outside")
    now = int(time.time() * 1000)
    async with connect(
        ws_url(live_server, f"/ws/console?bbox={INSIDE}&token={STAFF_TOKEN}")
    ) as console:
        async with connect(ws_url(live_server, f"/ws/driver?token={token_out}")) as driver:
            far = {"lat": 60.30, "lon": 25.20, "ts": now}
            await send(driver, {"type": "pings", "seq": 1, "pings": [far]})
        async with connect(ws_url(live_server, f"/ws/driver?token={token_in}")) as driver:
            near = {"lat": HELSINKI[0], "lon": HELSINKI[1], "ts": now}
            await send(driver, {"type": "pings", "seq": 1, "pings": [near]})
        seen = await positions_until(console, lambda v: v["id"] in {"inside", "outside"})
        assert seen["id"] == "inside"
        assert (seen["lat"], seen["lon"], seen["ts"]) == (HELSINKI[0], HELSINKI[1], now)
        # Moving the viewport sends a snapshot of what is in the new one.
        await console.send(json.dumps({"type": "viewport", "bbox": [25.1, 60.25, 25.3, 60.35]}))
        moved = await positions_until(console, lambda v: True)
        assert moved["id"] == "outside"


async def test_a_console_on_one_process_sees_a_vehicle_pinging_another(
    server_factory: Callable[..., str],
) -> None:
    process_a, process_b = server_factory(), server_factory()
    token = register(process_b, "cross")
    async with connect(ws_url(process_a, f"/ws/console?token={STAFF_TOKEN}")) as console:
        async with connect(ws_url(process_b, f"/ws/driver?token={token}")) as driver:
            ping = {"lat": HELSINKI[0], "lon": HELSINKI[1], "ts": int(time.time() * 1000)}
            await send(driver, {"type": "pings", "seq": 1, "pings": [ping]})
        seen = await positions_until(console, lambda v: v["id"] == "cross")
    assert seen["lat"] == HELSINKI[0]


async def test_bad_viewports_are_refused(live_server: str) -> None:
    async with connect(
        ws_url(live_server, f"/ws/console?bbox=1,2,3&token={STAFF_TOKEN}")
    ) as console:
        await asyncio.wait_for(console.wait_closed(), scaled(5))
    assert console.close_code == 4400
    async with connect(ws_url(live_server, f"/ws/console?token={STAFF_TOKEN}")) as console:
        for bad in (
            '{"type": "viewport", "bbox": "everywhere"}',
            "[1,",
            '{"type": "viewport", "bbox": [3, 2, 1, 0]}',
        ):
            await console.send(bad)
            frame = json.loads(await asyncio.wait_for(console.recv(), scaled(5)))
            while frame["type"] == "positions":  # the opening snapshot
                frame = json.loads(await asyncio.wait_for(console.recv(), scaled(5)))
            assert frame["type"] == "error"
            assert frame["code"] == "invalid_message"
    assert httpx.get(f"{live_server}/health").status_code == 200


async def test_a_console_flooding_bad_messages_gets_a_bounded_queue_of_answers(
    live_server: str,
) -> None:
    """Each bad message is answered, but the answers a client leaves unread are bounded as its
    events are: a console spamming the server cannot grow its memory without limit."""
    flood = 5 * MAX_QUEUED_FRAMES
    async with connect(ws_url(live_server, f"/ws/console?token={STAFF_TOKEN}")) as console:
        for _ in range(flood):
            await console.send("[1,")
        errors = resyncs = 0
        with contextlib.suppress(TimeoutError):
            while True:  # until the server has nothing more to say for a second
                frame = json.loads(await asyncio.wait_for(console.recv(), scaled(1)))
                errors += frame["type"] == "error"
                resyncs += frame["type"] == "resync"
    # The pump drains 50 frames a round, 10 rounds a second, while the flood arrives.
    assert 0 < errors < 3 * MAX_QUEUED_FRAMES, errors
    assert resyncs >= 1, "the client was not told that answers were dropped"
    assert httpx.get(f"{live_server}/health").status_code == 200


async def test_a_console_that_drops_its_connection_is_no_warning(
    live_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A browser tab closed while frames are on their way ends the socket quietly: a warning
    per closed tab would bury the ones that matter."""
    caplog.set_level(logging.INFO, logger="fleet.console")
    for _ in range(5):
        console = await connect(ws_url(live_server, f"/ws/console?token={STAFF_TOKEN}"))
        for _ in range(300):  # answers to send for the next 0.6 s
            await console.send("[1,")
        await console.recv()
        console.transport.abort()  # gone, no closing handshake
        await asyncio.sleep(0.3)
    assert httpx.get(f"{live_server}/health").status_code == 200
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_latest_position_wins_and_a_laggard_times_out() -> None:
    hub = Hub(interval_s=0.01, send_timeout_s=0.2)
    sent: list[str] = []
    release = asyncio.Event()

    async def slow_send(frame: str) -> None:
        sent.append(frame)
        await release.wait()  # a client whose socket never drains

    async with hub.subscribe((-180.0, -90.0, 180.0, 90.0)) as subscriber:
        for i in range(0, 100, 10):  # ten messages of ten positions, as the ingest script sends
            lines = [
                json.dumps({"id": "v", "lat": 60.0, "lon": 24.0, "ts": t}) for t in range(i, i + 10)
            ]
            hub.publish_positions("\n".join(lines).encode())
        hub.publish_positions(b'{"id": "w", "lat": "north"}\n{"id": "u", "lat": 1, "lon": 2}')
        assert len(subscriber.pending) == 2, "one entry per vehicle, however many positions"
        assert json.loads(subscriber.pending["v"])["ts"] == 99
        assert "u" in subscriber.pending, "a malformed line costs only itself"
        with pytest.raises(TimeoutError):
            await hub.pump(subscriber, slow_send)
    assert len(sent) == 1
    assert hub.subscribers == set()


async def test_a_stock_osmand_request_moves_the_vehicle_on_the_console(live_server: str) -> None:
    register(live_server, "phone", device_id="867530")
    async with connect(
        ws_url(live_server, f"/ws/console?bbox={INSIDE}&token={STAFF_TOKEN}")
    ) as console:
        answer = httpx.get(
            f"{live_server}/osmand",
            params={"id": "867530", "lat": "60.1702", "lon": "24.9402", "speed": "0"},
        )
        assert answer.status_code == 200
        seen = await positions_until(console, lambda v: v["id"] == "phone")
    assert (seen["lat"], seen["lon"]) == (60.1702, 24.9402)


async def test_a_flood_of_events_does_not_hold_positions_back() -> None:
    hub = Hub(interval_s=0.01, send_timeout_s=1.0)
    sent: list[dict[str, Any]] = []
    all_events_out = asyncio.Event()

    async def record(frame: str) -> None:
        sent.append(json.loads(frame))
        if len(sent) == 1:  # a vehicle moves while the flood is going out
            hub.publish_positions(b'{"id": "v0", "lat": 60.1, "lon": 24.0, "ts": 2}')
        if sum(f["type"] == "event" for f in sent) == 200:
            all_events_out.set()

    async with hub.subscribe((-180.0, -90.0, 180.0, 90.0)) as subscriber:
        subscriber.snapshot_due = False
        for i in range(200):  # 200 vehicles come online at once
            hub.publish_event(json.dumps({"type": "status", "vehicle_id": f"v{i}"}).encode())
        hub.publish_positions(b'{"id": "v0", "lat": 60.0, "lon": 24.0, "ts": 1}')
        pump = asyncio.create_task(hub.pump(subscriber, record))
        await asyncio.wait_for(all_events_out.wait(), scaled(5))
        pump.cancel()
    kinds = [frame["type"] for frame in sent]
    round_size = 1 + EVENTS_PER_ROUND
    assert kinds[:round_size] == ["positions"] + ["event"] * EVENTS_PER_ROUND
    assert kinds[round_size] == "positions", "the next round starts with the new position"
    assert [f["vehicles"][0]["ts"] for f in sent if f["type"] == "positions"] == [1, 2]


async def test_a_console_too_far_behind_on_events_is_told_to_resync() -> None:
    """Events beyond the queue's bound are not dropped silently: what waits gives way to one
    ``resync`` frame (the client reloads its state), and the events after it are kept."""
    hub = Hub()
    behind = MAX_QUEUED_FRAMES + 10
    async with hub.subscribe((-180.0, -90.0, 180.0, 90.0)) as subscriber:
        for i in range(behind):
            hub.publish_event(json.dumps({"type": "status", "vehicle_id": f"v{i}"}).encode())
        frames = [json.loads(frame) for frame in subscriber.frames]
    assert frames[0] == {"type": "resync", "reason": "events_dropped"}
    assert [f["event"]["vehicle_id"] for f in frames[1:]] == [
        f"v{i}" for i in range(MAX_QUEUED_FRAMES, behind)
    ]


async def test_rounds_start_every_interval_even_when_sending_takes_time() -> None:
    """The time a round's sends take counts towards its interval: a console on a busy server
    still gets about 1 / interval_s frames a second, not 1 / (interval_s + send time)."""
    hub = Hub(interval_s=0.4, send_timeout_s=5.0)
    starts: list[float] = []
    four_rounds = asyncio.Event()

    async def slow_send(frame: str) -> None:
        starts.append(time.monotonic())
        if len(starts) == 4:
            four_rounds.set()
        hub.publish_positions(b'{"id": "v", "lat": 60.0, "lon": 24.0, "ts": %d}' % len(starts))
        await asyncio.sleep(0.3)  # a send that takes most of the interval

    async with hub.subscribe((-180.0, -90.0, 180.0, 90.0)) as subscriber:
        hub.publish_positions(b'{"id": "v", "lat": 60.0, "lon": 24.0, "ts": 0}')
        pump = asyncio.create_task(hub.pump(subscriber, slow_send))
        await asyncio.wait_for(four_rounds.wait(), scaled(10))
        pump.cancel()
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # 0.4 s apart; waiting the whole interval after each send would make them 0.7 s apart
    assert sum(gaps) / len(gaps) < 0.55, gaps


def test_a_driver_hears_its_routes_their_eta_refreshes_and_nothing_after_its_token_goes() -> None:
    """Routes reach the vehicle's driver links (the newest not sent yet wins); an ETA refresh
    goes out as the route it refreshes, never as a route it is not of; after a token
    replacement nothing more is queued."""
    hub = Hub()

    def event(**fields: Any) -> bytes:
        return json.dumps(fields).encode()  # as queue_event spells events

    def queued(link: Any) -> dict[str, Any]:
        raw = link.routes.get_nowait()
        assert link.routes.empty()
        parsed: dict[str, Any] = json.loads(raw)
        return parsed

    stop = {"order_id": "o-1", "kind": "dropoff", "lat": 60.17, "lon": 24.94, "eta": 1000}
    route = {"type": "route", "vehicle_id": "van-1", "version": 3, "planned_at": 5,
             "stops": [stop, {**stop, "order_id": "o-2", "eta": 2000}], "geometry": "abc",
             "end": None}  # fmt: skip
    with hub.driver_link("van-1") as link, hub.driver_link("van-2") as other:
        hub.publish_event(event(**route))
        refreshed = {**stop, "order_id": "o-2", "eta": 1500}
        hub.publish_event(event(type="eta", vehicle_id="van-1", version=3, stops=[refreshed],
                                end=None, late_risk=[], slipped=[], at=9))  # fmt: skip
        got = queued(link)  # the refresh took the place of the route not sent yet
        assert (got["version"], got["planned_at"], got["geometry"]) == (3, 5, "abc")
        assert got["stops"] == [refreshed], "o-1 is done: only o-2 is left, sooner"
        assert other.routes.empty(), "another vehicle's route"

        # A refresh of an older version (one the new plan replaced) is no news for the driver.
        hub.publish_event(event(type="eta", vehicle_id="van-1", version=2, stops=[], end=None))
        assert link.routes.empty()

        hub.publish_event(event(type="vehicle_token", vehicle_id="van-1"))
        hub.publish_event(event(**{**route, "version": 4}))
        assert link.routes.get_nowait() == TOKEN_REPLACED, "the token is replaced: it closes"
        assert link.routes.empty()
