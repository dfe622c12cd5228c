"""Working hours: which shift is on at a moment, across midnight and daylight-saving days; and
the planner leaving a van between its shifts out, over a real server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

import httpx
import pytest
from websockets.asyncio.client import connect

from dispatch.errors import ProblemError
from dispatch.shifts import current_or_next, on_shift, parse_clock
from geo.roads import Roads
from tests.conftest import AUTH
from tests.dispatch.test_planning_service import DROPS, VANS, new_van, order
from tests.tracking.test_driver_socket import send, ws_url

HELSINKI = ZoneInfo("Europe/Helsinki")
T = dt.time


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=HELSINKI)


@pytest.mark.parametrize(
    ("now", "start", "end", "left_h"),
    [
        (at(30, 12), T(8), T(16), 4.0),  # in progress
        (at(30, 7, 30), T(8), T(16), None),  # before it
        (at(30, 17), T(8), T(16), None),  # after it: tomorrow's is next
        (at(30, 23), T(22), T(6), 7.0),  # overnight, before midnight
        (at(30, 3), T(22), T(6), 3.0),  # overnight, after midnight: last night's
        (at(30, 7), T(22), T(6), None),  # between two nights
        (at(30, 16), T(8), T(16), None),  # the end is not in it
        (at(30, 8), T(8), T(16), 8.0),  # the start is
    ],
)
def test_the_shift_on_at_a_moment(
    now: dt.datetime, start: dt.time, end: dt.time, left_h: float | None
) -> None:
    left = on_shift(now, start, end, HELSINKI)
    assert left == (None if left_h is None else left_h * 3600)


def test_the_next_shift_is_tomorrows_once_todays_is_over() -> None:
    begins, ends = current_or_next(at(30, 17), T(8), T(16), HELSINKI)
    assert (begins, ends) == (at(1, 8, month=12), at(1, 16, month=12))


def test_daylight_saving_nights_are_as_long_as_the_clocks_say() -> None:
    # 29 March 2026 the clocks go from 03:00 to 04:00; 25 October from 04:00 back to 03:00.
    spring = dt.datetime(2026, 3, 29, 1, 30, tzinfo=HELSINKI)
    begins, ends = current_or_next(spring, T(2), T(5), HELSINKI)
    assert (ends - begins).total_seconds() == 2 * 3600
    autumn = dt.datetime(2026, 10, 25, 1, 30, tzinfo=HELSINKI)
    begins, ends = current_or_next(autumn, T(2), T(5), HELSINKI)
    assert (ends - begins).total_seconds() == 4 * 3600


def test_a_shift_needs_two_different_times_of_day() -> None:
    with pytest.raises(ProblemError, match="must not start when it ends"):
        current_or_next(at(30, 12), T(8), T(8), HELSINKI)
    with pytest.raises(ProblemError, match="HH:MM"):
        parse_clock("8 o'clock")


def clock_text(moment: dt.datetime) -> str:
    return moment.strftime("%H:%M")


@pytest.mark.parametrize("zone", ["UTC", "Europe/Helsinki"])
async def test_a_van_between_its_shifts_is_not_planned(
    server_factory: Callable[..., str], andorra: Roads, zone: str
) -> None:
    base = server_factory(roads=andorra, time_zone=zone)
    assert httpx.get(f"{base}/web/config").json()["time_zone"] == zone
    now = dt.datetime.now(ZoneInfo(zone))  # the hours are the fleet's local clock times
    ended = {"start": clock_text(now - dt.timedelta(hours=3)),
             "end": clock_text(now - dt.timedelta(hours=1))}  # fmt: skip
    tokens = {van: new_van(base, van) for van in VANS}
    shifted = httpx.patch(f"{base}/vehicles/van-1", headers=AUTH, json={"shift": ended})
    assert shifted.status_code == 200, shifted.text
    assert shifted.json()["shift"] == ended
    fleet = httpx.get(f"{base}/web/fleet", headers=AUTH).json()["vehicles"]
    assert {v["id"]: v["shift"] for v in fleet} == {"van-1": ended, "van-2": None}
    for van, (lat, lon) in VANS.items():
        async with connect(ws_url(base, f"/ws/driver?token={tokens[van]}")) as driver:
            ping = {"lat": lat, "lon": lon, "ts": int(time.time() * 1000)}
            await send(driver, {"type": "pings", "seq": 1, "pings": [ping]})
    for lat, lon in DROPS:
        httpx.post(f"{base}/orders", headers=AUTH, json=order(lat, lon)).raise_for_status()
    planned = httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()
    assert (planned["vehicles"], planned["assigned"]) == (1, len(DROPS))
    assert httpx.get(f"{base}/dispatch/routes/van-1", headers=AUTH).status_code == 404
    # Utilisation counts the vans that could work: van-2, busy; not van-1, off shift.
    assert httpx.get(f"{base}/web/kpis", headers=AUTH).json()["utilisation"] == 1.0
    # Its working hours moved to now: it is planned again.
    on = {"start": clock_text(now - dt.timedelta(hours=1)),
          "end": clock_text(now + dt.timedelta(hours=2))}  # fmt: skip
    httpx.patch(f"{base}/vehicles/van-1", headers=AUTH, json={"shift": on}).raise_for_status()
    assert httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()["vehicles"] == 2
    cleared = httpx.patch(f"{base}/vehicles/van-1", headers=AUTH, json={"shift": None})
    assert cleared.json()["shift"] is None
    assert httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()["vehicles"] == 2


@pytest.mark.parametrize(
    "shift",
    [{"start": "08:00", "end": "08:00"}, {"start": "25:00", "end": "08:00"},
     {"start": "8:00", "end": "16:00"}, {"start": "08:00"}],
)  # fmt: skip
def test_working_hours_that_are_not_are_refused(live_server: str, shift: dict[str, str]) -> None:
    answer = httpx.post(f"{live_server}/vehicles", headers=AUTH, json={"id": "v", "shift": shift})
    assert answer.status_code == 400, answer.text
    assert "shift" in answer.text
    new_van(live_server, "w")
    patched = httpx.patch(f"{live_server}/vehicles/w", headers=AUTH, json={"shift": shift})
    assert patched.status_code == 400


async def test_a_van_whose_shift_ends_with_goods_on_board_still_delivers_them(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    base = server_factory(roads=andorra)
    tokens = {van: new_van(base, van) for van in VANS}
    drivers = {v: await connect(ws_url(base, f"/ws/driver?token={t}")) for v, t in tokens.items()}
    try:
        for van, (lat, lon) in VANS.items():
            ping = {"lat": lat, "lon": lon, "ts": int(time.time() * 1000)}
            await send(drivers[van], {"type": "pings", "seq": 1, "pings": [ping]})
        body = {**order(*DROPS[0]), "pickup": {"lat": VANS["van-1"][0], "lon": VANS["van-1"][1]}}
        carried = httpx.post(f"{base}/orders", headers=AUTH, json=body).json()["order"]["id"]
        pin = {"vehicle_id": "van-1"}
        httpx.post(f"{base}/orders/{carried}/assign", headers=AUTH, json=pin).raise_for_status()
        httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
        stop = {"type": "stop", "seq": 2, "order_id": carried, "event": "picked_up"}
        await drivers["van-1"].send(json.dumps(stop))
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/orders/{carried}", headers=AUTH).json()["status"] != "picked_up":
            assert time.monotonic() < deadline, "the pickup was not recorded"
            await asyncio.sleep(0.1)
        now = dt.datetime.now(dt.UTC)
        ended = {"start": clock_text(now - dt.timedelta(hours=3)),
                 "end": clock_text(now - dt.timedelta(hours=1))}  # fmt: skip
        httpx.patch(f"{base}/vehicles/van-1", headers=AUTH, json={"shift": ended})
        others = [
            httpx.post(f"{base}/orders", headers=AUTH, json=order(*p)).json()["order"]["id"]
            for p in DROPS[1:]
        ]
        planned = httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()
        assert planned["vehicles"] == 2  # van-1 too: it has a parcel to deliver
        route = httpx.get(f"{base}/dispatch/routes/van-1", headers=AUTH).json()
        assert [(s["order_id"], s["kind"]) for s in route["stops"]] == [(carried, "dropoff")]
        other = httpx.get(f"{base}/dispatch/routes/van-2", headers=AUTH).json()
        assert {s["order_id"] for s in other["stops"]} == set(others)
    finally:
        for driver in drivers.values():
            await driver.close()
