"""REST side of tracking: register vehicles, query live positions and tracks."""

from __future__ import annotations

from typing import Annotated, Any

import redis.asyncio as aioredis
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, Parameter, QueryParameter

from server import clock, keys
from server.auth import staff_only
from server.bodies import read_body
from server.errors import BadRequest, NotFound
from server.events import queue_event
from server.openapi import BBOX_SCHEMA
from server.settings import Settings
from server.tracking import queries
from server.tracking.reports import MAX_RANGE_MS, VehicleReport, vehicle_report
from server.tracking.vehicles import (
    Vehicle,
    VehicleCreated,
    VehicleImport,
    VehicleIn,
    VehiclePatch,
    VehicleToken,
    all_vehicles,
    announce_added,
    create_vehicle,
    import_vehicles,
    replace_token,
    retire_vehicle,
    update_vehicle,
    vehicle_event,
)

VEHICLE_IMPORT_MAX_BYTES = 1024 * 1024  # about 10,000 rows: more than an import takes (5,000)

# A time range's ends, Unix ms (``from`` is a keyword in Python).
FromMs = Annotated[int | None, QueryParameter(name="from", ge=0, schema_extra={"minimum": 0})]
ToMs = Annotated[int | None, QueryParameter(name="to", ge=0, schema_extra={"minimum": 0})]


class VehiclesController(Controller):
    path = "/vehicles"
    tags = ["vehicles"]  # noqa: RUF012 - Litestar reads this class attribute
    guards = [staff_only]  # noqa: RUF012

    @post("/", summary="Register a vehicle; the answer holds its driver token (shown once)")
    async def create(
        self, data: JSONBody[VehicleIn], redis: NamedDependency[aioredis.Redis]
    ) -> VehicleCreated:
        created = await create_vehicle(redis, data)
        await announce_added(redis, [created])
        return created

    @post(
        "/import",
        summary="Register vehicles from a CSV file: all of them, or none and every error",
        description="One vehicle a row; the columns are `POST /vehicles`'s fields, their path "
        "joined with `_` (`id`, `name`, `device_id`, `capacity_parcels`, `skills`, `status`, "
        "`depot_lat`, `depot_lon`, `shift_start`, `shift_end`; see docs/PROTOCOL.md). The "
        "answer holds each vehicle's driver token, shown once.",
        status_code=201,
        raw_body=("text/csv",),
        responses={
            400: ResponseSpec(
                None, description="Rows with errors (`details.errors`: row, column, message)"
            ),
            413: ResponseSpec(None, description="Larger than 1 MiB"),
        },
    )
    async def import_csv(
        self, request: Request[Any, Any, Any], redis: NamedDependency[aioredis.Redis]
    ) -> VehicleImport:
        try:
            text = (await read_body(request, VEHICLE_IMPORT_MAX_BYTES)).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadRequest("the file must be UTF-8 text (CSV)") from None
        return await import_vehicles(redis, text)  # (each new vehicle announced)

    @patch(
        "/{vehicle_id:str}",
        summary="Change a vehicle: status, capacity, skills, name, working hours",
    )
    async def update(
        self,
        vehicle_id: FromPath[str],
        data: JSONBody[VehiclePatch],
        redis: NamedDependency[aioredis.Redis],
    ) -> Vehicle:
        changed = await update_vehicle(redis, vehicle_id, data)
        async with redis.pipeline(transaction=False) as pipe:
            queue_event(pipe, vehicle_event(changed))
            await pipe.execute()
        return changed

    @post(
        "/{vehicle_id:str}/token",
        summary="Give the vehicle a new driver token (shown once); the old one stops working",
        status_code=200,
    )
    async def new_token(
        self, vehicle_id: FromPath[str], redis: NamedDependency[aioredis.Redis]
    ) -> VehicleToken:
        return await replace_token(redis, vehicle_id)

    @delete(
        "/{vehicle_id:str}",
        summary="Remove a vehicle that is out of service and has no open order, with its "
        "live position, track and tokens",
    )
    async def retire(
        self,
        vehicle_id: FromPath[str],
        redis: NamedDependency[aioredis.Redis],
        settings: NamedDependency[Settings],
    ) -> None:
        await retire_vehicle(redis, vehicle_id, settings.h3_resolution)

    @get("/registry", summary="Every registered vehicle")
    async def registry(self, redis: NamedDependency[aioredis.Redis]) -> list[Vehicle]:
        return await all_vehicles(redis)

    @get("/", summary="Live positions inside a viewport")
    async def in_bbox(
        self,
        redis: NamedDependency[aioredis.Redis],
        bbox: str = Parameter(
            default="-180,-90,180,90",
            description=queries.BBOX_FORM,
            schema_extra=BBOX_SCHEMA,
        ),
    ) -> list[queries.Position]:
        return await queries.vehicles_in_bbox(redis, queries.bbox_query(bbox))

    @get("/nearby", summary="The nearest vehicles to a point, by road-independent distance")
    async def nearby(
        self,
        redis: NamedDependency[aioredis.Redis],
        settings: NamedDependency[Settings],
        lat: float = Parameter(ge=-90, le=90),
        lon: float = Parameter(ge=-180, le=180),
        radius_m: float = Parameter(default=2000.0, gt=0, le=50_000),
        limit: int = Parameter(default=10, ge=1, le=500),
    ) -> list[queries.Nearby]:
        return await queries.nearby(redis, lat, lon, radius_m, limit, settings.h3_resolution)

    @get(
        "/{vehicle_id:str}/report",
        summary="A vehicle's trips and stops between two times (Unix ms), with their totals",
    )
    async def report(
        self,
        vehicle_id: FromPath[str],
        redis: NamedDependency[aioredis.Redis],
        from_ms: FromMs = None,
        to_ms: ToMs = None,
        stop_min_s: float = Parameter(
            default=120.0, ge=10, le=86_400, description="the shortest halt that is a stop"
        ),
        stop_radius_m: float = Parameter(
            default=50.0, ge=10, le=1000, description="how far a stopped vehicle's fixes wander"
        ),
    ) -> VehicleReport:
        start, to = await _track_range(redis, vehicle_id, from_ms, to_ms, 24 * 3_600_000)
        if to - start > MAX_RANGE_MS:
            raise BadRequest("a report covers 7 days at most", details={"field": "from"})
        return await vehicle_report(
            redis, vehicle_id, start, to, stop_min_s=stop_min_s, stop_radius_m=stop_radius_m
        )

    @get("/{vehicle_id:str}/track", summary="A vehicle's pings between two times (Unix ms)")
    async def track(
        self,
        vehicle_id: FromPath[str],
        redis: NamedDependency[aioredis.Redis],
        from_ms: FromMs = None,
        to_ms: ToMs = None,
        limit: int = Parameter(default=10_000, ge=1, le=100_000),
    ) -> list[queries.TrackPoint]:
        start, to = await _track_range(redis, vehicle_id, from_ms, to_ms, 3_600_000)
        return await queries.track(redis, vehicle_id, start, to, limit)


async def _track_range(
    redis: aioredis.Redis, vehicle_id: str, from_ms: int | None, to_ms: int | None, back_ms: int
) -> tuple[int, int]:
    """``(from, to)`` for a vehicle's track: ``to`` defaults to now, ``from`` to ``back_ms``
    before it; 404 for a vehicle not registered."""
    if not await redis.hexists(keys.VEHICLES, vehicle_id):
        raise NotFound(f"no vehicle {vehicle_id}")
    to = to_ms if to_ms is not None else clock.now_ms() + 60_000
    start = from_ms if from_ms is not None else max(0, to - back_ms)
    if start > to:
        raise BadRequest("from must not be after to", details={"field": "from"})
    return start, to
