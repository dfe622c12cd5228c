"""What a driver reads of an order at its stops (addresses, customer, notes): its own open
orders only; and the notes for the driver, sealed like the rest of the personal data."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import AUTH
from tests.dispatch.test_planning_service import order_store
from tests.orders.test_orders_api import create

NOTES = "Ovikoodi kissa, third floor, ring twice"


def van(base: str, vehicle_id: str) -> dict[str, str]:
    answer = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": vehicle_id})
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


async def test_a_driver_reads_its_own_open_orders_only(
    live_server: str, redis_url: str, tmp_path: Path
) -> None:
    base = live_server
    mine, theirs = van(base, "van-1"), van(base, "van-2")
    pickup = {"lat": 60.1702, "lon": 24.9410, "address": "Kauppa Oy, Aleksanterinkatu 9"}
    order_id = create(base, notes=NOTES, pickup=pickup, reference="PO-77")["order"]["id"]
    url = f"{base}/orders/{order_id}/stop-details"
    assert httpx.get(url, headers=mine).status_code == 403, "not on this van yet"

    client, orders = order_store(redis_url, tmp_path)
    async with client:
        await orders.transition(order_id, "processed", by="planner", vehicle_id="van-1")
        answer = httpx.get(url, headers=mine)
        assert answer.status_code == 200, answer.text
        details = answer.json()
        assert details["notes"] == NOTES
        assert details["customer"] == {"name": "Aino Virtanen", "phone": "+358401234567"}
        assert details["dropoff"]["address"] == "Mannerheimintie 1"
        assert details["pickup"]["address"] == pickup["address"]
        assert (details["reference"], details["status"]) == ("PO-77", "processed")

        refused = httpx.get(url, headers=theirs)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "not_your_order"
        assert "Aino" not in refused.text
        assert httpx.get(url).status_code == 401
        assert httpx.get(f"{base}/orders/o-none/stop-details", headers=mine).status_code == 404

        # Notes and the customer's contact may change on the way; the plan's inputs may not.
        await orders.advance(order_id, "picked_up", by="van-1")
        patch = {"notes": "Leave with the neighbour at B 12", "customer": {"phone": "+35850111"}}
        changed = httpx.patch(f"{base}/orders/{order_id}", headers=AUTH, json=patch)
        assert changed.status_code == 200, changed.text
        details = httpx.get(url, headers=mine).json()
        assert details["notes"] == patch["notes"]
        # Only the phone was given: the name stays (the customer is merged, not replaced).
        assert details["customer"] == {"name": "Aino Virtanen", "phone": "+35850111"}
        audit = httpx.get(f"{base}/orders/{order_id}/audit", headers=AUTH).json()
        assert (audit[-1]["by"], audit[-1]["reason"]) == ("api", "changed customer, notes")
        late = httpx.patch(f"{base}/orders/{order_id}", headers=AUTH, json={"service_s": 30})
        assert late.status_code == 409

        await orders.advance(order_id, "delivered", by="van-1")
    assert httpx.get(url, headers=mine).status_code == 403, "ended: no longer the driver's"
    assert httpx.get(url, headers=AUTH).json()["notes"] == patch["notes"], "staff still read it"
    ended = httpx.patch(f"{base}/orders/{order_id}", headers=AUTH, json={"notes": "x"})
    assert ended.status_code == 409
