"""``GET /metrics``: the fleet's state in Prometheus's text format, for dashboards and alerting.

Fleet-wide figures read from Redis, so any server process answers the same: vehicles by
registry status and by connection, orders by status, pings stored, sent twice and rejected
(each process adds its counts every second), failed drop-offs and
alerts raised (by reason or kind, since the counters began), the drop-off error rate over its
window, webhooks' consecutive failures. Plus two figures of the process that answers (label
``pid``): its console subscribers and driver sockets. Staff token required, as for the API
(Prometheus: ``authorization: {credentials: TOKEN}``).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import cast

import msgspec
import redis.asyncio as aioredis
from litestar import Controller, MediaType, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency

from server import keys
from server.auth import staff_only
from server.orders.lifecycle import STATUSES
from server.orders.outcomes import recent_attempts
from server.settings import Settings

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Record(msgspec.Struct):
    status: str = "available"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]
) -> list[str]:
    """One metric family's lines: ``# HELP``, ``# TYPE`` and a sample per label set.

    >>> family("fleet_x", "gauge", "An x.", [({"a": 'b"c'}, 2)])
    ['# HELP fleet_x An x.', '# TYPE fleet_x gauge', 'fleet_x{a="b\\\\"c"} 2']
    """
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        number = repr(float(value)) if value != int(value) else str(int(value))
        lines.append(f"{name}{{{inner}}} {number}" if inner else f"{name} {number}")
    return lines


def _counts(raw: Mapping[bytes, bytes], label: str) -> list[tuple[dict[str, str], float]]:
    return [({label: k.decode()}, float(v)) for k, v in sorted(raw.items())]


async def render(redis: aioredis.Redis, state: State, settings: Settings) -> str:
    """Every metric, as Prometheus reads them."""
    async with redis.pipeline(transaction=False) as pipe:
        for status in STATUSES:
            pipe.scard(keys.orders_in(status))
        pipe.hvals(keys.VEHICLES)
        pipe.hvals(keys.STATUS)
        pipe.hgetall(keys.PING_COUNTS)
        pipe.hgetall(keys.REJECTS)
        pipe.hgetall(keys.FAILURES)
        pipe.hgetall(keys.ALERT_COUNTS)
        pipe.hkeys(keys.WEBHOOKS)
        pipe.info("memory")
        (
            *orders,
            records,
            connections,
            counted,
            rejects,
            failures,
            alerts,
            hooks,
            memory,
        ) = await pipe.execute()
    registry = Counter(msgspec.json.decode(r, type=_Record).status for r in records)
    online = Counter(c.decode() for c in connections)
    now = int(time.time() * 1000)
    seen = await recent_attempts(redis, settings.error_rate_window_s, now)
    async with redis.pipeline(transaction=False) as pipe:
        for hook in hooks:
            pipe.hget(keys.webhook_state(hook.decode()), "failures")
        hook_failures = cast("list[bytes | None]", await pipe.execute())
    pid = {"pid": str(os.getpid())}
    hub = state.get("hub")
    lines = [
        *family("fleet_vehicles", "gauge", "Registered vehicles by status.",
                [({"status": s}, float(n)) for s, n in sorted(registry.items())]),
        *family("fleet_vehicle_connections", "gauge",
                "Vehicles by the age of their newest ping: online, stale, offline.",
                [({"state": s}, float(n)) for s, n in sorted(online.items())]),
        *family("fleet_orders", "gauge", "Orders held in Redis by status (until archived).",
                [({"status": s}, float(n)) for s, n in zip(STATUSES, orders, strict=True)]),
        *family("fleet_pings_accepted_total", "counter",
                "Pings stored (each server process adds its count every second).",
                [({}, float(counted.get(b"accepted", 0)))]),
        *family("fleet_pings_duplicate_total", "counter",
                "Pings sent again that were stored already (a reconnecting app).",
                [({}, float(counted.get(b"duplicates", 0)))]),
        *family("fleet_pings_rejected_total", "counter", "Pings rejected, by reason.",
                _counts(rejects, "reason")),
        *family("fleet_dropoff_failures_total", "counter", "Failed drop-offs, by reason.",
                _counts(failures, "reason")),
        *family("fleet_alerts_total", "counter", "Alerts raised, by kind (node or error_rate).",
                _counts(alerts, "kind")),
        *family("fleet_dropoff_attempts", "gauge",
                "Drop-off attempts within the error-rate window, by outcome.",
                [({"outcome": "delivered"}, float(seen.delivered)),
                 ({"outcome": "failed"}, float(seen.failed))]),
        *family("fleet_webhook_consecutive_failures", "gauge",
                "Failed deliveries in a row, per webhook (0: delivering).",
                [({"webhook": h.decode()}, float(f or 0)) for h, f in
                 zip(hooks, hook_failures, strict=True)]),
        *family("fleet_redis_used_memory_bytes", "gauge",
                "Memory Redis holds the fleet's state in (orders, tracks, proofs until archived).",
                [({}, float(memory.get("used_memory", 0)))]),
        *family("fleet_redis_maxmemory_bytes", "gauge",
                "Redis's memory limit (0: none set).",
                [({}, float(memory.get("maxmemory", 0)))]),
        *family("fleet_process_console_subscribers", "gauge",
                "Console sockets open on the process that answered.",
                [(pid, float(len(hub.subscribers) if hub else 0))]),
        *family("fleet_process_driver_sockets", "gauge",
                "Vehicles with a driver socket open on the process that answered.",
                [(pid, float(len(hub.driver_links) if hub else 0))]),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


class MetricsController(Controller):
    tags = ["health"]  # noqa: RUF012 - Litestar reads this class attribute
    guards = [staff_only]  # noqa: RUF012

    @get("/metrics", summary="The fleet's state for Prometheus (text format 0.0.4)",
         media_type=MediaType.TEXT)  # fmt: skip
    async def metrics(
        self,
        redis: NamedDependency[aioredis.Redis],
        state: State,
        settings: NamedDependency[Settings],
    ) -> Response[str]:
        body = await render(redis, state, settings)
        return Response(body, media_type=CONTENT_TYPE)
