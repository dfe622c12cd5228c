"""Read models for the dispatcher console (staff token required), under ``/web``.

- ``GET /web/fleet``: every vehicle with its record status, connection status, live position and
  current route, in one answer (the console's vehicles panel and route colours);
- ``GET /web/kpis``: the KPI strip (on-time rate, open orders, active vehicles, utilisation, and
  the mean ETA error: delivery time against the ETA promised when the order was confirmed; the
  customers' mean rating of their deliveries);
- ``GET /web/density?bbox=&res=``: live vehicles counted per H3 cell, with the cells' corners;
- ``GET /web/routes/{vehicle}``: a vehicle's route with its road geometry from the live position
  through every stop, on current traffic.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import Counter
from typing import Annotated, Any, cast
from zoneinfo import ZoneInfo

import msgspec
import redis.asyncio as aioredis
from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from geo.cells import cell_corners, parent_of
from geo.roads import Roads
from server import clock, keys
from server.auth import staff_only
from server.errors import NotFound
from server.openapi import BBOX_SCHEMA
from server.orders.lifecycle import FINAL, STATUSES
from server.orders.outcomes import ErrorRateLimit, recent_attempts
from server.orders.quality import (
    first_attempt_rate,
    node_times_s,
    orders_per_vehicle_day,
    ratings,
)
from server.orders.store import OrderStore
from server.settings import Settings
from server.tracking.queries import (
    BBOX_FORM,
    bbox_query,
    current_routes,
    positions,
    vehicles_in_bbox,
)
from server.tracking.vehicles import all_vehicles

DENSITY_CELLS_MAX = 5000


async def _routes(redis: aioredis.Redis, ids: list[str]) -> list[dict[str, Any] | None]:
    return [json.loads(r) if r else None for r in await current_routes(redis, ids)]


class ConsoleDataController(Controller):
    path = "/web"
    tags = ["web"]  # noqa: RUF012 - Litestar reads this class attribute
    guards = [staff_only]  # noqa: RUF012

    @get("/fleet", summary="Every vehicle: record, connection status, position, route")
    async def fleet(self, redis: NamedDependency[aioredis.Redis]) -> dict[str, Any]:
        records = await all_vehicles(redis)
        ids = [v.id for v in records]
        where = {p.id: p for p in await positions(redis, ids)}
        status = cast("dict[bytes, bytes]", await redis.hgetall(keys.STATUS))
        routes = await _routes(redis, ids)
        vehicles = []
        for record, route in zip(records, routes, strict=True):
            p = where.get(record.id)
            vehicles.append(
                {
                    "id": record.id,
                    "name": record.name,
                    "status": record.status,
                    "capacity": record.capacity,
                    "skills": record.skills,
                    "shift": msgspec.to_builtins(record.shift),
                    "depot": msgspec.to_builtins(record.depot),
                    "connection": status.get(record.id.encode(), b"unknown").decode(),
                    "position": None
                    if p is None
                    else {
                        "lat": p.lat,
                        "lon": p.lon,
                        "ts": p.ts,
                        "speed": p.speed,
                        "heading": p.heading,
                    },
                    "route": route,
                }
            )
        return {"vehicles": vehicles, "at": clock.now_ms()}

    @get(
        "/kpis",
        summary="On-time rate, open orders, active vehicles, utilisation, error rate, alerts, "
        "node times, orders per vehicle a day, customers' ratings",
    )
    async def kpis(
        self,
        redis: NamedDependency[aioredis.Redis],
        orders: NamedDependency[OrderStore],
        settings: NamedDependency[Settings],
    ) -> dict[str, Any]:
        async with redis.pipeline(transaction=False) as pipe:
            for status in STATUSES:
                pipe.scard(keys.orders_in(status))
            pipe.hgetall(keys.STATUS)
            pipe.hgetall(keys.FAILURES)
            pipe.hgetall(keys.ALERT_COUNTS)
            *counts, connection, failures, alerts = await pipe.execute()
        by_status = dict(zip(STATUSES, counts, strict=True))
        delivered = await orders.deliveries(limit=5000)
        on_time = sum(1 for d in delivered if d.delivered_at <= d.window_end)
        errors = [
            abs((d.delivered_at - d.promised_eta).total_seconds())
            for d in delivered
            if d.promised_eta is not None
        ]
        limit = ErrorRateLimit(settings.error_rate_limit, settings.error_rate_window_s)
        now = clock.now_ms()
        seen = await recent_attempts(redis, limit.window_s, now)
        records = await all_vehicles(redis)
        available = [v.id for v in records if v.status == "available"]
        routes = await _routes(redis, available)
        busy = {v for v, r in zip(available, routes, strict=True) if r and r.get("stops")}
        # Utilisation: vans with work over vans that could work now (available and on shift,
        # or still busy after their shift).
        moment, zone = (
            dt.datetime.fromtimestamp(now / 1000, tz=dt.UTC),
            ZoneInfo(settings.time_zone),
        )
        working = [
            v for v in records
            if v.status == "available" and (v.id in busy or v.shift_left(moment, zone) is not None)
        ]  # fmt: skip
        online = Counter(v.decode() for v in connection.values())
        return {
            "on_time_rate": on_time / len(delivered) if delivered else None,
            "delivered": len(delivered),
            "open_orders": sum(n for s, n in by_status.items() if s not in FINAL),
            "unassigned": by_status["received"],
            "orders_by_status": by_status,
            "active_vehicles": online.get("online", 0),
            "vehicles": len(records),
            "utilisation": len(busy) / len(working) if working else None,
            "failures": {k.decode(): int(v) for k, v in failures.items()},
            "eta_error_s": sum(errors) / len(errors) if errors else None,
            "eta_error_orders": len(errors),
            "error_rate": {
                "rate": seen.rate(),
                "failed": seen.failed,
                "attempts": seen.total,
                "window_s": limit.window_s,
                "limit": limit.limit,
            },
            "alerts": {k.decode(): int(v) for k, v in alerts.items()},
            "node_times_s": node_times_s(delivered),
            "orders_per_vehicle_day": orders_per_vehicle_day(delivered, now),
            "first_attempt_rate": first_attempt_rate(delivered),
            "ratings": ratings(delivered),
        }

    @get("/density", summary="Live vehicles per H3 cell inside a viewport")
    async def density(
        self,
        redis: NamedDependency[aioredis.Redis],
        bbox: Annotated[
            str, QueryParameter(description=BBOX_FORM, schema_extra=BBOX_SCHEMA)
        ] = "-180,-90,180,90",
        res: Annotated[int, QueryParameter(ge=0, le=9)] = 8,
    ) -> list[dict[str, Any]]:
        box = bbox_query(bbox)
        cells: Counter[str] = Counter()
        for p in await vehicles_in_bbox(redis, box):
            if p.cell:
                cells[parent_of(p.cell, res) if res < len(p.cell) else p.cell] += 1
        return [
            {"cell": c, "count": n, "boundary": [list(x) for x in cell_corners(c)]}
            for c, n in cells.most_common(DENSITY_CELLS_MAX)
        ]

    @get("/routes/{vehicle_id:str}", summary="A vehicle's route with its road geometry")
    async def route(
        self, vehicle_id: FromPath[str], redis: NamedDependency[aioredis.Redis], state: State
    ) -> dict[str, Any]:
        (route,) = await _routes(redis, [vehicle_id])
        if route is None:
            raise NotFound(f"no route for vehicle {vehicle_id}")
        found = await positions(redis, [vehicle_id])
        points = [(found[0].lat, found[0].lon)] if found else []
        points += [(s["lat"], s["lon"]) for s in route["stops"]]
        if route.get("end"):  # back to its depot
            points.append((route["end"]["lat"], route["end"]["lon"]))
        roads = cast("Roads | None", state.get("roads"))
        geometry = (
            [
                [round(lat, 6), round(lon, 6)]
                for lat, lon in await asyncio.to_thread(roads.path_through, points)
            ]
            if roads is not None
            else [list(p) for p in points]
        )
        return {"route": route, "geometry": geometry}
