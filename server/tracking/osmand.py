"""The OsmAnd protocol as Traccar speaks it (``/osmand``), so phone tracker apps work unchanged.

Query form (``GET`` or ``POST``, parameters in the query string or a form body)::

    /osmand?id=van-7&lat=60.17&lon=24.94&timestamp=1764000000&speed=12.5&bearing=90
           &altitude=12&accuracy=8&batt=77

``id`` or ``deviceid``; ``lat``+``lon`` or ``location=lat,lon``; ``timestamp`` as Unix seconds,
Unix milliseconds or ISO-8601 (default: now); ``speed`` in knots; ``bearing`` or ``heading`` in
degrees; ``altitude`` metres; ``accuracy`` metres; ``batt`` percent.

JSON form (Traccar Client 9+, ``Content-Type: application/json``)::

    {"device_id": "van-7", "location": {"timestamp": "2026-11-25T10:00:00Z",
     "coords": {"latitude": 60.17, "longitude": 24.94, "speed": 6.4, "heading": 90,
                "accuracy": 8, "altitude": 12}, "battery": {"level": 0.77}}}

(there ``speed`` is m/s). An unknown device id answers 400, as Traccar does.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import Request, Response, route
from litestar.di import NamedDependency

from server import clock
from server.errors import BadRequest
from server.tracking.geofences import GeofenceTracker
from server.tracking.ingest import Ingestor
from server.tracking.vehicles import vehicle_for_device
from server.tracking.wire import Ping

KNOT_MPS = 1852.0 / 3600.0


def parse_timestamp(raw: str | float | int | None, now_s: float) -> int:
    """Unix seconds, Unix milliseconds or ISO-8601 → Unix milliseconds (``None`` → now)."""
    if raw is None or raw == "":
        return int(now_s * 1000)
    if isinstance(raw, str):
        text = raw.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
            except ValueError:
                raise ValueError(f"timestamp {text!r} is not Unix time nor ISO-8601") from None
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=dt.UTC)
            return int(stamp.timestamp() * 1000)
    else:
        number = float(raw)
    if not math.isfinite(number) or number < 0:
        raise ValueError("timestamp must be a positive Unix time")
    # Seconds until the year 5138; anything larger is milliseconds.
    return int(number * 1000) if number < 1e11 else int(number)


def _float(params: Mapping[str, Any], *names: str) -> float | None:
    for name in names:
        value = params.get(name)
        if value not in (None, ""):
            try:
                return float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number, not {value!r}") from None
    return None


def parse_query(params: Mapping[str, Any], now_s: float) -> tuple[str, Ping]:
    """Device id and ping from the query/form parameters; ``ValueError`` names what is wrong."""
    device = str(params.get("id") or params.get("deviceid") or "").strip()
    if not device:
        raise ValueError("id (or deviceid) is required")
    lat, lon = _float(params, "lat"), _float(params, "lon")
    if (lat is None or lon is None) and params.get("location"):
        parts = str(params["location"]).split(",")
        if len(parts) != 2:
            raise ValueError("location must be 'lat,lon'")
        lat, lon = _float({"lat": parts[0]}, "lat"), _float({"lon": parts[1]}, "lon")
    if lat is None or lon is None:
        raise ValueError("lat and lon (or location) are required")
    knots = _float(params, "speed")
    ping = Ping(
        lat=lat,
        lon=lon,
        ts=parse_timestamp(params.get("timestamp"), now_s),
        speed=None if knots is None else knots * KNOT_MPS,
        heading=_float(params, "bearing", "heading"),
        accuracy=_float(params, "accuracy"),
    )
    return device, ping


class _Coords(msgspec.Struct):
    latitude: float
    longitude: float
    speed: float | None = None
    heading: float | None = None
    accuracy: float | None = None
    altitude: float | None = None


class _Location(msgspec.Struct):
    coords: _Coords
    timestamp: str | float | None = None


class _Body(msgspec.Struct):
    device_id: str
    location: _Location


def parse_json(body: bytes, now_s: float) -> tuple[str, Ping]:
    try:
        data = msgspec.json.decode(body, type=_Body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"JSON body: {exc}") from None
    coords = data.location.coords
    speed = coords.speed if coords.speed is not None and coords.speed >= 0 else None
    heading = coords.heading if coords.heading is not None and coords.heading >= 0 else None
    ping = Ping(
        lat=coords.latitude,
        lon=coords.longitude,
        ts=parse_timestamp(data.location.timestamp, now_s),
        speed=speed,
        heading=heading,
        accuracy=coords.accuracy,
    )
    return data.device_id.strip(), ping


@route("/osmand", http_method=["GET", "POST"], summary="OsmAnd / Traccar Client position report")
async def osmand(
    request: Request[Any, Any, Any],
    ingestor: NamedDependency[Ingestor],
    fences: NamedDependency[GeofenceTracker],
) -> Response[Any]:
    now_s = clock.now()
    params: dict[str, Any] = dict(request.query_params)
    try:
        if request.method == "POST" and request.content_type[0] == "application/json":
            device, ping = parse_json(await request.body(), now_s)
        else:
            if request.method == "POST":
                params.update(dict(await request.form()))
            device, ping = parse_query(params, now_s)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    vehicle_id = await vehicle_for_device(ingestor.redis, device)
    if vehicle_id is None:
        raise BadRequest(f"unknown device {device}", details={"field": "id"})
    last = await ingestor.last_fix(vehicle_id)
    result = await ingestor.ingest(vehicle_id, [ping], last)
    if result.fix is not None and (last is None or result.fix.ts > last.ts):
        await fences.check(vehicle_id, result.fix, await fences.membership(vehicle_id))
    body = {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": [r.reason for r in result.rejected],
    }
    return Response(body, status_code=200)
