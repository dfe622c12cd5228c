"""An order without a pickup place is loaded at a depot: a trip there when the van is out,
a drop-off from the van once loaded; without depots it leaves with the van that takes it —
over a real server, Redis and driver socket on Andorra's roads."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from msgspec.structs import replace
from websockets.asyncio.client import connect

from geo.distance import haversine_m
from geo.roads import Roads
from server.dispatching.planner import _carried_by
from server.orders.model import Place
from tests.conftest import AUTH
from tests.dispatch.test_depots import DEPOT
from tests.dispatch.test_planning_service import DROPS, new_van, order, reply_to
from tests.dispatch.test_returns import planned, replan, route_of
from tests.orders.test_customer_view import NOW
from tests.orders.test_customer_view import order as order_record
from tests.tracking.test_driver_socket import ws_url


async def test_an_order_without_a_pickup_is_loaded_at_the_depot_then_carried(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    base = server_factory(roads=andorra)
    token = new_van(base)
    patched = httpx.patch(
        f"{base}/vehicles/van-1", headers=AUTH, json={"depot": {"lat": DEPOT[0], "lon": DEPOT[1]}}
    )
    assert patched.status_code == 200, patched.text
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        created = await planned(base, driver, order(*DROPS[0]))  # the van out on the road
        order_id = created["order"]["id"]
        assert [s[:2] for s in route_of(base)] == [(order_id, "pickup"), (order_id, "dropoff")]
        [(_, _, lat, lon)] = [s for s in route_of(base) if s[1] == "pickup"]
        assert haversine_m(lat, lon, *DEPOT) < 100  # back to the depot to load it
        loaded = {"type": "stop", "seq": 2, "order_id": order_id, "event": "picked_up"}
        assert (await reply_to(driver, loaded))["status"] == "picked_up"
        # On board now: a drop-off only; the next order is loaded at the depot again.
        after = httpx.post(f"{base}/orders", headers=AUTH, json=order(*DROPS[2])).json()
        replan(base)
        then = after["order"]["id"]
        stops = sorted(s[:2] for s in route_of(base))
        assert stops == sorted([(order_id, "dropoff"), (then, "pickup"), (then, "dropoff")])
    assert httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()["vehicle_id"] == "van-1"


async def test_with_its_depot_gone_before_loading_an_order_leaves_with_the_van(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    """Nowhere to load it at: the pickup the van was driving to (a stop a re-plan keeps) goes."""
    base = server_factory(roads=andorra)
    token = new_van(base)
    depot = {"lat": DEPOT[0], "lon": DEPOT[1]}
    assert httpx.patch(f"{base}/vehicles/van-1", headers=AUTH, json={"depot": depot}).is_success
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        order_id = (await planned(base, driver, order(*DROPS[0])))["order"]["id"]
        assert [s[:2] for s in route_of(base)] == [(order_id, "pickup"), (order_id, "dropoff")]
        assert httpx.patch(f"{base}/vehicles/van-1", headers=AUTH, json={"depot": None}).is_success
        replan(base)
        assert [s[:2] for s in route_of(base)] == [(order_id, "dropoff")]


def test_a_parcel_that_left_with_a_van_stays_on_it_after_a_failed_attempt() -> None:
    """Back with the planner after a failure, a parcel is on the van that tried: picked up at
    its shop, or, without a pickup place, loaded before it left (in a fleet without depots
    nothing says when): its new attempt is a drop-off from that van."""
    where = {"van-1": object()}
    tried = {"received": NOW, "processed": NOW, "failed": NOW}
    depot_order = replace(order_record(status="received"), nodes=tried)
    assert _carried_by(depot_order, where) == "van-1"
    assert _carried_by(depot_order, {}) is None  # (its van is not planned: out of service)
    shop_order = replace(depot_order, pickup=Place(lat=42.51, lon=1.53))
    assert _carried_by(shop_order, where) is None  # failed before it was picked up
    picked = replace(shop_order, nodes={**tried, "picked_up": NOW})
    assert _carried_by(picked, where) == "van-1"
    assert _carried_by(order_record(status="processed"), where) is None  # not tried yet
