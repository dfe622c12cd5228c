"""A van's depot: its routes end there, the planner counts the way back, the ETA pass keeps the
time it is back current — over a real server, Redis and driver socket on Andorra's roads."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from geo.distance import haversine_m
from geo.polyline import decode
from geo.roads import Roads
from server.dispatching.etas import EtaRefresher
from tests.conftest import AUTH
from tests.dispatch.test_planning_service import (
    DROPS,
    VANS,
    new_van,
    next_route,
    order,
    order_store,
)
from tests.tracking.test_driver_socket import send, ws_url

DEPOT = (42.5110, 1.5290)  # a car park north-east of the van's start


def road_time_s(base: str, start: tuple[float, float], end: tuple[float, float]) -> float:
    answer = httpx.get(
        f"{base}/roads/route",
        params={"from": f"{start[0]},{start[1]}", "to": f"{end[0]},{end[1]}"},
        headers=AUTH,
    )
    assert answer.status_code == 200, answer.text
    return float(answer.json()["time_s"])


async def test_a_van_with_a_depot_plans_its_way_back_and_keeps_it_current(
    server_factory: Callable[..., str], andorra: Roads, redis_url: str, tmp_path: Path
) -> None:
    base = server_factory(roads=andorra)
    token = new_van(base)
    depot = {"lat": DEPOT[0], "lon": DEPOT[1]}
    patched = httpx.patch(f"{base}/vehicles/van-1", headers=AUTH, json={"depot": depot})
    assert patched.status_code == 200, patched.text
    assert patched.json()["depot"] == depot
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        lat, lon = VANS["van-1"]
        ping = {"lat": lat, "lon": lon, "ts": int(time.time() * 1000) - 600_000}
        await send(driver, {"type": "pings", "seq": 1, "pings": [ping]})
        order_id = httpx.post(f"{base}/orders", headers=AUTH, json=order(*DROPS[0])).json()[
            "order"
        ]["id"]
        httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
        pushed = await next_route(driver)
    # An order without a pickup place is loaded at the depot first: the van is out on the road.
    load, stop = pushed["stops"]
    assert [(s["order_id"], s["kind"]) for s in (load, stop)] == [
        (order_id, "pickup"),
        (order_id, "dropoff"),
    ]
    assert haversine_m(load["lat"], load["lon"], *DEPOT) < 100
    end = pushed["end"]
    assert haversine_m(end["lat"], end["lon"], *DEPOT) < 100  # on the road by the depot
    # Back after the drop-off's service (120 s) and the drive from it to the depot.
    way_back = road_time_s(base, (stop["lat"], stop["lon"]), (end["lat"], end["lon"]))
    expected = stop["eta"] + 120_000 + way_back * 1000
    assert end["eta"] == pytest.approx(expected, abs=max(30_000, 0.2 * way_back * 1000))
    pushed_path = decode(pushed["geometry"])  # the driver's road path
    assert haversine_m(*pushed_path[-1], *DEPOT) < 100, "the path goes back to the depot"
    console_path = httpx.get(f"{base}/web/routes/van-1", headers=AUTH).json()["geometry"]
    assert haversine_m(*console_path[-1], *DEPOT) < 100, "and so does the console's"

    client, orders = order_store(redis_url, tmp_path)
    try:
        later = time.time() + 3600  # an hour on, the van has not moved
        [event] = await EtaRefresher(client, orders, andorra, clock=lambda: later).refresh()
        assert event["end"]["eta"] - end["eta"] == pytest.approx(3_600_000, abs=120_000)
        # Delivered: no stop ahead, the way back from where it is.
        await orders.transition(order_id, "departed", by="van-1")
        await orders.advance(order_id, "delivered", by="van-1")
        [back] = await EtaRefresher(client, orders, andorra, clock=lambda: later).refresh()
        assert back["stops"] == []
        from_here = road_time_s(base, VANS["van-1"], (end["lat"], end["lon"]))
        assert back["end"]["eta"] == pytest.approx(
            (later + from_here) * 1000, abs=max(30_000, 0.2 * from_here * 1000)
        )
        # Home with nothing to do: its time back is now, which is not news at every pass.
        async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
            ping = {"lat": end["lat"], "lon": end["lon"], "ts": int(time.time() * 1000)}
            await driver.send(json.dumps({"type": "pings", "seq": 2, "pings": [ping]}))
            while (frame := json.loads(await driver.recv()))["type"] != "ack":
                pass  # the route it is sent on connecting
            assert frame["accepted"] == 1, frame
        for hours in (1.5, 2.5):
            at = time.time() + hours * 3600
            refresher = EtaRefresher(client, orders, andorra, clock=lambda at=at: at)
            assert await refresher.refresh() == []
    finally:
        await client.aclose()
    # Without a depot the route ends at its last stop again.
    cleared = httpx.patch(f"{base}/vehicles/van-1", headers=AUTH, json={"depot": None})
    assert cleared.json()["depot"] is None
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()  # nothing else new
    assert httpx.get(f"{base}/dispatch/routes/van-1", headers=AUTH).json()["end"] is None
    second = httpx.post(f"{base}/orders", headers=AUTH, json=order(*DROPS[1]))
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    route = httpx.get(f"{base}/dispatch/routes/van-1", headers=AUTH).json()
    # (and with no depot anywhere to load at, an order without a pickup leaves with the van)
    assert [(s["order_id"], s["kind"]) for s in route["stops"]] == [
        (second.json()["order"]["id"], "dropoff")
    ]
    assert route["end"] is None


@pytest.mark.parametrize(
    "depot", [{"lat": 95, "lon": 1.5}, {"lat": 42.5}, {"lat": 42.5, "lon": 1.5, "x": 1}]
)
def test_a_depot_that_is_not_a_place_is_refused(live_server: str, depot: dict[str, float]) -> None:
    answer = httpx.post(f"{live_server}/vehicles", headers=AUTH, json={"id": "v", "depot": depot})
    assert answer.status_code == 400, answer.text
    assert "depot" in answer.text
