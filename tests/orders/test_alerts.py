"""Node-breach alerts: raised once per order and node, reaching the API and the console."""

from __future__ import annotations

import json

import httpx
import redis.asyncio as aioredis

from server import keys
from server.orders.alerts import NodeAlerts
from server.orders.lifecycle import NodeLimits
from tests.conftest import AUTH
from tests.orders.test_orders_api import create

H = 3600.0


async def test_each_breach_is_raised_once(live_server: str, redis_url: str) -> None:
    order_id = create(live_server)["order"]["id"]
    client = aioredis.Redis.from_url(redis_url)
    received_s = json.loads(await client.hget(keys.order(order_id), "nodes"))["received"] / 1000
    clock = [received_s + 1 * H]
    alerts = NodeAlerts(client, NodeLimits(), clock=lambda: clock[0])
    assert await alerts.sweep() == []
    clock[0] = received_s + 2.5 * H
    raised = await alerts.sweep()
    assert [(a["node"], a["order_id"]) for a in raised] == [("processing", order_id)]
    assert await alerts.sweep() == [], "raised once"
    clock[0] = received_s + 49 * H
    assert [a["node"] for a in await alerts.sweep()] == ["lead_time"]
    await client.aclose()
    listed = httpx.get(f"{live_server}/alerts", headers=AUTH).json()
    assert [a["node"] for a in listed] == ["lead_time", "processing"]


async def test_closed_orders_raise_nothing(live_server: str, redis_url: str) -> None:
    order_id = create(live_server)["order"]["id"]
    httpx.post(f"{live_server}/orders/{order_id}/cancel", headers=AUTH, json={})
    client = aioredis.Redis.from_url(redis_url)
    alerts = NodeAlerts(client, NodeLimits(), clock=lambda: 1e12)
    assert await alerts.sweep() == []
    await client.aclose()
