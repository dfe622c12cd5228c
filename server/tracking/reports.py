"""``GET /vehicles/{id}/report``: a vehicle's trips and stops between two times, from its track.

The track is read as ``GET /vehicles/{id}/track`` reads it (late pings included) and split by
:func:`geo.trips.trips_and_stops` in a worker thread (a day of fixes a second: about 0.2 s).
At most ``MAX_RANGE_MS`` (7 days, the default track retention) at a time.
"""

from __future__ import annotations

import asyncio

import msgspec
import redis.asyncio as aioredis

from geo.trips import Fix, Stop, Trip, trips_and_stops
from server.tracking.queries import track

MAX_RANGE_MS = 7 * 24 * 3_600_000
MAX_FIXES = 2_000_000  # a week at three fixes a second


class StopOut(msgspec.Struct, tag="stop", tag_field="type"):
    start_ts: int
    end_ts: int
    duration_s: float
    lat: float
    lon: float
    fixes: int


class TripOut(msgspec.Struct, tag="trip", tag_field="type"):
    start_ts: int
    end_ts: int
    duration_s: float
    start: tuple[float, float]  # lat, lon
    end: tuple[float, float]
    distance_m: float
    max_speed_mps: float
    mean_speed_mps: float
    fixes: int
    gaps: int  # stretches of over 10 minutes without a fix, driven


class SummaryOut(msgspec.Struct):
    distance_m: float
    driving_s: float
    stopped_s: float
    stops: int
    trips: int
    max_speed_mps: float
    fixes: int
    first_ts: int | None
    last_ts: int | None


class VehicleReport(msgspec.Struct):
    vehicle_id: str
    start: int  # the range asked for (Unix ms)
    end: int
    summary: SummaryOut
    parts: list[StopOut | TripOut]  # in time order
    truncated: bool  # more than MAX_FIXES fixes: the report covers the first ones


def _point(lat: float, lon: float) -> tuple[float, float]:
    return round(lat, 6), round(lon, 6)


def _part(part: Stop | Trip) -> StopOut | TripOut:
    if isinstance(part, Stop):
        return StopOut(
            start_ts=part.start_ts, end_ts=part.end_ts, duration_s=part.duration_s,
            lat=round(part.lat, 6), lon=round(part.lon, 6), fixes=part.fixes,
        )  # fmt: skip
    return TripOut(
        start_ts=part.start_ts, end_ts=part.end_ts, duration_s=part.duration_s,
        start=_point(*part.start), end=_point(*part.end), distance_m=round(part.distance_m, 1),
        max_speed_mps=round(part.max_speed_mps, 2), mean_speed_mps=round(part.mean_speed_mps, 2),
        fixes=part.fixes, gaps=part.gaps,
    )  # fmt: skip


async def vehicle_report(
    redis: aioredis.Redis,
    vehicle_id: str,
    start: int,
    end: int,
    *,
    stop_min_s: float,
    stop_radius_m: float,
) -> VehicleReport:
    points = await track(redis, vehicle_id, start, end, MAX_FIXES + 1)
    fixes = [Fix(ts=p.ts, lat=p.lat, lon=p.lon) for p in points[:MAX_FIXES]]
    report = await asyncio.to_thread(
        trips_and_stops, fixes, stop_min_s=stop_min_s, stop_radius_m=stop_radius_m
    )
    s = report.summary
    summary = SummaryOut(
        distance_m=round(s.distance_m, 1), driving_s=s.driving_s, stopped_s=s.stopped_s,
        stops=s.stops, trips=s.trips, max_speed_mps=round(s.max_speed_mps, 2),
        fixes=s.fixes, first_ts=s.first_ts, last_ts=s.last_ts,
    )  # fmt: skip
    return VehicleReport(
        vehicle_id=vehicle_id,
        start=start,
        end=end,
        summary=summary,
        parts=[_part(p) for p in report.parts],
        truncated=len(points) > MAX_FIXES,
    )
