"""The customer's delivery instructions, from the tracking link to the driver: until the van is
at the door, sealed at rest, audited, bounded."""

from __future__ import annotations

from pathlib import Path

import httpx
import redis

from server import keys
from server.orders.store import MAX_INSTRUCTION_CHANGES
from tests.conftest import AUTH
from tests.dispatch.test_planning_service import order_store
from tests.orders.test_orders_api import create
from tests.orders.test_stop_details import van

WORDS = "Leave it with the neighbour at B 12, the dog is friendly"


async def test_instructions_reach_the_driver_until_the_van_is_at_the_door(
    live_server: str, redis_url: str, tmp_path: Path
) -> None:
    base = live_server
    driver = van(base, "van-1")
    created = create(base)
    order_id, link = created["order"]["id"], created["tracking_token"]
    url = f"{base}/track/{link}/instructions"
    assert httpx.get(f"{base}/track/{link}").json()["instructions_open"] is True

    saved = httpx.put(url, json={"instructions": f"  {WORDS} "})
    assert saved.status_code == 200, saved.text
    assert saved.json() == {"instructions": WORDS}
    view = httpx.get(f"{base}/track/{link}").json()
    assert view["instructions"] == WORDS
    assert httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()["instructions"] == WORDS
    audit = httpx.get(f"{base}/orders/{order_id}/audit", headers=AUTH).json()
    assert (audit[-1]["by"], audit[-1]["reason"]) == ("customer", "delivery instructions changed")
    assert [t["status"] for t in view["timeline"]] == ["received"], "not a step of the order"
    raw = redis.Redis.from_url(redis_url)
    assert b"neighbour" not in b"".join(raw.hgetall(keys.order(order_id)).values())
    raw.close()

    client, orders = order_store(redis_url, tmp_path)
    async with client:
        await orders.transition(order_id, "processed", by="planner", vehicle_id="van-1")
        details = httpx.get(f"{base}/orders/{order_id}/stop-details", headers=driver).json()
        assert details["instructions"] == WORDS
        await orders.advance(order_id, "arrived", by="van-1")
    late = httpx.put(url, json={"instructions": "ring twice"})
    assert late.status_code == 409, "the driver is at the door"
    assert httpx.get(f"{base}/track/{link}").json()["instructions_open"] is False
    assert httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()["instructions"] == WORDS


def test_bad_instructions_are_refused(live_server: str) -> None:
    base = live_server
    link = create(base)["tracking_token"]
    url = f"{base}/track/{link}/instructions"
    assert httpx.put(url, json={"instructions": "x" * 301}).status_code == 400
    assert httpx.put(url, json={"note": "x"}).status_code == 400
    assert (
        httpx.put(f"{base}/track/nope/instructions", json={"instructions": "x"}).status_code == 404
    )
    for n in range(MAX_INSTRUCTION_CHANGES):
        assert httpx.put(url, json={"instructions": f"try {n}"}).status_code == 200
    refused = httpx.put(url, json={"instructions": "one more"})
    assert refused.status_code == 409, "a link is a bearer token: writes through it are bounded"
    assert httpx.get(f"{base}/track/{link}").json()["instructions"] == "try 19"
