"""Quality KPIs: the drop-off error rate and its alert, node times, orders per vehicle a day."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import msgspec
import redis.asyncio as aioredis

from server import keys
from server.orders.alerts import NodeAlerts
from server.orders.crypto import Sealer
from server.orders.lifecycle import NodeLimits
from server.orders.model import Delivery, OrderIn
from server.orders.outcomes import Attempts, ErrorRateLimit, attempts, count_attempt
from server.orders.quality import node_times_s, orders_per_vehicle_day
from server.orders.store import OrderStore
from tests.conftest import AUTH
from tests.orders.test_orders_api import order_body

MIDNIGHT = int(dt.datetime(2026, 11, 29, tzinfo=dt.UTC).timestamp() * 1000)
MIN = 60_000


async def _count(client: aioredis.Redis, outcome: str, at_ms: int, times: int = 1) -> None:
    async with client.pipeline(transaction=True) as pipe:
        for _ in range(times):
            count_attempt(pipe, outcome, at_ms)
        await pipe.execute()


async def test_attempts_are_counted_in_the_slots_of_the_window(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await _count(client, "delivered", MIDNIGHT - 5 * MIN, 3)  # yesterday, 23:55
        await _count(client, "failed", MIDNIGHT + 2 * MIN)  # today, 00:02
        await _count(client, "delivered", MIDNIGHT + 25 * MIN, 2)  # 00:25
        await _count(client, "failed", MIDNIGHT - 3 * 86_400_000)  # three days ago
        now = MIDNIGHT + 29 * MIN
        assert await attempts(client, now - 10 * MIN, now) == Attempts(delivered=2)  # 00:19 on
        assert await attempts(client, now - 30 * MIN, now) == Attempts(delivered=5, failed=1)
        day = await attempts(client, now - 86_400_000, now)
        assert (day.delivered, day.failed, day.rate()) == (5, 1, 1 / 6)
        week = await attempts(client, now - 7 * 86_400_000, now)
        assert week == Attempts(delivered=5, failed=2)
        assert await client.ttl(keys.outcomes("20261129")) > 7 * 86_400
    finally:
        await client.aclose()


async def test_the_error_rate_alert_is_raised_once_per_rise(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    clock = [(MIDNIGHT + 60 * MIN) / 1000]
    limit = ErrorRateLimit(limit=0.08, window_s=3600, min_attempts=20)
    alerts = NodeAlerts(client, NodeLimits(), error_rate=limit, clock=lambda: clock[0])
    try:
        await _count(client, "failed", MIDNIGHT + 10 * MIN, 2)
        assert await alerts.sweep() == [], "2 failed of 2: too few attempts to tell"
        await _count(client, "delivered", MIDNIGHT + 20 * MIN, 18)
        raised = await alerts.sweep()  # 2 of 20 failed: 10%
        assert raised == [{
            "type": "alert", "kind": "error_rate", "rate": 0.1, "limit": 0.08, "failed": 2,
            "attempts": 20, "window_s": 3600, "at": MIDNIGHT + 60 * MIN,
        }]  # fmt: skip
        assert await alerts.sweep() == [], "raised once while it stays above"
        await _count(client, "delivered", MIDNIGHT + 30 * MIN, 10)
        assert await alerts.sweep() == []  # 2 of 30: below, and armed again
        await _count(client, "failed", MIDNIGHT + 40 * MIN, 2)
        assert [a["failed"] for a in await alerts.sweep()] == [4]  # 4 of 32: above again
        clock[0] += 3600  # the failures leave the window
        await _count(client, "delivered", MIDNIGHT + 110 * MIN, 25)
        assert await alerts.sweep() == []
        counts = await client.hgetall(keys.ALERT_COUNTS)
        assert counts == {b"error_rate": b"2"}
    finally:
        await client.aclose()


def _delivery(vehicle: str, **nodes_min: int) -> Delivery:
    nodes = {k: MIDNIGHT + v * MIN for k, v in nodes_min.items()}
    at = dt.datetime.fromtimestamp(nodes["delivered"] / 1000, tz=dt.UTC)
    return Delivery(delivered_at=at, window_end=at, promised_eta=None, nodes_ms=nodes,
                    vehicle_id=vehicle)  # fmt: skip


def test_node_times_and_orders_per_vehicle_a_day() -> None:
    done = [
        _delivery("v1", received=0, processed=10, departed=40, delivered=70),
        _delivery("v1", received=0, processed=30, departed=50, delivered=90),
        _delivery("v2", received=-2000, processed=-1990, departed=-1980, delivered=-1900),
        _delivery("v3", received=0, delivered=60),  # delivered without the nodes between
    ]
    times = node_times_s(done)
    assert times == {
        "processing": (600 + 1800 + 600) / 3,
        "departure": (1800 + 1200 + 600) / 3,
        "delivery": (1800 + 2400 + 4800) / 3,
        "lead_time": (4200 + 5400 + 6000 + 3600) / 4,
    }
    now = MIDNIGHT + 100 * MIN  # v2's delivery was over a day ago
    assert orders_per_vehicle_day(done, now) == 3 / 2
    assert orders_per_vehicle_day([], now) is None
    assert node_times_s([])["processing"] is None


async def test_the_kpis_give_the_error_rate_node_times_and_orders_per_vehicle(
    live_server: str, redis_url: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        store = OrderStore(client, Sealer(b"k" * 32))
        made = []
        for _ in range(4):
            created, _ = await store.create(
                msgspec.convert(order_body(), OrderIn), idempotency_key=None, by="test"
            )
            made.append(created.order.id)
        for order_id in made:
            await store.transition(order_id, "processed", by="test", vehicle_id="van-1")
            await asyncio.sleep(0.01)
        for order_id in made[:3]:
            await store.advance(order_id, "delivered", by="van-1")
        await store.advance(made[3], "failed", by="van-1", reason="customer_absent")
    finally:
        await client.aclose()
    kpis = httpx.get(f"{live_server}/web/kpis", headers=AUTH).json()
    assert kpis["error_rate"] == {
        "rate": 0.25, "failed": 1, "attempts": 4, "window_s": 86_400.0, "limit": 0.08
    }  # fmt: skip
    assert kpis["orders_per_vehicle_day"] == 3.0
    assert kpis["first_attempt_rate"] == 1.0  # the failed one is not delivered
    times = kpis["node_times_s"]
    assert set(times) == {"processing", "departure", "delivery", "lead_time"}
    assert 0 < times["processing"] < 5
    assert times["lead_time"] >= times["processing"]
    assert kpis["alerts"] == {}
