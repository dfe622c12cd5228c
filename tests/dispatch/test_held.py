"""A delivery that failed on a wrong address waits for a dispatcher instead of another trip to
the same door: held (no stop planned, an alert), then released by a corrected address or sent
out again as it is — over a real server, Redis and driver socket on Andorra's roads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
from websockets.asyncio.client import ClientConnection, connect

from geo.distance import haversine_m
from geo.roads import Roads
from tests.conftest import AUTH
from tests.dispatch.test_planning_service import DROPS, new_van, order, reply_to
from tests.dispatch.test_returns import SHOP, fail_at_the_door, planned, replan, route_of
from tests.tracking.test_driver_socket import ws_url


async def failed_on_a_wrong_address(base: str, driver: ClientConnection) -> str:
    """An order from the shop, picked up, then failed at the door on a wrong address: its id.
    Its customer's page says so (``held``) and asks for instructions."""
    body = {**order(*DROPS[0]), "pickup": {"lat": SHOP[0], "lon": SHOP[1]}}
    created = await planned(base, driver, body)
    order_id: str = created["order"]["id"]
    link = f"{base}/track/{created['tracking_token']}"
    assert httpx.get(link).json()["held"] is False
    await reply_to(driver, {"type": "stop", "seq": 2, "order_id": order_id, "event": "picked_up"})
    frame = {"type": "stop", "seq": 3, "order_id": order_id, "event": "arrived"}
    await reply_to(driver, frame)
    frame = {"type": "stop", "seq": 4, "order_id": order_id, "event": "failed",
             "reason": "address_wrong"}  # fmt: skip
    assert await reply_to(driver, frame) == {
        "type": "stop_ack", "seq": 4, "order_id": order_id, "status": "received",
        "held": "address_wrong",
    }  # fmt: skip
    view = httpx.get(link).json()
    assert (view["held"], view["eta"], view["vehicle"], view["instructions_open"]) == (
        True, None, None, True,
    )  # fmt: skip
    return order_id


@contextlib.asynccontextmanager
async def held_on_a_van(
    server_factory: Callable[..., str], andorra: Roads
) -> AsyncIterator[tuple[str, ClientConnection, str]]:
    """A server on Andorra, its van's driver socket, and an order it failed on a wrong address
    (:func:`failed_on_a_wrong_address`): the server's URL, the socket and the order's id."""
    base = server_factory(roads=andorra)
    token = new_van(base)
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        yield base, driver, await failed_on_a_wrong_address(base, driver)


def held_alerts(base: str, order_id: str) -> list[dict[str, object]]:
    alerts = httpx.get(f"{base}/alerts", headers=AUTH).json()
    return [a for a in alerts if a["kind"] == "held" and a["order_id"] == order_id]


async def test_a_wrong_address_waits_for_a_dispatcher_then_goes_to_the_corrected_one(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    async with held_on_a_van(server_factory, andorra) as (base, _driver, order_id):
        shown = httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()
        assert (shown["held"], shown["vehicle_id"]) == ("address_wrong", "van-1")
        [alert] = held_alerts(base, order_id)
        assert alert["reason"] == "address_wrong"
        replan(base)
        assert route_of(base) == [], "no second trip to the same wrong door"

        # The dispatcher calls the customer: the right address is elsewhere.
        right = {"lat": DROPS[2][0], "lon": DROPS[2][1], "address": "Carrer Major 3"}
        fixed = httpx.patch(f"{base}/orders/{order_id}", headers=AUTH, json={"dropoff": right})
        assert fixed.status_code == 200, fixed.text
        assert (fixed.json()["held"], fixed.json()["dropoff"]) == ("", right)
        audit = httpx.get(f"{base}/orders/{order_id}/audit", headers=AUTH).json()
        assert audit[-1]["reason"] == "changed dropoff, released"
        replan(base)
        [(stop_order, kind, lat, lon)] = route_of(base)
        assert (stop_order, kind) == (order_id, "dropoff"), "from the van: no second pickup"
        assert haversine_m(lat, lon, *DROPS[2]) < 100, "at the corrected place"


async def test_a_held_order_can_go_out_again_as_it_is_and_bad_changes_are_refused(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    async with held_on_a_van(server_factory, andorra) as (base, driver, order_id):
        far = {"dropoff": {"lat": 0.0, "lon": 0.0}}
        refused = httpx.patch(f"{base}/orders/{order_id}", headers=AUTH, json=far)
        assert refused.status_code == 422, "no road there"
        assert httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()["held"]

        # The customer confirms the address was right after all: out again as it is.
        url = f"{base}/orders/{order_id}/retry"
        again = httpx.post(url, headers=AUTH, json={"reason": "customer confirmed by phone"})
        assert again.status_code == 200, again.text
        assert (again.json()["status"], again.json()["held"]) == ("received", "")
        assert httpx.post(url, headers=AUTH).status_code == 409, "not held any more"
        replan(base)
        [(stop_order, kind, lat, lon)] = route_of(base)
        assert (stop_order, kind) == (order_id, "dropoff")
        assert haversine_m(lat, lon, *DROPS[0]) < 100

        # A customer who was out is tried again without waiting for anyone.
        assert await fail_at_the_door(driver, order_id, "customer_absent", 5) == "received"
        assert httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()["held"] == ""
    assert len(held_alerts(base, order_id)) == 1


async def test_a_held_parcel_is_sent_back_not_cancelled(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    """The customer cannot be reached: the parcel on the van goes back to the shop. Cancelling
    it would leave a parcel in a van that no order accounts for."""
    async with held_on_a_van(server_factory, andorra) as (base, driver, order_id):
        refused = httpx.post(f"{base}/orders/{order_id}/cancel", headers=AUTH)
        assert refused.status_code == 409, refused.text
        assert "van-1" in refused.json()["error"]["message"]
        early = httpx.post(f"{base}/orders/{order_id}/returned", headers=AUTH)
        assert early.status_code == 409, "not on its way back yet"
        frame = {"type": "stop", "seq": 9, "order_id": order_id, "event": "returned"}
        assert (await reply_to(driver, frame))["code"] == "invalid_transition"

        back = httpx.post(f"{base}/orders/{order_id}/return", headers=AUTH,
                          json={"reason": "customer unreachable"})  # fmt: skip
        assert back.status_code == 200, back.text
        assert (back.json()["status"], back.json()["held"]) == ("returning", "")
        replan(base)
        [(stop_order, kind, lat, lon)] = route_of(base)
        assert (stop_order, kind) == (order_id, "return")
        assert haversine_m(lat, lon, *SHOP) < 100, "back to the shop"
        again = httpx.post(f"{base}/orders/{order_id}/return", headers=AUTH)
        assert again.status_code == 409, "returning already"
        # An order that never failed has no parcel on a van to send back.
        fresh = httpx.post(f"{base}/orders", headers=AUTH, json=order(*DROPS[2])).json()
        other = fresh["order"]["id"]
        assert httpx.post(f"{base}/orders/{other}/return", headers=AUTH).status_code == 409
        assert httpx.post(f"{base}/orders/{other}/cancel", headers=AUTH).status_code == 200
