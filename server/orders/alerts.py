"""Alerts: an order that misses the processing, departure or lead-time limit; too many failed
drop-offs.

One process at a time (lease ``fleet:lease:alerts``) checks the open orders every ``interval_s``
with :func:`server.orders.lifecycle.breaches`, and the error rate of the drop-off attempts over
its window (:mod:`server.orders.outcomes`). Each breach is raised once per order, the error rate
once each time it goes above its limit: published on ``fleet:events``, kept in the capped stream
``fleet:alerts`` and counted by kind in ``fleet:stats:alerts``::

    {"type": "alert", "kind": "node_breach", "node": "processing", "order_id": "o-…", "at": ms}
    {"type": "alert", "kind": "error_rate", "rate": 0.1, "limit": 0.08, "failed": 3,
     "attempts": 30, "window_s": 86400, "at": ms}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, cast

import redis.asyncio as aioredis

from server import clock as server_clock
from server import keys
from server.events import queue_event
from server.lease import Lease, run_leased
from server.orders.lifecycle import OPEN, NodeLimits, breaches
from server.orders.outcomes import ErrorRateLimit, above_limit, recent_attempts

log = logging.getLogger("fleet.alerts")


class NodeAlerts:
    def __init__(
        self,
        redis: aioredis.Redis,
        limits: NodeLimits,
        *,
        interval_s: float = 30.0,
        error_rate: ErrorRateLimit | None = None,
        clock: Callable[[], float] = server_clock.now,
    ) -> None:
        self.redis = redis
        self.limits = limits
        self.error_rate = error_rate
        self.interval_s = interval_s
        self.clock = clock
        self.lease = Lease(redis, keys.ALERTS_LEASE, ttl_s=max(3 * interval_s, 2.0))

    async def sweep(self) -> list[dict[str, Any]]:
        """One pass over the open orders: the alerts it raised."""
        now = int(self.clock() * 1000)
        ids = sorted(
            i.decode()
            for i in cast("set[bytes]", await self.redis.sunion([keys.orders_in(s) for s in OPEN]))
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            for order_id in ids:
                pipe.hmget(keys.order(order_id), ["nodes", "alerted"])
            rows = cast("list[list[bytes | None]]", await pipe.execute())
        raised: list[dict[str, Any]] = []
        updates: dict[str, list[str]] = {}
        for order_id, (nodes_raw, alerted_raw) in zip(ids, rows, strict=True):
            if nodes_raw is None:
                continue
            alerted = set(json.loads(alerted_raw)) if alerted_raw else set()
            new = [b for b in breaches(json.loads(nodes_raw), now, self.limits) if b not in alerted]
            if new:
                updates[order_id] = sorted(alerted | set(new))
                raised += [
                    {"type": "alert", "kind": "node_breach", "node": node, "order_id": order_id,
                     "at": now}
                    for node in new
                ]  # fmt: skip
        if self.error_rate is not None:
            raised += await self._error_rate(self.error_rate, now)
        if raised:
            async with self.redis.pipeline(transaction=True) as pipe:
                for order_id, alerted_now in updates.items():
                    pipe.hset(keys.order(order_id), "alerted", json.dumps(alerted_now))
                for alert in raised:
                    queue_event(pipe, alert, also_log=keys.ALERTS)
                    pipe.hincrby(keys.ALERT_COUNTS, alert.get("node", alert["kind"]), 1)
                await pipe.execute()
        return raised

    async def _error_rate(self, limit: ErrorRateLimit, now: int) -> list[dict[str, Any]]:
        """The error-rate alert, if the rate has just gone above the limit."""
        seen = await recent_attempts(self.redis, limit.window_s, now)
        if not above_limit(seen, limit):
            await self.redis.delete(keys.ERROR_RATE_ALERTED)  # raised again on the next rise
            return []
        if not await self.redis.set(keys.ERROR_RATE_ALERTED, now, nx=True):
            return []  # raised already while it stays above
        return [{
            "type": "alert", "kind": "error_rate", "rate": round(seen.rate() or 0.0, 4),
            "limit": limit.limit, "failed": seen.failed, "attempts": seen.total,
            "window_s": limit.window_s, "at": now,
        }]  # fmt: skip

    async def run(self) -> None:
        await run_leased(self.lease, self.sweep, interval_s=self.interval_s, log=log)


async def recent_alerts(redis: aioredis.Redis, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` alerts, newest first."""
    entries = cast(
        "list[tuple[bytes, dict[bytes, bytes]]]",
        await redis.xrevrange(keys.ALERTS, count=limit),
    )
    return [json.loads(fields[b"e"]) for _, fields in entries]
