"""``GET /vehicles/{id}/report``: a van's trips and stops, from pings sent over its socket."""

from __future__ import annotations

import math

import httpx
import pytest
from websockets.asyncio.client import connect

from geo.trips import Fix
from tests.conftest import AUTH
from tests.geo.test_trips import LAT0, LON0, M_PER_DEG, Van
from tests.tracking.test_driver_socket import now_ms, register, send, ws_url


def as_ping(fix: Fix, shift_ms: int) -> dict[str, float | int]:
    return {"lat": round(fix.lat, 7), "lon": round(fix.lon, 7), "ts": fix.ts + shift_ms}


async def test_a_vans_morning_comes_back_as_trips_and_stops(live_server: str) -> None:
    van = Van(noise_m=3.0, seed=5)
    van.park(300)  # the depot
    van.drive(240, 12.0)  # 2,880 m north
    van.park(200)  # a drop-off
    van.drive(120, 12.0, heading_deg=90)  # 1,440 m east
    van.park(130)
    shift = now_ms() - 60_000 - van.fixes[-1].ts  # the last fix a minute ago
    token = register(live_server, "van-1")
    async with connect(ws_url(live_server, f"/ws/driver?token={token}")) as ws:
        for seq, first in enumerate(range(0, len(van.fixes), 100)):
            batch = [as_ping(f, shift) for f in van.fixes[first : first + 100]]
            ack = await send(ws, {"type": "pings", "seq": seq, "pings": batch})
            assert ack["accepted"] == len(batch), ack
    start, end = van.fixes[0].ts + shift, van.fixes[-1].ts + shift
    answer = httpx.get(
        f"{live_server}/vehicles/van-1/report",
        headers=AUTH,
        params={"from": start - 1000, "to": end + 1000},
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert [p["type"] for p in report["parts"]] == ["stop", "trip", "stop", "trip", "stop"]
    depot, first, drop, second, last = report["parts"]
    assert depot["start_ts"] == start
    assert drop["duration_s"] == pytest.approx(200, abs=5)
    north = (drop["lat"] - LAT0) * M_PER_DEG
    east = (drop["lon"] - LON0) * M_PER_DEG * math.cos(math.radians(LAT0))
    assert math.hypot(east, north - 2880) < 5
    assert first["distance_m"] == pytest.approx(2880, rel=0.04)
    assert second["distance_m"] == pytest.approx(1440, rel=0.04)
    assert first["max_speed_mps"] == pytest.approx(12, rel=0.15)
    assert last["end_ts"] == end
    summary = report["summary"]
    assert summary["fixes"] == len(van.fixes)
    assert (summary["stops"], summary["trips"]) == (3, 2)
    assert summary["distance_m"] == pytest.approx(
        first["distance_m"] + second["distance_m"], abs=0.2
    )
    assert report["truncated"] is False
    # A longer shortest stop: the drop-off of 200 s is driven through.
    longer = httpx.get(
        f"{live_server}/vehicles/van-1/report",
        headers=AUTH,
        params={"from": start, "to": end, "stop_min_s": 250},
    ).json()
    assert [p["type"] for p in longer["parts"]] == ["stop", "trip"]


def test_a_report_says_what_is_wrong_with_its_question(live_server: str) -> None:
    register(live_server, "van-1")
    url = f"{live_server}/vehicles/van-1/report"
    empty = httpx.get(url, headers=AUTH)
    assert empty.status_code == 200
    assert empty.json()["parts"] == []
    assert empty.json()["summary"]["fixes"] == 0
    assert httpx.get(url).status_code == 401
    assert httpx.get(f"{live_server}/vehicles/van-9/report", headers=AUTH).status_code == 404
    week_and_a_day = {"from": 0, "to": 8 * 24 * 3_600_000}
    too_long = httpx.get(url, headers=AUTH, params=week_and_a_day)
    assert too_long.status_code == 400
    assert "7 days" in too_long.json()["error"]["message"]
    backwards = httpx.get(url, headers=AUTH, params={"from": 2000, "to": 1000})
    assert backwards.status_code == 400
    assert httpx.get(url, headers=AUTH, params={"stop_min_s": 1}).status_code == 400
