"""A failed delivery whose parcel goes back to the sender: the van that has it is routed back to
the shop (or its depot), the driver hands it back, the order ends ``returned`` — over a real
server, Redis and driver socket on Andorra's roads."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from geo.distance import haversine_m
from geo.roads import Roads
from server.dispatching.etas import EtaRefresher
from server.settings import SettingsError, load_settings
from tests.conftest import AUTH
from tests.dispatch.test_depots import DEPOT
from tests.dispatch.test_planning_service import (
    DROPS,
    VANS,
    new_van,
    order,
    order_store,
    reply_to,
)
from tests.orders.test_proofs import png, upload
from tests.tracking.test_driver_socket import send, ws_url

SHOP = DROPS[1]


def route_of(base: str) -> list[tuple[str, str, float, float]]:
    stops = httpx.get(f"{base}/dispatch/routes/van-1", headers=AUTH).json()["stops"]
    return [(s["order_id"], s["kind"], s["lat"], s["lon"]) for s in stops]


def replan(base: str) -> None:
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()


async def planned(base: str, driver: ClientConnection, body: dict[str, Any]) -> dict[str, Any]:
    """The van at its start, an order: planned; the answer to its creation."""
    lat, lon = VANS["van-1"]
    await send(driver, {"type": "pings", "seq": 1, "pings": [
        {"lat": lat, "lon": lon, "ts": int(time.time() * 1000)}]})  # fmt: skip
    created: dict[str, Any] = httpx.post(f"{base}/orders", headers=AUTH, json=body).json()
    replan(base)
    return created


async def fail_at_the_door(driver: ClientConnection, order_id: str, reason: str, seq: int) -> str:
    """Report arrival and a failed attempt; the order's status afterwards."""
    frame = {"type": "stop", "seq": seq, "order_id": order_id, "event": "arrived"}
    await reply_to(driver, frame)
    frame = {"type": "stop", "seq": seq + 1, "order_id": order_id, "event": "failed",
             "reason": reason}  # fmt: skip
    answer = await reply_to(driver, frame)
    assert answer["type"] == "stop_ack", answer
    return str(answer["status"])


async def test_a_refused_parcel_goes_back_to_the_shop_and_ends_returned(
    server_factory: Callable[..., str], andorra: Roads, redis_url: str, tmp_path: Path
) -> None:
    base = server_factory(roads=andorra)
    token = new_van(base)
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        body = {**order(*DROPS[0]), "pickup": {"lat": SHOP[0], "lon": SHOP[1]}}
        created = await planned(base, driver, body)
        order_id, link = created["order"]["id"], created["tracking_token"]
        await reply_to(driver, {"type": "stop", "seq": 2, "order_id": order_id,
                                "event": "picked_up"})  # fmt: skip
        assert await fail_at_the_door(driver, order_id, "refused", 3) == "returning"
        shown = httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()
        expected = ("returning", 1, "van-1")
        assert (shown["status"], shown["failures"], shown["vehicle_id"]) == expected

        # Not a second attempt at the door: one stop, back at the shop.
        replan(base)
        [(stop_order, kind, stop_lat, stop_lon)] = route_of(base)
        assert (stop_order, kind) == (order_id, "return")
        assert haversine_m(stop_lat, stop_lon, *SHOP) < 100, "the stop is at the shop"

        # The customer sees the parcel going back: no ETA, no van.
        view = httpx.get(f"{base}/track/{link}").json()
        expected_view = ("returning", None, None, False)
        assert (view["status"], view["eta"], view["vehicle"], view["final"]) == expected_view

        # The shop signs for it; the driver reports the hand-back with the signature.
        signed = upload(base, order_id, token, png())
        assert signed.status_code == 201, signed.text
        frame = {"type": "stop", "seq": 5, "order_id": order_id, "event": "returned",
                 "proof": signed.json()["id"]}  # fmt: skip
        handed = await reply_to(driver, frame)
        assert handed == {"type": "stop_ack", "seq": 5, "order_id": order_id, "status": "returned"}
        twice = await reply_to(driver, {"type": "stop", "seq": 6, "order_id": order_id,
                                        "event": "returned"})  # fmt: skip
        assert twice["code"] == "invalid_transition"

    audit = httpx.get(f"{base}/orders/{order_id}/audit", headers=AUTH).json()
    assert [a["status"] for a in audit][-3:] == ["failed", "returning", "returned"]
    assert audit[-2]["reason"] == "after refused, attempt 1"
    assert audit[-1]["reason"] == f"proof {signed.json()['id']}"
    assert httpx.get(f"{base}/track/{link}").json()["final"] is True
    # The ETA pass drops the stop done: the driver's list is empty.
    client, orders = order_store(redis_url, tmp_path)
    async with client:
        await EtaRefresher(client, orders, andorra).refresh()
    assert route_of(base) == []


async def test_the_last_attempt_allowed_sends_the_parcel_back_to_the_vans_depot(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    base = server_factory(roads=andorra, max_attempts=2)
    token = new_van(base)
    depot = {"lat": DEPOT[0], "lon": DEPOT[1]}
    httpx.patch(f"{base}/vehicles/van-1", headers=AUTH, json={"depot": depot}).raise_for_status()
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        # No pickup: loaded at the depot, and taken back there.
        order_id = (await planned(base, driver, order(*DROPS[0])))["order"]["id"]
        assert await fail_at_the_door(driver, order_id, "customer_absent", 2) == "received"
        replan(base)
        assert [(o, k) for o, k, _, _ in route_of(base)] == [(order_id, "dropoff")], (
            "a second attempt"
        )
        assert await fail_at_the_door(driver, order_id, "customer_absent", 4) == "returning"
        replan(base)
        [(stop_order, kind, stop_lat, stop_lon)] = route_of(base)
        assert (stop_order, kind) == (order_id, "return")
        assert haversine_m(stop_lat, stop_lon, *DEPOT) < 100, "the stop is at the depot"
    shown = httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()
    assert (shown["status"], shown["failures"]) == ("returning", 2)


async def test_with_nowhere_to_take_it_back_to_the_order_is_returned_at_once(
    server_factory: Callable[..., str], andorra: Roads, redis_url: str, tmp_path: Path
) -> None:
    base = server_factory(roads=andorra, failed_policy="return")
    token = new_van(base)
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        order_id = (await planned(base, driver, order(*DROPS[0])))["order"]["id"]
        # Neither a pickup place nor a depot: no trip to plan, the driver takes it home.
        assert await fail_at_the_door(driver, order_id, "customer_absent", 2) == "returned"
    audit = httpx.get(f"{base}/orders/{order_id}/audit", headers=AUTH).json()
    assert audit[-1]["reason"] == (
        "after customer_absent, attempt 1; no pickup place or depot to take it back to"
    )
    client, orders = order_store(redis_url, tmp_path)
    async with client:
        await EtaRefresher(client, orders, andorra).refresh()
    assert route_of(base) == []


def test_return_reasons_are_checked_at_start() -> None:
    settings = load_settings({"FLEET_RETURN_ON": "refused, address_wrong"})
    assert settings.return_on == frozenset({"refused", "address_wrong"})
    assert load_settings({"FLEET_RETURN_ON": ""}).return_on == frozenset()
    with pytest.raises(SettingsError, match="names rained"):
        load_settings({"FLEET_RETURN_ON": "refused,rained"})


async def test_a_dispatcher_sends_a_returning_parcel_out_again_or_records_it_back(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    base = server_factory(roads=andorra)
    token = new_van(base)
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        body = {**order(*DROPS[0]), "pickup": {"lat": SHOP[0], "lon": SHOP[1]}}
        order_id = (await planned(base, driver, body))["order"]["id"]
        assert await fail_at_the_door(driver, order_id, "refused", 2) == "returning"
        # The customer called back: another attempt, from the van that has the parcel.
        again = httpx.post(f"{base}/orders/{order_id}/retry", headers=AUTH,
                           json={"reason": "customer called: deliver after 5 pm"})  # fmt: skip
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "received"
        replan(base)
        assert [(o, k) for o, k, _, _ in route_of(base)] == [(order_id, "dropoff")]
        twice = httpx.post(f"{base}/orders/{order_id}/retry", headers=AUTH)
        assert twice.status_code == 409, "only a returning order is sent out again"
        assert await fail_at_the_door(driver, order_id, "refused", 4) == "returning"
        back = httpx.post(f"{base}/orders/{order_id}/returned", headers=AUTH,
                          json={"reason": "the shop has it"})  # fmt: skip
        assert back.status_code == 200, back.text
    audit = httpx.get(f"{base}/orders/{order_id}/audit", headers=AUTH).json()
    assert [(a["status"], a["by"]) for a in audit][-2:] == [("returning", "policy"),
                                                           ("returned", "api")]  # fmt: skip
    assert audit[-1]["reason"] == "the shop has it"
    assert httpx.post(f"{base}/orders/{order_id}/returned", headers=AUTH).status_code == 409
