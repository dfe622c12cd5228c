"""Geofences: the H3 index agrees with the exact test; enter, dwell and exit reach the console."""

from __future__ import annotations

import asyncio
import json
import random
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from geo.fences import Fence, FenceIndex, point_in_ring, step
from tests.conftest import AUTH, STAFF_TOKEN, scaled
from tests.tracking.test_driver_socket import register, send, ws_url

# A concave (L-shaped) depot yard in central Helsinki, (lat, lon) corners, ~600 m across.
YARD = ((60.1680, 24.9300), (60.1680, 24.9400), (60.1710, 24.9400),
        (60.1710, 24.9340), (60.1740, 24.9340), (60.1740, 24.9300))  # fmt: skip
INDEX = FenceIndex.build([Fence("yard", "Yard", YARD, dwell_s=60)], resolution=11)


@given(st.floats(60.165, 60.177), st.floats(24.926, 24.944))
def test_the_cell_index_agrees_with_the_exact_test(lat: float, lon: float) -> None:
    assert (INDEX.containing(lat, lon) == {"yard"}) == point_in_ring(lat, lon, YARD)


def test_most_cells_need_no_exact_test() -> None:
    rng = random.Random(1)
    inside = [(rng.uniform(60.168, 60.174), rng.uniform(24.930, 24.940)) for _ in range(2000)]
    inside = [p for p in inside if point_in_ring(*p, YARD)]
    exact = sum(1 for lat, lon in inside if any(e for _, e in INDEX.cells[_cell(lat, lon)]))
    assert exact / len(inside) < 0.5


def _cell(lat: float, lon: float) -> str:
    from geo.cells import cell_of

    return cell_of(lat, lon, 11)


def test_enter_dwell_exit_once_each() -> None:
    inside, events = step({}, 60.1690, 24.9350, 1_000, INDEX)
    assert [e["kind"] for e in events] == ["enter"]
    inside, events = step(inside, 60.1691, 24.9351, 30_000, INDEX)
    assert events == []
    inside, events = step(inside, 60.1692, 24.9352, 61_000, INDEX)
    assert [e["kind"] for e in events] == ["dwell"]
    inside, events = step(inside, 60.1693, 24.9353, 90_000, INDEX)
    assert events == [], "dwell is reported once per visit"
    inside, events = step(inside, 60.1730, 24.9390, 95_000, INDEX)  # the L's missing corner
    assert [e["kind"] for e in events] == ["exit"]
    assert inside == {}


async def test_console_gets_geofence_events(live_server: str) -> None:
    corners = [[lon, lat] for lat, lon in YARD]
    made = httpx.post(
        f"{live_server}/geofences",
        headers=AUTH,
        json={"id": "yard", "polygon": corners, "dwell_s": 1},
    )
    assert made.status_code == 201, made.text
    assert [f["id"] for f in httpx.get(f"{live_server}/geofences", headers=AUTH).json()] == ["yard"]
    await asyncio.sleep(0.3)  # the server hears of the new fence over Redis
    token = register(live_server, "van-g")
    now = int(time.time() * 1000)
    track = [(60.1660, 24.9350), (60.1690, 24.9350), (60.1691, 24.9351), (60.1660, 24.9350)]
    kinds: list[str] = []
    async with connect(ws_url(live_server, f"/ws/console?token={STAFF_TOKEN}")) as console:
        async with connect(ws_url(live_server, f"/ws/driver?token={token}")) as driver:
            for i, (lat, lon) in enumerate(track):
                fix = {"lat": lat, "lon": lon, "ts": now - 120_000 + i * 30_000}  # ~11 m/s
                await send(driver, {"type": "pings", "seq": i, "pings": [fix]})
        deadline = time.monotonic() + scaled(5)
        while len(kinds) < 3 and time.monotonic() < deadline:
            frame = json.loads(await asyncio.wait_for(console.recv(), scaled(5)))
            if frame["type"] == "event" and frame["event"].get("type") == "geofence":
                assert frame["event"]["vehicle_id"] == "van-g"
                kinds.append(frame["event"]["kind"])
    assert kinds == ["enter", "dwell", "exit"]


@pytest.mark.parametrize(
    "body",
    [
        {"id": "a", "polygon": [[24.9, 60.1], [24.91, 60.1]]},
        {"id": "a", "polygon": [[24.9, 95.0], [24.91, 60.1], [24.92, 60.2]]},
        {"id": "bad id", "polygon": [[24.9, 60.1], [24.91, 60.1], [24.92, 60.2]]},
    ],
)
def test_bad_geofences_are_refused(live_server: str, body: dict) -> None:
    answer = httpx.post(f"{live_server}/geofences", headers=AUTH, json=body)
    assert answer.status_code == 400
    assert httpx.delete(f"{live_server}/geofences/nothing", headers=AUTH).status_code == 404
