"""The planning service end to end: real server, Redis, Andorra's roads and driver sockets."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import redis
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from geo.distance import haversine_m
from geo.polyline import decode
from geo.roads import Roads
from server import keys
from server.dispatching.etas import EtaRefresher
from server.orders.crypto import Sealer, load_or_create_key
from server.orders.store import OrderStore
from tests.conftest import AUTH, STAFF_TOKEN, scaled
from tests.tracking.test_driver_socket import send, ws_url

VANS = {"van-1": (42.5078, 1.5211), "van-2": (42.5063, 1.5215)}  # Andorra la Vella
DROPS = [(42.5105, 1.5350), (42.5440, 1.5137), (42.4990, 1.5080)]


def order(lat: float, lon: float) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "dropoff": {"lat": lat, "lon": lon},
        "window": {"start": now.isoformat(), "end": (now + dt.timedelta(hours=3)).isoformat()},
        "size": {"parcels": 1},
    }


def new_van(base: str, van: str = "van-1") -> str:
    """Register a van of 10 parcels; its driver token."""
    answer = httpx.post(
        f"{base}/vehicles", headers=AUTH, json={"id": van, "capacity": {"parcels": 10}}
    )
    return str(answer.json()["token"])


def order_store(redis_url: str, tmp_path: Path) -> tuple[aioredis.Redis, OrderStore]:
    """A Redis client of the test's server and the order store on it (with the same key)."""
    client = aioredis.Redis.from_url(redis_url)
    return client, OrderStore(client, Sealer(load_or_create_key(tmp_path)))


async def next_route(driver: ClientConnection) -> dict[str, Any]:
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        frame = json.loads(await asyncio.wait_for(driver.recv(), scaled(10)))
        if frame["type"] == "route":
            return frame
    raise AssertionError("no route was pushed")


async def test_orders_are_planned_and_routes_pushed_to_drivers(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    base = server_factory(roads=andorra)
    tokens = {van: new_van(base, van) for van in VANS}
    drivers = {
        van: await connect(ws_url(base, f"/ws/driver?token={t}")) for van, t in tokens.items()
    }
    try:
        now = int(time.time() * 1000)
        for van, (lat, lon) in VANS.items():
            await send(
                drivers[van],
                {"type": "pings", "seq": 1, "pings": [{"lat": lat, "lon": lon, "ts": now}]},
            )
        order_ids = [
            httpx.post(f"{base}/orders", headers=AUTH, json=order(*p)).json()["order"]["id"]
            for p in DROPS
        ]
        summary = httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()
        assert summary["vehicles"] == 2
        assert summary["assigned"] == 3
        assert summary["dropped"] == {}
        # Rounds woken by the orders may have pushed earlier versions: each driver's newest
        # pushed route is the one stored.
        pushed = []
        for van, driver in drivers.items():
            current = httpx.get(f"{base}/dispatch/routes/{van}", headers=AUTH).json()
            route = await next_route(driver)
            while route["version"] < current["version"]:
                route = await next_route(driver)
            assert route["stops"] == current["stops"] or route["version"] == current["version"]
            pushed.append(route)
        planned = {s["order_id"] for r in pushed for s in r["stops"]}
        assert planned == set(order_ids)
        assert all(r["version"] >= 1 for r in pushed)
        for r in pushed:
            etas = [s["eta"] for s in r["stops"]]
            assert etas == sorted(etas)
            assert all(eta >= now for eta in etas), "no ETA in the past"
        for order_id in order_ids:
            got = httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()
            assert got["status"] == "processed"
            assert got["vehicle_id"] in VANS
        # A van taken into maintenance is never in a plan again.
        changed = httpx.patch(
            f"{base}/vehicles/van-1", headers=AUTH, json={"status": "maintenance"}
        )
        assert changed.status_code == 200
        again = httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()
        assert again["vehicles"] == 1
        route = httpx.get(f"{base}/dispatch/routes/van-2", headers=AUTH).json()
        assert {s["order_id"] for s in route["stops"]} == set(order_ids)
        # ... and its driver is told: no stop left (van-2's driver goes to them now).
        emptied = httpx.get(f"{base}/dispatch/routes/van-1", headers=AUTH).json()
        assert emptied["stops"] == []
        last = await next_route(drivers["van-1"])
        while last["version"] < emptied["version"]:
            last = await next_route(drivers["van-1"])
        assert last["stops"] == []
    finally:
        for driver in drivers.values():
            await driver.close()


def test_an_order_far_from_any_road_is_refused_with_422(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    base = server_factory(roads=andorra)
    answer = httpx.post(f"{base}/orders", headers=AUTH, json=order(43.5, 1.52))  # 110 km north
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "outside_service_area"
    assert error["details"] == {"field": "dropoff"}
    assert "outside the service area" in error["message"]
    assert httpx.post(f"{base}/orders", headers=AUTH, json=order(*DROPS[0])).status_code == 201


async def reply_to(driver: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    """Send a message and return the answer with its seq (route pushes may come first)."""
    await driver.send(json.dumps(message))
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        frame = json.loads(await asyncio.wait_for(driver.recv(), scaled(10)))
        if frame.get("seq") == message["seq"] and frame["type"] != "route":
            return frame
    raise AssertionError("no answer")


async def test_drivers_report_stops_and_failures_go_back_to_the_planner(
    server_factory: Callable[..., str], andorra: Roads, redis_url: str
) -> None:
    base = server_factory(roads=andorra)
    token = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": "solo"}).json()["token"]
    other = httpx.post(
        f"{base}/vehicles", headers=AUTH, json={"id": "idle", "status": "maintenance"}
    )
    assert other.status_code == 201
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        lat, lon = VANS["van-1"]
        ping = {"lat": lat, "lon": lon, "ts": int(time.time() * 1000)}
        await send(driver, {"type": "pings", "seq": 1, "pings": [ping]})
        done, missed = (
            httpx.post(f"{base}/orders", headers=AUTH, json=order(*p)).json()["order"]["id"]
            for p in DROPS[:2]
        )
        assert httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()["assigned"] == 2
        delivered = await reply_to(
            driver,
            {"type": "stop", "seq": 10, "order_id": done, "event": "delivered", "proof": "photo-1"},
        )
        assert delivered == {"type": "stop_ack", "seq": 10, "order_id": done, "status": "delivered"}
        audit = httpx.get(f"{base}/orders/{done}/audit", headers=AUTH).json()
        assert [a["status"] for a in audit] == [
            "received", "processed", "departed", "picked_up", "arrived", "delivered"
        ]  # fmt: skip
        assert audit[-1]["reason"] == "proof photo-1"
        failed = await reply_to(
            driver,
            {
                "type": "stop",
                "seq": 11,
                "order_id": missed,
                "event": "failed",
                "reason": "customer_absent",
                "proof": "photo-2",  # of the closed door
            },
        )
        assert failed["status"] == "received", "back to the planner for another attempt"
        audit = httpx.get(f"{base}/orders/{missed}/audit", headers=AUTH).json()
        failure = next(a for a in audit if a["status"] == "failed")
        assert failure["reason"] == "customer_absent (proof photo-2)", "the reason is kept"
        no_reason = await reply_to(
            driver, {"type": "stop", "seq": 12, "order_id": missed, "event": "failed"}
        )
        assert no_reason["code"] == "invalid_message"
        unknown = await reply_to(
            driver, {"type": "stop", "seq": 13, "order_id": "o-none", "event": "arrived"}
        )
        assert unknown["code"] == "unknown_order"
        again = await reply_to(
            driver,
            {"type": "stop", "seq": 14, "order_id": done, "event": "failed", "reason": "other"},
        )
        assert again["code"] == "invalid_transition", "a delivered order cannot fail"

    client = redis.Redis.from_url(redis_url)
    assert client.hgetall(keys.FAILURES) == {b"customer_absent": b"1"}, (
        "a rejected report counts nothing"
    )
    client.close()


async def test_etas_follow_the_clock_and_flag_late_risk(
    server_factory: Callable[..., str], andorra: Roads, redis_url: str, tmp_path: Path
) -> None:
    base = server_factory(roads=andorra)
    token = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": "eta-van"}).json()["token"]
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        lat, lon = VANS["van-1"]
        ping = {"lat": lat, "lon": lon, "ts": int(time.time() * 1000)}
        await send(driver, {"type": "pings", "seq": 1, "pings": [ping]})
    order_id = httpx.post(f"{base}/orders", headers=AUTH, json=order(*DROPS[1])).json()["order"][
        "id"
    ]
    assert httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()["assigned"] == 1
    planned = httpx.get(f"{base}/dispatch/routes/eta-van", headers=AUTH).json()
    client, orders = order_store(redis_url, tmp_path)
    later = time.time() + 3600  # an hour on, the van has not moved
    refresher = EtaRefresher(client, orders, andorra, clock=lambda: later)
    [event] = await refresher.refresh()
    [stop] = event["stops"]
    assert stop["order_id"] == order_id
    assert stop["eta"] >= int(later * 1000), "never an ETA in the past"
    assert stop["eta"] > planned["stops"][0]["eta"] + 3_000_000
    assert event["version"] == planned["version"], "the stops did not change"
    assert event["late_risk"] == event["slipped"] == []
    async with connect(ws_url(base, f"/ws/console?token={STAFF_TOKEN}")) as console:
        much_later = EtaRefresher(client, orders, andorra, clock=lambda: later + 3 * 3600)
        [late] = await much_later.refresh()
        assert late["late_risk"] == [order_id], "past the window's end"
        assert late["slipped"] == [order_id], "it has just slipped past it"
        deadline = time.monotonic() + scaled(10)
        while time.monotonic() < deadline:  # the slip woke the planner
            frame = json.loads(await asyncio.wait_for(console.recv(), scaled(10)))
            plan = frame.get("event", {}) if frame["type"] == "event" else {}
            if plan.get("type") == "plan" and plan["kind"] == "event":
                break
        else:
            raise AssertionError("no planning round followed the slip")
    assert (
        await EtaRefresher(client, orders, andorra, clock=lambda: later + 3 * 3600).refresh() == []
    )
    await client.aclose()


async def test_a_van_at_its_next_drop_off_has_arrived_without_the_driver_saying_so(
    server_factory: Callable[..., str], andorra: Roads, redis_url: str, tmp_path: Path
) -> None:
    base = server_factory(roads=andorra)
    token = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": "door-van"}).json()["token"]
    client, orders = order_store(redis_url, tmp_path)
    refresher = EtaRefresher(client, orders, andorra)  # the radius: 30 m by default
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        start = int(time.time() * 1000) - 600_000

        async def ping_at(seq: int, lat: float, lon: float, ts: int) -> None:
            answer = await reply_to(
                driver, {"type": "pings", "seq": seq, "pings": [{"lat": lat, "lon": lon, "ts": ts}]}
            )
            assert answer["type"] == "ack", answer

        await ping_at(1, *VANS["van-1"], start)
        order_id = httpx.post(f"{base}/orders", headers=AUTH, json=order(*DROPS[0])).json()[
            "order"
        ]["id"]
        assert httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()["assigned"] == 1
        [stop] = httpx.get(f"{base}/dispatch/routes/door-van", headers=AUTH).json()["stops"]
        await ping_at(2, stop["lat"] + 0.0009, stop["lon"], start + 300_000)  # 100 m short
        await refresher.refresh()
        assert (await orders.get(order_id)).status == "processed"
        await ping_at(3, stop["lat"] + 0.0001, stop["lon"], start + 400_000)  # 11 m: at the door
        await refresher.refresh()
        assert (await orders.get(order_id)).status == "arrived"
        audit = httpx.get(f"{base}/orders/{order_id}/audit", headers=AUTH).json()
        assert audit[-1]["status"] == "arrived"
        assert audit[-1]["by"] == "door-van"
        assert audit[-1]["reason"].startswith("within 1")
        own = await reply_to(
            driver, {"type": "stop", "seq": 4, "order_id": order_id, "event": "arrived"}
        )
        assert own == {"type": "stop_ack", "seq": 4, "order_id": order_id, "status": "arrived"}
        delivered = await reply_to(
            driver, {"type": "stop", "seq": 5, "order_id": order_id, "event": "delivered"}
        )
        assert delivered["status"] == "delivered"
    # Its last stop done, the van's route lists nothing: it is not busy any more.
    [emptied] = await refresher.refresh()
    assert (emptied["type"], emptied["stops"]) == ("eta", [])
    assert httpx.get(f"{base}/dispatch/routes/door-van", headers=AUTH).json()["stops"] == []
    assert httpx.get(f"{base}/web/kpis", headers=AUTH).json()["utilisation"] == 0
    assert await refresher.refresh() == []  # said once
    await client.aclose()


async def test_a_van_driving_to_its_next_stop_has_departed_without_the_driver_saying_so(
    server_factory: Callable[..., str], andorra: Roads, redis_url: str, tmp_path: Path
) -> None:
    base = server_factory(roads=andorra)
    token = new_van(base)
    client, orders = order_store(redis_url, tmp_path)
    refresher = EtaRefresher(client, orders, andorra)
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        start = int(time.time() * 1000) - 600_000
        lat, lon = VANS["van-1"]

        async def ping_at(seq: int, lat: float, lon: float, ts: int) -> None:
            answer = await reply_to(
                driver, {"type": "pings", "seq": seq, "pings": [{"lat": lat, "lon": lon, "ts": ts}]}
            )
            assert answer["type"] == "ack", answer

        await ping_at(1, lat, lon, start)
        body = {**order(*DROPS[0]), "pickup": {"lat": DROPS[2][0], "lon": DROPS[2][1]}}
        order_id = httpx.post(f"{base}/orders", headers=AUTH, json=body).json()["order"]["id"]
        assert httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()["assigned"] == 1
        await refresher.refresh()
        await ping_at(2, lat + 0.0002, lon, start + 60_000)  # 22 m: GPS noise, still parked
        await refresher.refresh()
        assert (await orders.get(order_id)).status == "processed"
        await ping_at(3, lat - 0.0015, lon - 0.0010, start + 90_000)  # 200 m on, to the shop
        await refresher.refresh()
        assert (await orders.get(order_id)).status == "departed"
    audit = httpx.get(f"{base}/orders/{order_id}/audit", headers=AUTH).json()
    assert (audit[-1]["status"], audit[-1]["by"], audit[-1]["reason"]) == (
        "departed", "van-1", "on its way to the pickup"
    )  # fmt: skip
    await client.aclose()


async def test_a_re_plan_never_turns_a_driver_away_from_the_stop_it_drives_to(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    base = server_factory(roads=andorra)
    token = new_van(base)
    lat, lon = VANS["van-1"]
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        now = int(time.time() * 1000)
        await send(
            driver, {"type": "pings", "seq": 1, "pings": [{"lat": lat, "lon": lon, "ts": now}]}
        )
        far = httpx.post(f"{base}/orders", headers=AUTH, json=order(*DROPS[1])).json()["order"]
        httpx.post(f"{base}/dispatch/replan", headers=AUTH)
        first = await next_route(driver)
        assert [s["order_id"] for s in first["stops"]] == [far["id"]]
        # A new order right where the van is: without the lock it would go first.
        near = httpx.post(f"{base}/orders", headers=AUTH, json=order(lat, lon)).json()["order"]
        httpx.post(f"{base}/dispatch/replan", headers=AUTH)
        route = httpx.get(f"{base}/dispatch/routes/van-1", headers=AUTH).json()
        assert [s["order_id"] for s in route["stops"]] == [far["id"], near["id"]]
        assert route["version"] == first["version"] + 1


async def test_a_re_plan_that_is_not_better_by_the_margin_keeps_the_routes(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    base = server_factory(roads=andorra, replan_margin=0.5)
    token = new_van(base)
    lat, lon = VANS["van-1"]
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        now = int(time.time() * 1000)
        pings = [{"lat": lat, "lon": lon, "ts": now}]
        await send(driver, {"type": "pings", "seq": 1, "pings": pings})
        for p in DROPS[:2]:
            httpx.post(f"{base}/orders", headers=AUTH, json=order(*p))
        first = httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()
        assert first["assigned"] == 2  # by this round or an earlier one the orders woke
        planned = httpx.get(f"{base}/dispatch/routes/van-1", headers=AUTH).json()
        assert len(planned["stops"]) == 2
        version = planned["version"]
        # Nothing new: the same plan again is not 50% cheaper, so nothing is rewritten.
        again = httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()
        assert again["kept_previous"]
        assert again["changed_routes"] == []
        # A new order is always placed, whatever the margin.
        httpx.post(f"{base}/orders", headers=AUTH, json=order(*DROPS[2]))
        third = httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()
        assert not third["kept_previous"]
        assert third["assigned"] == 3
        route = httpx.get(f"{base}/dispatch/routes/van-1", headers=AUTH).json()
        assert route["version"] == version + 1
        assert len(route["stops"]) == 3


async def test_a_re_plan_keeps_the_eta_promised_at_confirmation(
    server_factory: Callable[..., str], andorra: Roads, redis_url: str
) -> None:
    # Only the next stop locked; promises kept to within two minutes.
    base = server_factory(roads=andorra, plan_freeze_s=0, promise_slack_s=120)
    token = new_van(base)
    lat, lon = VANS["van-1"]
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        pings = [{"lat": lat, "lon": lon, "ts": int(time.time() * 1000)}]
        await send(driver, {"type": "pings", "seq": 1, "pings": pings})
        for p in DROPS:
            httpx.post(f"{base}/orders", headers=AUTH, json=order(*p))
        assert httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()["assigned"] == 3
        stops = httpx.get(f"{base}/dispatch/routes/van-1", headers=AUTH).json()["stops"]
        first, second, last = (s["order_id"] for s in stops)
        # Say the last one had been promised for a minute after the first stop, and the second
        # had been promised nothing (the windows, three hours long, leave the planner free):
        # the re-plan brings the last one forward, late as it is for its promise.
        client = redis.Redis.from_url(redis_url)
        client.hdel(keys.order(second), "promised_eta")
        client.hset(keys.order(last), "promised_eta", stops[0]["eta"] + 60_000)
        client.close()
        assert httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()["changed_routes"]
        again = httpx.get(f"{base}/dispatch/routes/van-1", headers=AUTH).json()["stops"]
        assert [s["order_id"] for s in again] == [first, last, second]
        assert all(s["late_s"] == 0 for s in again), "late only against the window"


async def test_idle_rounds_improve_the_plan_and_give_way_to_a_new_event(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    # A fresh solve may take two minutes here: only the interrupt can end it in time.
    base = server_factory(roads=andorra, solver_time_limit_s=0.2, solver_fresh_limit_s=120.0)
    token = new_van(base)
    lat, lon = VANS["van-1"]
    rounds: list[tuple[float, str]] = []

    async def until(kind: str) -> float:
        deadline = time.monotonic() + scaled(20)
        while time.monotonic() < deadline:
            frame = json.loads(await asyncio.wait_for(console.recv(), scaled(20)))
            event = frame.get("event", {}) if frame["type"] == "event" else {}
            if event.get("type") == "plan":
                rounds.append((time.monotonic(), event["kind"]))
                if event["kind"] == kind:
                    return rounds[-1][0]
        raise AssertionError(f"no {kind} round; rounds: {rounds}")

    async with (
        connect(ws_url(base, f"/ws/console?token={STAFF_TOKEN}")) as console,
        connect(ws_url(base, f"/ws/driver?token={token}")) as driver,
    ):
        now = int(time.time() * 1000)
        await send(
            driver, {"type": "pings", "seq": 1, "pings": [{"lat": lat, "lon": lon, "ts": now}]}
        )
        for p in DROPS[:2]:
            httpx.post(f"{base}/orders", headers=AUTH, json=order(*p))
        await until("improve")  # 2 s without a trigger: a warm improvement round
        await asyncio.sleep(3.5)  # 2 s on, the fresh solve has started (and would run 120 s)
        posted = time.monotonic()
        httpx.post(f"{base}/orders", headers=AUTH, json=order(lat, lon))
        planned = await until("event")
    kinds = [kind for _, kind in rounds]
    assert kinds.index("fresh") == len(kinds) - 2, kinds  # interrupted, then the event's round
    assert planned - posted < scaled(5), "the event waited for the idle round"
    route = httpx.get(f"{base}/dispatch/routes/van-1", headers=AUTH).json()
    assert len(route["stops"]) == 3


# About 170 m apart on the main road, south then back north: the road model's way between each
# two is about as long as the straight line (from van-1's spot it is a one-way detour).
FIXES = [(42.5063, 1.5215), (42.5048, 1.5219), (42.5064, 1.5218)]


def fixes_along_the_main_road(driver: ClientConnection) -> Callable[[int], Awaitable[None]]:
    """``at(k)``: the driver pings from ``FIXES[k]``, 30 s after ``FIXES[k - 1]`` (acked)."""
    start = int(time.time() * 1000) - 60_000

    async def at(k: int) -> None:
        lat, lon = FIXES[k]
        fix = {"lat": lat, "lon": lon, "ts": start + 30_000 * k}
        ack = await reply_to(driver, {"type": "pings", "seq": 1 + k, "pings": [fix]})
        assert ack["type"] == "ack"

    return at


def pacer(
    server_factory: Callable[..., str], andorra: Roads, redis_url: str, tmp_path: Path
) -> tuple[str, str, aioredis.Redis, EtaRefresher]:
    """A server with one vehicle "pacer": its URL, the driver token, a Redis client and an ETA
    refresher of its own on the server's Redis (the tests drive its passes)."""
    base = server_factory(roads=andorra)
    token = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": "pacer"}).json()["token"]
    client, orders = order_store(redis_url, tmp_path)
    return base, token, client, EtaRefresher(client, orders, andorra)


async def test_the_learned_pace_leaves_out_time_spent_at_stops(
    server_factory: Callable[..., str], andorra: Roads, redis_url: str, tmp_path: Path
) -> None:
    base, token, client, refresher = pacer(server_factory, andorra, redis_url, tmp_path)
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        at = fixes_along_the_main_road(driver)

        await at(0)
        first, _ = (
            httpx.post(f"{base}/orders", headers=AUTH, json=order(*p)).json()["order"]["id"]
            for p in DROPS[:2]
        )
        assert httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()["assigned"] == 2
        await refresher.refresh()
        await at(1)
        await refresher.refresh()
        assert len(refresher.pace) == 1, "it drove: a sample"
        await reply_to(driver, {"type": "stop", "seq": 10, "order_id": first, "event": "delivered"})
        await at(2)
        await refresher.refresh()
        assert len(refresher.pace) == 1, "it stopped to deliver in between: no sample"
    await client.aclose()


async def test_the_learned_pace_leaves_out_idle_vans_and_vans_standing_at_a_pickup(
    server_factory: Callable[..., str], andorra: Roads, redis_url: str, tmp_path: Path
) -> None:
    base, token, client, refresher = pacer(server_factory, andorra, redis_url, tmp_path)
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        at = fixes_along_the_main_road(driver)

        await at(0)
        await refresher.refresh()
        await at(1)
        await refresher.refresh()
        assert len(refresher.pace) == 0, "an idle van (no stop ahead) teaches nothing"
        body = {**order(*DROPS[0]), "pickup": {"lat": FIXES[2][0], "lon": FIXES[2][1]}}
        assert httpx.post(f"{base}/orders", headers=AUTH, json=body).is_success
        assert httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()["assigned"] == 1
        await refresher.refresh()
        await at(2)  # it reached its pickup, and its service there has begun
        await refresher.refresh()
        assert len(refresher.pace) == 0, "the stretch ends standing at its next stop"
    await client.aclose()


async def test_routes_carry_their_road_path_and_leaving_it_wakes_the_planner(
    server_factory: Callable[..., str], andorra: Roads, redis_url: str, tmp_path: Path
) -> None:
    base = server_factory(roads=andorra)
    token = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": "rover"}).json()["token"]
    client, orders = order_store(redis_url, tmp_path)
    refresher = EtaRefresher(client, orders, andorra)
    start = int(time.time() * 1000) - 150_000
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        lat, lon = VANS["van-1"]
        fix = {"lat": lat, "lon": lon, "ts": start}
        await reply_to(driver, {"type": "pings", "seq": 1, "pings": [fix]})
        httpx.post(f"{base}/orders", headers=AUTH, json=order(*DROPS[0]))
        httpx.post(f"{base}/dispatch/replan", headers=AUTH)
        first = await next_route(driver)
        path = decode(first["geometry"])
        assert andorra.distance_to_path_m(lat, lon, path) < 50, "it starts where the van is"
        drop = first["stops"][0]
        assert andorra.distance_to_path_m(drop["lat"], drop["lon"], path) < 1
        await refresher.refresh()  # it knows the van's route now
        # The van turns up 1.5 km away, far from that path.
        far = {"lat": DROPS[2][0], "lon": DROPS[2][1], "ts": start + 120_000}
        await reply_to(driver, {"type": "pings", "seq": 2, "pings": [far]})
        left = [e for e in await refresher.refresh() if e["type"] == "off_route"]
        assert len(left) == 1
        assert left[0]["distance_m"] > 1000
        again = await next_route(driver)  # the planner re-drew it from where the van is
        while again["geometry"] == first["geometry"]:  # (its ETAs refreshed first: news too)
            assert again["version"] == first["version"]
            again = await next_route(driver)
        assert again["version"] == first["version"], "same stops, same version"
        assert andorra.distance_to_path_m(*DROPS[2], decode(again["geometry"])) < 50
        assert [e for e in await refresher.refresh() if e["type"] == "off_route"] == []
    await client.aclose()


async def test_stops_due_within_the_frozen_horizon_keep_their_van_and_order(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    # Every stop is due within the hour here: once promised, none moves to the other van or
    # behind a new order, even one where a van's first stop is.
    base = server_factory(roads=andorra, plan_freeze_s=3600)
    drivers = {}
    for van in VANS:
        token = new_van(base, van)
        drivers[van] = await connect(ws_url(base, f"/ws/driver?token={token}"))
    try:
        now = int(time.time() * 1000)
        for van, (lat, lon) in VANS.items():
            pings = [{"lat": lat, "lon": lon, "ts": now}]
            await send(drivers[van], {"type": "pings", "seq": 1, "pings": pings})
        for p in DROPS:
            httpx.post(f"{base}/orders", headers=AUTH, json=order(*p))
        assert httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()["assigned"] == 3
        routes = {
            van: httpx.get(f"{base}/dispatch/routes/{van}", headers=AUTH).json()["stops"]
            for van in VANS
        }
        promised = {van: [s["order_id"] for s in stops] for van, stops in routes.items()}
        assert max(len(ids) for ids in promised.values()) >= 2
        # New orders where each van's first stop is: cheapest right after it, were it free.
        new = [
            httpx.post(f"{base}/orders", headers=AUTH, json=order(s[0]["lat"], s[0]["lon"]))
            .json()["order"]["id"]
            for s in routes.values() if s
        ]  # fmt: skip
        again = httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()
        assert again["assigned"] == 3 + len(new)
        for van, before in promised.items():
            route = httpx.get(f"{base}/dispatch/routes/{van}", headers=AUTH).json()
            stops = [s["order_id"] for s in route["stops"]]
            assert stops[: len(before)] == before
            assert set(stops[len(before) :]) <= set(new)
    finally:
        for driver in drivers.values():
            await driver.close()


async def test_after_a_failed_delivery_the_new_attempt_starts_from_the_van_that_has_the_goods(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    base = server_factory(roads=andorra)
    token = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": "solo"}).json()["token"]
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        lat, lon = VANS["van-1"]
        ping = {"lat": lat, "lon": lon, "ts": int(time.time() * 1000)}
        await send(driver, {"type": "pings", "seq": 1, "pings": [ping]})
        body = {**order(*DROPS[0]), "pickup": {"lat": DROPS[1][0], "lon": DROPS[1][1]}}
        missed = httpx.post(f"{base}/orders", headers=AUTH, json=body).json()["order"]["id"]
        assert httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()["assigned"] == 1
        route = httpx.get(f"{base}/dispatch/routes/solo", headers=AUTH).json()
        assert [s["kind"] for s in route["stops"]] == ["pickup", "dropoff"]
        for seq, event in ((10, "picked_up"), (11, "arrived")):
            frame = {"type": "stop", "seq": seq, "order_id": missed, "event": event}
            assert (await reply_to(driver, frame))["status"] == event
        frame = {"type": "stop", "seq": 12, "order_id": missed, "event": "failed",
                 "reason": "customer_absent"}  # fmt: skip
        assert (await reply_to(driver, frame))["status"] == "received"
        assert httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()["assigned"] == 1
        route = httpx.get(f"{base}/dispatch/routes/solo", headers=AUTH).json()
        # The parcel is in the van: a drop-off from it, no second trip to the shop.
        assert [(s["order_id"], s["kind"]) for s in route["stops"]] == [(missed, "dropoff")]


async def test_the_whole_loop_over_real_sockets_orders_route_pings_etas_traffic_new_version(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    """Orders → plan → the driver's route → pings move the van → its ETAs update (the server's
    own ETA pass) → a traffic event on its path → a re-plan pushes a new route version."""
    base = server_factory(roads=andorra, eta_refresh_s=0.5)
    token = new_van(base)
    start = int(time.time() * 1000) - 60_000  # a minute ago, at the depot
    async with (
        connect(ws_url(base, f"/ws/driver?token={token}")) as driver,
        connect(ws_url(base, f"/ws/console?token={STAFF_TOKEN}")) as console,
    ):
        at_depot = {"lat": VANS["van-1"][0], "lon": VANS["van-1"][1], "ts": start}
        assert (await reply_to(driver, {"type": "pings", "seq": 1, "pings": [at_depot]}))[
            "type"
        ] == "ack"
        for place in (DROPS[0], DROPS[2]):
            assert httpx.post(f"{base}/orders", headers=AUTH, json=order(*place)).status_code == 201
        assert httpx.post(f"{base}/dispatch/replan", headers=AUTH).json()["assigned"] == 2
        route = await next_route(driver)
        current = httpx.get(f"{base}/dispatch/routes/van-1", headers=AUTH).json()
        while route["version"] < current["version"]:  # a round woken by the orders came first
            route = await next_route(driver)
        assert len(route["stops"]) == 2
        # The van drives 600 m along its road path towards the first stop, in a minute.
        path = decode(route["geometry"])
        walked, i = 0.0, 1
        while walked < 600 and i < len(path) - 1:
            walked += haversine_m(*path[i - 1], *path[i])
            i += 1
        on_the_way = {"lat": path[i][0], "lon": path[i][1], "ts": start + 60_000}
        assert (await reply_to(driver, {"type": "pings", "seq": 2, "pings": [on_the_way]}))[
            "type"
        ] == "ack"
        first = route["stops"][0]
        deadline = time.monotonic() + scaled(10)
        while True:  # the server's ETA pass: the first stop is now sooner than first planned
            assert time.monotonic() < deadline, "no ETA update after the van moved"
            frame = json.loads(await asyncio.wait_for(console.recv(), scaled(10)))
            event = frame.get("event", {}) if frame["type"] == "event" else {}
            if event.get("type") == "eta" and event["vehicle_id"] == "van-1":
                eta = {s["order_id"]: s["eta"] for s in event["stops"]}[first["order_id"]]
                if eta < first["eta"] - 30_000:
                    break
        # The driver hears of it too: the same route (version, road path), its ETAs refreshed.
        refreshed = await next_route(driver)
        while refreshed["stops"][0]["eta"] >= first["eta"] - 30_000:
            refreshed = await next_route(driver)
        assert (refreshed["version"], refreshed["planned_at"]) == (
            route["version"],
            route["planned_at"],
        )
        assert refreshed["geometry"] == route["geometry"]
        assert [s["order_id"] for s in refreshed["stops"]] == [
            s["order_id"] for s in route["stops"]
        ]
        # A closure around the second stop: the planner re-plans, the driver gets a new version.
        lat, lon = route["stops"][1]["lat"], route["stops"][1]["lon"]
        d = 0.0025
        closure = {
            "polygon": [
                [lon - d, lat - d],
                [lon + d, lat - d],
                [lon + d, lat + d],
                [lon - d, lat + d],
            ],
            "closed": True,
            "label": "street works",
        }
        assert httpx.post(f"{base}/traffic-events", headers=AUTH, json=closure).status_code == 201
        pushed = await next_route(driver)
        while pushed["version"] <= route["version"]:
            pushed = await next_route(driver)
        assert pushed["version"] > route["version"]
        assert pushed["stops"] != route["stops"]
