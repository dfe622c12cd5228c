"""The customer's rating of a delivery, from the tracking link: only once delivered, the comment
sealed at rest, audited, bounded; a low rating raises an alert; the KPIs count the ratings."""

from __future__ import annotations

from pathlib import Path

import httpx
import redis

from server import keys
from server.orders.store import MAX_FEEDBACK_CHANGES
from tests.conftest import AUTH
from tests.dispatch.test_planning_service import order_store
from tests.orders.test_orders_api import create

COMMENT = "Friendly driver, but the box was wet"


def low_rating_alerts(base: str, order_id: str) -> list[dict[str, object]]:
    alerts = httpx.get(f"{base}/alerts", headers=AUTH).json()
    return [a for a in alerts if a["kind"] == "low_rating" and a["order_id"] == order_id]


async def test_a_customer_rates_a_delivery_once_it_is_made(
    live_server: str, redis_url: str, tmp_path: Path
) -> None:
    base = live_server
    created = create(base)
    order_id, link = created["order"]["id"], created["tracking_token"]
    url = f"{base}/track/{link}/feedback"
    view = httpx.get(f"{base}/track/{link}").json()
    assert (view["feedback"], view["feedback_open"]) == (None, False)
    early = httpx.put(url, json={"rating": 5})
    assert early.status_code == 409, "nothing delivered to rate yet"
    assert early.json()["error"]["details"]["status"] == "received"

    client, orders = order_store(redis_url, tmp_path)
    async with client:
        await orders.transition(order_id, "processed", by="planner", vehicle_id="van-1")
        await orders.advance(order_id, "delivered", by="van-1")
    assert httpx.get(f"{base}/track/{link}").json()["feedback_open"] is True
    kpis = httpx.get(f"{base}/web/kpis", headers=AUTH).json()
    assert kpis["ratings"] == {"average": None, "count": 0, "share": 0.0}

    saved = httpx.put(url, json={"rating": 2, "comment": f"  {COMMENT} "})
    assert saved.status_code == 200, saved.text
    assert saved.json() == {"rating": 2, "comment": COMMENT}
    view = httpx.get(f"{base}/track/{link}").json()
    assert view["feedback"] == {"rating": 2, "comment": COMMENT}
    order = httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()
    assert (order["feedback"]["rating"], order["feedback"]["comment"]) == (2, COMMENT)
    audit = httpx.get(f"{base}/orders/{order_id}/audit", headers=AUTH).json()
    assert (audit[-1]["by"], audit[-1]["reason"]) == ("customer", "rated 2 of 5 with a comment")
    assert [t["status"] for t in view["timeline"]][-1] == "delivered", "not a step of the order"
    raw = redis.Redis.from_url(redis_url)
    assert b"wet" not in b"".join(raw.hgetall(keys.order(order_id)).values()), "sealed at rest"
    raw.close()
    # At or below FLEET_LOW_RATING (2 by default): the dispatchers hear of it, once.
    assert len(low_rating_alerts(base, order_id)) == 1
    assert httpx.put(url, json={"rating": 1}).status_code == 200
    assert len(low_rating_alerts(base, order_id)) == 1, "still low: no second alert"
    assert httpx.put(url, json={"rating": 4}).status_code == 200
    assert httpx.get(f"{base}/track/{link}").json()["feedback"] == {"rating": 4, "comment": ""}
    kpis = httpx.get(f"{base}/web/kpis", headers=AUTH).json()
    assert kpis["ratings"] == {"average": 4.0, "count": 1, "share": 1.0}


def test_bad_feedback_is_refused(live_server: str, redis_url: str) -> None:
    base = live_server
    created = create(base)
    order_id, link = created["order"]["id"], created["tracking_token"]
    raw = redis.Redis.from_url(redis_url)
    raw.hset(keys.order(order_id), "status", "delivered")  # (the store's moves are tested above)
    raw.close()
    url = f"{base}/track/{link}/feedback"
    for bad in ({"rating": 0}, {"rating": 6}, {"rating": 4.5}, {"rating": 3, "comment": "x" * 501},
                {"comment": "no rating"}, {"rating": 3, "stars": 3}):  # fmt: skip
        answer = httpx.put(url, json=bad)
        assert answer.status_code == 400, (bad, answer.text)
    assert httpx.put(f"{base}/track/nope/feedback", json={"rating": 5}).status_code == 404
    for n in range(MAX_FEEDBACK_CHANGES):
        assert httpx.put(url, json={"rating": 5, "comment": f"try {n}"}).status_code == 200
    refused = httpx.put(url, json={"rating": 1})
    assert refused.status_code == 409, "a link is a bearer token: writes through it are bounded"
    assert httpx.get(f"{base}/track/{link}").json()["feedback"]["comment"] == "try 4"
    assert low_rating_alerts(base, order_id) == []
