"""Geofences over the API and on the ping path.

``POST /geofences`` stores a zone (``fleet:geofences``) and announces the change on
``fleet:events``; every process rebuilds its :class:`~geo.fences.FenceIndex` when it hears it.
After a batch moves a vehicle, :meth:`GeofenceTracker.check` applies :func:`geo.fences.step` and,
only when the membership changed, stores it (``fleet:infence:{id}``) and publishes the
``geofence`` events (``enter``, ``exit``, ``dwell``) with the vehicle id.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, cast

import msgspec
import redis.asyncio as aioredis
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from geo.fences import Fence, FenceIndex, Inside, step
from server import keys
from server.auth import staff_only
from server.errors import BadRequest, NotFound
from server.events import queue_event
from server.tracking.filters import Fix

log = logging.getLogger("fleet.geofences")
CHANGED = json.dumps({"type": "geofences_changed"})


class GeofenceIn(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    polygon: list[tuple[float, float]]  # [[lon, lat], …] as in GeoJSON
    name: str = ""
    dwell_s: Annotated[float, msgspec.Meta(gt=0)] = 300.0


def _fence(data: GeofenceIn) -> Fence:
    ring = tuple((lat, lon) for lon, lat in data.polygon)
    if len(set(ring)) < 3:
        raise BadRequest(
            "polygon needs at least three distinct corners", details={"field": "polygon"}
        )
    if not all(-90 <= lat <= 90 and -180 <= lon <= 180 for lat, lon in ring):
        raise BadRequest(
            "polygon corners must be [lon, lat] in range", details={"field": "polygon"}
        )
    if ring[0] == ring[-1]:
        ring = ring[:-1]
    return Fence(id=data.id, name=data.name or data.id, ring=ring, dwell_s=data.dwell_s)


def membership_of(raw: bytes | None) -> Inside:
    """A vehicle's stored fence membership (``fleet:infence:{id}``), decoded."""
    return cast(Inside, json.loads(raw)) if raw else {}


class GeofenceTracker:
    def __init__(self, redis: aioredis.Redis, *, resolution: int) -> None:
        self.redis = redis
        self.resolution = resolution
        self.index = FenceIndex(resolution)

    async def reload(self) -> None:
        raw = cast("dict[bytes, bytes]", await self.redis.hgetall(keys.GEOFENCES))
        fences = [msgspec.json.decode(value, type=GeofenceIn) for value in raw.values()]
        self.index = FenceIndex.build((_fence(f) for f in fences), self.resolution)

    def on_event(self, raw: bytes) -> bool:
        """True when the event announces a change of fences (the caller reloads)."""
        return b"geofences_changed" in raw

    async def membership(self, vehicle_id: str) -> Inside:
        raw = cast("bytes | None", await self.redis.get(keys.in_fences(vehicle_id)))
        return membership_of(raw)

    async def check(self, vehicle_id: str, fix: Fix, inside: Inside) -> Inside:
        """Apply one fix; store and publish only if something changed."""
        if not self.index.fences and not inside:
            return inside
        after, events = step(inside, fix.lat, fix.lon, fix.ts, self.index)
        if after == inside:
            return inside
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.in_fences(vehicle_id), json.dumps(after))
            for event in events:
                queue_event(pipe, {**event, "vehicle_id": vehicle_id})
            await pipe.execute()
        return after


class GeofencesController(Controller):
    path = "/geofences"
    tags = ["geofences"]  # noqa: RUF012 - Litestar reads this class attribute
    guards = [staff_only]  # noqa: RUF012

    @post("/", summary="Create or replace a geofence (polygon as [[lon, lat], …])")
    async def put(
        self, data: JSONBody[GeofenceIn], redis: NamedDependency[aioredis.Redis]
    ) -> GeofenceIn:
        _fence(data)  # validates
        await redis.hset(keys.GEOFENCES, data.id, msgspec.json.encode(data))
        await redis.publish(keys.EVENTS_CHANNEL, CHANGED)
        return data

    @get("/", summary="Every geofence")
    async def list_all(self, redis: NamedDependency[aioredis.Redis]) -> list[GeofenceIn]:
        raw = cast("dict[bytes, bytes]", await redis.hgetall(keys.GEOFENCES))
        return sorted(
            (msgspec.json.decode(v, type=GeofenceIn) for v in raw.values()), key=lambda f: f.id
        )

    @delete("/{fence_id:str}", summary="Delete a geofence")
    async def remove(self, fence_id: FromPath[str], redis: NamedDependency[aioredis.Redis]) -> None:
        if not await redis.hdel(keys.GEOFENCES, fence_id):
            raise NotFound(f"no geofence {fence_id}")
        await redis.publish(keys.EVENTS_CHANNEL, CHANGED)
