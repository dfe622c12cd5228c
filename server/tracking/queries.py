"""Read side of tracking: live positions by viewport, nearest vehicles, a vehicle's track."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import cast

import msgspec
import redis.asyncio as aioredis

from geo.cells import cells_within_radius
from geo.distance import haversine_m
from server import keys
from server.bulk import PAGE, hmget_each
from server.errors import BadRequest

BBox = tuple[float, float, float, float]  # min_lon, min_lat, max_lon, max_lat
BBOX_FORM = "min_lon,min_lat,max_lon,max_lat"


def parse_bbox(values: tuple[float, float, float, float] | list[float]) -> BBox:
    """Validate ``[min_lon, min_lat, max_lon, max_lat]``; raise ``ValueError`` otherwise."""
    if len(values) != 4:
        raise ValueError(f"bbox has four numbers: {BBOX_FORM}")
    min_lon, min_lat, max_lon, max_lat = (float(v) for v in values)
    if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
        raise ValueError(
            "bbox must be min_lon ≤ max_lon in [-180, 180], min_lat ≤ max_lat in [-90, 90]"
        )
    return (min_lon, min_lat, max_lon, max_lat)


def bbox_of_text(text: str) -> BBox:
    """``min_lon,min_lat,max_lon,max_lat`` as a query parameter gives it; ``ValueError``
    otherwise."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{BBOX_FORM} are numbers") from None
    return parse_bbox(values)


def bbox_query(text: str) -> BBox:
    """The ``bbox`` query parameter of a REST call, or a 400 that names it."""
    try:
        return bbox_of_text(text)
    except ValueError as exc:
        raise BadRequest(f"bbox: {exc}", details={"field": "bbox"}) from None


LIVE_FIELDS = ("ts", "lat", "lon", "speed", "heading", "accuracy", "cell")


class Position(msgspec.Struct, omit_defaults=True):
    id: str
    lat: float
    lon: float
    ts: int
    speed: float | None = None
    heading: float | None = None
    accuracy: float | None = None
    cell: str | None = None


class Nearby(msgspec.Struct):
    id: str
    lat: float
    lon: float
    ts: int
    distance_m: float


class TrackPoint(msgspec.Struct, omit_defaults=True):
    ts: int
    lat: float
    lon: float
    speed: float | None = None
    heading: float | None = None
    accuracy: float | None = None


def optional_float(raw: bytes | str | None) -> float | None:
    """A stored optional number: '' (or nothing) is unknown."""
    return float(raw) if raw else None


def _position(vehicle_id: str, values: list[bytes | None]) -> Position | None:
    ts, lat, lon, speed, heading, accuracy, cell = values
    if ts is None or lat is None or lon is None:
        return None
    return Position(
        id=vehicle_id,
        lat=float(lat),
        lon=float(lon),
        ts=int(ts),
        speed=optional_float(speed),
        heading=optional_float(heading),
        accuracy=optional_float(accuracy),
        cell=cell.decode() if cell else None,
    )


async def positions(redis: aioredis.Redis, vehicle_ids: Iterable[str]) -> list[Position]:
    """Live positions of ``vehicle_ids`` (those that have one), a script call per ``PAGE``."""
    ids = list(vehicle_ids)
    rows = await hmget_each(redis, [keys.live(v) for v in ids], LIVE_FIELDS)
    return [p for vid, row in zip(ids, rows, strict=True) if (p := _position(vid, row))]


async def current_routes(redis: aioredis.Redis, vehicle_ids: list[str]) -> list[bytes | None]:
    """Each vehicle's current route document (JSON), or None: one ``MGET`` per ``PAGE``."""
    out: list[bytes | None] = []
    for first in range(0, len(vehicle_ids), PAGE):
        page = vehicle_ids[first : first + PAGE]
        out += cast("list[bytes | None]", await redis.mget([keys.route(v) for v in page]))
    return out


async def vehicles_in_bbox(redis: aioredis.Redis, bbox: BBox) -> list[Position]:
    """Every vehicle whose live position is inside ``bbox``."""
    members = cast("list[bytes]", await redis.zrange(keys.LASTSEEN, 0, -1))
    ids = [raw.decode() for raw in members]
    min_lon, min_lat, max_lon, max_lat = bbox
    return [
        p
        for p in await positions(redis, ids)
        if min_lon <= p.lon <= max_lon and min_lat <= p.lat <= max_lat
    ]


async def nearby(
    redis: aioredis.Redis, lat: float, lon: float, radius_m: float, limit: int, resolution: int
) -> list[Nearby]:
    """The ``limit`` vehicles nearest to (lat, lon) within ``radius_m``: H3 candidates, then the
    exact distance."""
    cells = cells_within_radius(lat, lon, radius_m, resolution)
    async with redis.pipeline(transaction=False) as pipe:
        for cell in cells:
            pipe.smembers(keys.cell(resolution, cell))
        members = await pipe.execute()
    candidates = {raw.decode() for group in members for raw in group}
    scored = []
    for p in await positions(redis, candidates):
        distance = haversine_m(lat, lon, p.lat, p.lon)
        if distance <= radius_m:
            scored.append(Nearby(id=p.id, lat=p.lat, lon=p.lon, ts=p.ts, distance_m=distance))
    return heapq.nsmallest(limit, scored, key=lambda n: (n.distance_m, n.id))


def track_point(packed: bytes) -> TrackPoint:
    """A ping as the track stores it (``ts,lat,lon,speed,heading,accuracy``, '' = unknown)."""
    ts, lat, lon, speed, heading, accuracy = packed.split(b",")
    return TrackPoint(
        ts=int(ts),
        lat=float(lat),
        lon=float(lon),
        speed=optional_float(speed),
        heading=optional_float(heading),
        accuracy=optional_float(accuracy),
    )


def entry_points(entry_id: bytes, fields: dict[bytes, bytes]) -> list[TrackPoint]:
    """The pings of one entry of a track stream (see ``server/keys.py``): a batch's in-order
    pings, ``b`` = ``ts,lat,lon,speed,heading,accuracy`` joined by ``;``, or, as written
    before batches were one entry, one ping with its ts in the entry ID and ``p`` = the rest."""
    if b"b" in fields:
        return [track_point(packed) for packed in fields[b"b"].split(b";")]
    return [track_point(entry_id.split(b"-")[0] + b"," + fields[b"p"])]


async def track(
    redis: aioredis.Redis, vehicle_id: str, from_ms: int, to_ms: int, limit: int
) -> list[TrackPoint]:
    """The vehicle's pings with ``from_ms ≤ ts ≤ to_ms`` in time order, late arrivals included."""
    stream = keys.track(vehicle_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xrevrange(stream, max=str(from_ms), min="-", count=1)  # may hold pings ≥ from_ms
        pipe.xrange(stream, min=str(from_ms), max=str(to_ms), count=limit)
        pipe.zrange(keys.late(vehicle_id), from_ms, to_ms, byscore=True, offset=0, num=limit)
        before, in_order, late = await pipe.execute()
    entries = dict(before)
    entries.update(in_order)
    points = [
        point
        for entry_id, fields in entries.items()
        for point in entry_points(entry_id, fields)
        if from_ms <= point.ts <= to_ms
    ]
    points += [track_point(member) for member in late]
    points.sort(key=lambda p: p.ts)
    return points[:limit]
