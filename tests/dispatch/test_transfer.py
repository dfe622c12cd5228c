"""A van breaks down with a parcel on board: another van is sent to where it stands to collect
the parcel (a ``transfer`` stop), takes it over, and delivers it — over a real server, Redis
and two driver sockets on Andorra's roads."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from geo.distance import haversine_m
from geo.roads import Roads
from server.dispatching.etas import EtaRefresher
from tests.conftest import AUTH
from tests.dispatch.test_planning_service import DROPS, VANS, new_van, order, order_store, reply_to
from tests.dispatch.test_returns import SHOP, planned, replan
from tests.tracking.test_driver_socket import send, ws_url


def stops(base: str, van: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/dispatch/routes/{van}", headers=AUTH)
    return list(answer.json()["stops"]) if answer.status_code == 200 else []


def the_order(base: str, order_id: str) -> dict[str, Any]:
    return dict(httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json())


@contextlib.asynccontextmanager
async def a_parcel_on_van_1_and_van_2_near(
    base: str,
) -> AsyncIterator[tuple[ClientConnection, ClientConnection, str]]:
    """van-1 has picked up an order from the shop; van-2 stands 170 m away: their driver
    sockets and the order's id."""
    token_1 = new_van(base)
    async with connect(ws_url(base, f"/ws/driver?token={token_1}")) as van_1:
        body = {**order(*DROPS[0]), "pickup": {"lat": SHOP[0], "lon": SHOP[1]}}
        order_id = (await planned(base, van_1, body))["order"]["id"]
        frame = {"type": "stop", "seq": 2, "order_id": order_id, "event": "picked_up"}
        assert (await reply_to(van_1, frame))["status"] == "picked_up"
        token_2 = new_van(base, "van-2")
        async with connect(ws_url(base, f"/ws/driver?token={token_2}")) as van_2:
            lat, lon = VANS["van-2"]
            ping = {"lat": lat, "lon": lon, "ts": int(time.time() * 1000)}
            await send(van_2, {"type": "pings", "seq": 1, "pings": [ping]})
            yield van_1, van_2, order_id


async def test_a_parcel_on_a_broken_down_van_is_collected_and_delivered_by_another(
    server_factory: Callable[..., str], andorra: Roads, redis_url: str, tmp_path: Path
) -> None:
    base = server_factory(roads=andorra)
    async with a_parcel_on_van_1_and_van_2_near(base) as (van_1, van_2, order_id):
        # It breaks down where it is, the parcel on board.
        broken = httpx.patch(f"{base}/vehicles/van-1", headers=AUTH, json={"status": "broken_down"})
        assert broken.status_code == 200, broken.text
        replan(base)

        # van-2 goes to van-1 for the parcel, then to the door; van-1 has nothing to do.
        collect, drop = stops(base, "van-2")
        assert (collect["order_id"], collect["kind"], collect["from_vehicle"]) == (
            order_id, "transfer", "van-1",
        )  # fmt: skip
        assert haversine_m(collect["lat"], collect["lon"], *VANS["van-1"]) < 50  # (on its road)
        assert (drop["order_id"], drop["kind"]) == (order_id, "dropoff")
        assert "from_vehicle" not in drop
        assert stops(base, "van-1") == []
        record = the_order(base, order_id)
        assert (record["status"], record["vehicle_id"], record["transfer_from"]) == (
            "picked_up", "van-2", "van-1",
        )  # fmt: skip

        # Nothing is delivered before it is collected, by either van.
        early = {"type": "stop", "seq": 2, "order_id": order_id, "event": "delivered"}
        refused = await reply_to(van_2, early)
        assert (refused["type"], refused["code"]) == ("error", "invalid_transition")
        assert "collect it first" in refused["message"]
        late = {"type": "stop", "seq": 4, "order_id": order_id, "event": "delivered"}
        assert (await reply_to(van_1, late))["code"] == "not_your_order"

        # Collected: van-2 has it; the transfer leaves its route at the next ETA pass.
        taken = {"type": "stop", "seq": 3, "order_id": order_id, "event": "picked_up"}
        assert await reply_to(van_2, taken) == {
            "type": "stop_ack", "seq": 3, "order_id": order_id, "status": "picked_up",
        }  # fmt: skip
        assert the_order(base, order_id)["transfer_from"] == ""
        audit = httpx.get(f"{base}/orders/{order_id}/audit", headers=AUTH).json()
        assert (audit[-1]["by"], audit[-1]["reason"]) == ("van-2", "taken over from van-1")
        again = {"type": "stop", "seq": 4, "order_id": order_id, "event": "picked_up"}
        assert (await reply_to(van_2, again))["type"] == "error"  # (once is enough)
        replan(base)  # (the transfer it drove to is kept no more: on board now)
        client, orders = order_store(redis_url, tmp_path)
        try:
            await EtaRefresher(client, orders, andorra).refresh()
        finally:
            await client.aclose()
        assert [(s["order_id"], s["kind"]) for s in stops(base, "van-2")] == [(order_id, "dropoff")]
        done = {"type": "stop", "seq": 5, "order_id": order_id, "event": "delivered"}
        assert (await reply_to(van_2, done))["status"] == "delivered"


async def test_a_van_back_in_service_before_the_collection_keeps_its_parcel(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    base = server_factory(roads=andorra)
    async with a_parcel_on_van_1_and_van_2_near(base) as (van_1, _, order_id):
        for status in ("broken_down", "available"):
            changed = httpx.patch(f"{base}/vehicles/van-1", headers=AUTH, json={"status": status})
            assert changed.status_code == 200, changed.text
            replan(base)
            if status == "broken_down":
                assert [s["kind"] for s in stops(base, "van-2")] == ["transfer", "dropoff"]
        # Repaired before van-2 came: the parcel is van-1's again, and so is the order.
        assert [(s["order_id"], s["kind"]) for s in stops(base, "van-1")] == [(order_id, "dropoff")]
        assert stops(base, "van-2") == []
        record = the_order(base, order_id)
        assert (record["vehicle_id"], record["transfer_from"]) == ("van-1", "")
        done = {"type": "stop", "seq": 3, "order_id": order_id, "event": "delivered"}
        assert (await reply_to(van_1, done))["status"] == "delivered"
