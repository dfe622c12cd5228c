"""The orders API over real HTTP with a real Redis."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from typing import Any

import httpx
import msgspec
import pytest
import redis
import redis.asyncio as aioredis

from server import keys
from server.orders import store
from server.orders.crypto import Sealer
from server.orders.model import OrderIn
from server.orders.store import OrderStore
from tests.conftest import AUTH


def order_body(**extra: Any) -> dict[str, Any]:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=1)
    body: dict[str, Any] = {
        "dropoff": {"lat": 60.1699, "lon": 24.9384, "address": "Mannerheimintie 1"},
        "window": {"start": start.isoformat(), "end": (start + dt.timedelta(hours=2)).isoformat()},
        "size": {"kg": 3.5, "parcels": 1},
        "customer": {"name": "Aino Virtanen", "phone": "+358401234567"},
        "priority": "express",
    }
    body.update(extra)
    return body


def create(base: str, **extra: Any) -> dict[str, Any]:
    answer = httpx.post(f"{base}/orders", headers=AUTH, json=order_body(**extra))
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def test_create_get_and_list(live_server: str) -> None:
    created = create(live_server)
    order = created["order"]
    assert order["status"] == "received"
    assert order["customer"] == {"name": "Aino Virtanen", "phone": "+358401234567"}
    assert order["dropoff"]["address"] == "Mannerheimintie 1"
    assert set(order["nodes"]) == {"received"}
    token = created["tracking_token"]
    assert len(base64.urlsafe_b64decode(token + "==")) * 8 >= 128
    fetched = httpx.get(f"{live_server}/orders/{order['id']}", headers=AUTH).json()
    assert fetched == order
    listed = httpx.get(f"{live_server}/orders", headers=AUTH, params={"status": "received"}).json()
    assert [o["id"] for o in listed] == [order["id"]]


def test_idempotency_key_returns_the_first_answer(live_server: str) -> None:
    headers = {**AUTH, "Idempotency-Key": "shop-order-991"}
    first = httpx.post(f"{live_server}/orders", headers=headers, json=order_body())
    again = httpx.post(f"{live_server}/orders", headers=headers, json=order_body())
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert len(httpx.get(f"{live_server}/orders", headers=AUTH).json()) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"dropoff": {"lat": 95, "lon": 24.9}}, '"key":"dropoff.lat"'),
        ({"priority": "urgent"}, '"key":"priority"'),
        ({"size": {"kg": -1}}, '"key":"size'),
        ({"surprise": 1}, "surprise"),
        (
            {"window": {"start": "2026-11-25T12:00:00Z", "end": "2026-11-25T11:00:00Z"}},
            "window",
        ),
    ],
)
def test_validation_errors_name_the_field(live_server: str, change: dict, field: str) -> None:
    answer = httpx.post(f"{live_server}/orders", headers=AUTH, json=order_body(**change))
    assert answer.status_code == 400
    assert field in answer.text


def test_cancel_is_audited_and_final(live_server: str) -> None:
    order_id = create(live_server)["order"]["id"]
    cancelled = httpx.post(
        f"{live_server}/orders/{order_id}/cancel", headers=AUTH, json={"reason": "customer asked"}
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = httpx.post(f"{live_server}/orders/{order_id}/cancel", headers=AUTH, json={})
    assert again.status_code == 409
    audit = httpx.get(f"{live_server}/orders/{order_id}/audit", headers=AUTH).json()
    assert [(a["status"], a["previous"], a["reason"]) for a in audit] == [
        ("received", None, ""),
        ("cancelled", "received", "customer asked"),
    ]
    update = httpx.patch(f"{live_server}/orders/{order_id}", headers=AUTH, json={"service_s": 60})
    assert update.status_code == 409


def test_cancel_needs_no_body(live_server: str) -> None:
    order_id = create(live_server)["order"]["id"]
    cancelled = httpx.post(f"{live_server}/orders/{order_id}/cancel", headers=AUTH)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"


def test_update_before_departure(live_server: str) -> None:
    order_id = create(live_server)["order"]["id"]
    answer = httpx.patch(
        f"{live_server}/orders/{order_id}",
        headers=AUTH,
        json={"service_s": 300, "customer": {"name": "Aino V.", "phone": "+358400000000"}},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["service_s"] == 300
    assert answer.json()["customer"]["name"] == "Aino V."


def test_personal_data_is_not_readable_in_redis(live_server: str, redis_url: str) -> None:
    order_id = create(live_server, notes="Gate code under the doormat")["order"]["id"]
    client = redis.Redis.from_url(redis_url)
    dump = b""
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"hash":
            dump += b"".join(k + v for k, v in client.hgetall(key).items())
        elif kind == b"string":
            dump += client.get(key) or b""
        elif kind == b"stream":
            dump += repr(client.xrange(key)).encode()
    client.close()
    assert order_id.encode() in dump
    for secret in (b"Aino", b"Virtanen", b"358401234567", b"Mannerheimintie", b"doormat"):
        assert secret not in dump


def test_orders_need_a_staff_token(live_server: str) -> None:
    assert httpx.get(f"{live_server}/orders").status_code == 401
    assert httpx.post(f"{live_server}/orders", json=order_body()).status_code == 401
    assert httpx.get(f"{live_server}/orders/nope", headers=AUTH).status_code == 404


@pytest.mark.parametrize("read", ["every id of the status", "the orders newest first, by pages"])
def test_lists_read_the_newest_of_a_status_and_every_open_order(
    live_server: str, read: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An open order is listed (and planned) however many orders came after it, and a status
    holding a long history gives its newest orders, whether its ids are few enough to read at
    once or the orders are walked newest first."""
    if read.startswith("the orders"):
        monkeypatch.setattr(store, "SMALL_STATUS", 0)
        monkeypatch.setattr(store, "SCAN_PAGE", 4)
    waiting = create(live_server)["order"]["id"]
    ended = []
    for _ in range(10):
        order_id = create(live_server)["order"]["id"]
        answer = httpx.post(f"{live_server}/orders/{order_id}/cancel", headers=AUTH, json={})
        assert answer.status_code == 200, answer.text
        ended.append(order_id)

    def listed(**params: Any) -> list[str]:
        answer = httpx.get(f"{live_server}/orders", headers=AUTH, params=params)
        assert answer.status_code == 200, answer.text
        return [o["id"] for o in answer.json()]

    assert listed(open="true", limit=3) == [waiting]
    assert listed(status="received", limit=3) == [waiting]
    assert listed(status="cancelled", limit=3) == ended[::-1][:3]
    assert listed(status="cancelled", limit=50) == ended[::-1]
    assert listed(status="cancelled", open="true") == []
    assert listed(status="delivered") == []
    assert listed(limit=2) == ended[::-1][:2]


async def test_deliveries_give_the_kpis_what_the_full_orders_say(redis_url: str) -> None:
    """The KPIs' light read (no personal data decrypted) agrees with the orders themselves."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        orders = OrderStore(client, Sealer(b"k" * 32))
        made = []
        for start_in_h in (-3, 1, 2):  # the first one's window has closed: delivered late
            start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=start_in_h)
            window = {
                "start": start.isoformat(),
                "end": (start + dt.timedelta(hours=1)).isoformat(),
            }
            data = msgspec.convert(order_body(window=window), OrderIn)
            created, _ = await orders.create(data, idempotency_key=None, by="test")
            made.append(created.order.id)
            await asyncio.sleep(0.005)  # created in distinct milliseconds: a strict newest-first
        await client.hset(keys.order(made[0]), "promised_eta", 1_764_064_800_000)
        for order_id in made[:2]:
            await orders.advance(order_id, "delivered", by="test")
        got = await orders.deliveries(limit=10)
        full = await orders.find(status="delivered", limit=10)
        assert [o.id for o in full] == made[1::-1]  # newest first
        assert [(d.delivered_at, d.window_end) for d in got] == [
            (o.nodes["delivered"], o.window.end) for o in full
        ]
        assert [d.promised_eta for d in got] == [
            None,
            dt.datetime.fromtimestamp(1_764_064_800, tz=dt.UTC),
        ]
        assert got[1].delivered_at > got[1].window_end  # the late one
        assert len(await orders.deliveries(limit=1)) == 1
    finally:
        await client.aclose()
