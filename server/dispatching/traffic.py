"""``/traffic-events`` and ``/roads/route``: live traffic reported by dispatchers, and routes on it.

An event is stored in ``fleet:traffic`` and announced as a ``traffic`` event; every process
reloads the events into its road network and re-weights it (the planner, woken by the same event,
re-plans on the new weights). Events whose start or end lies ahead take effect when the clock
passes it: each process refreshes its weights every ``refresh_s``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import secrets
from typing import Annotated, Any, cast

import msgspec
import redis.asyncio as aioredis
from litestar import Controller, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from redis.exceptions import RedisError

from geo.errors import GeoError, NoRoute, OutsideServiceArea, TrafficEventError
from geo.roads import Roads
from geo.traffic import TrafficEvent
from server import clock, keys
from server.auth import staff_only
from server.errors import ApiError, BadRequest, NotFound, ServiceUnavailable
from server.events import queue_event
from server.openapi import LAT_LON_SCHEMA

log = logging.getLogger("fleet.traffic")


def _lat_lon(text: str, field: str) -> tuple[float, float]:
    """A ``lat,lon`` query parameter, or a 400 that names it."""
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError:
        lat = lon = math.nan
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):  # NaN fails too
        message = f"{field} is 'lat,lon', lat in [-90, 90] and lon in [-180, 180]"
        raise BadRequest(message, details={"field": field})
    return lat, lon


class Unprocessable(ApiError):
    status, code = 422, "unprocessable"


class TrafficEventIn(msgspec.Struct, forbid_unknown_fields=True):
    polygon: list[tuple[float, float]] | None = None  # [[lon, lat], …]
    line: list[tuple[float, float]] | None = None  # [[lon, lat], …] with buffer_m
    buffer_m: Annotated[float, msgspec.Meta(ge=0, le=5000)] = 0.0
    factor: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None
    closed: bool = False
    start: dt.datetime | None = None  # default: now
    end: dt.datetime | None = None  # default: until deleted
    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    label: str = ""


def to_event(data: TrafficEventIn, event_id: str, now: float) -> TrafficEvent:
    """The geo event for an API body; ``BadRequest`` naming what is wrong."""
    if data.factor is None and not data.closed:
        raise BadRequest("give a factor in (0, 1] or closed: true", details={"field": "factor"})
    try:
        return TrafficEvent(
            id=event_id,
            factor=data.factor if data.factor is not None else 1.0,
            closed=data.closed,
            polygon=data.polygon,
            line=data.line,
            buffer_m=data.buffer_m,
            start_s=data.start.timestamp() if data.start else now,
            end_s=data.end.timestamp() if data.end else None,
        )
    except TrafficEventError as exc:
        raise BadRequest(str(exc)) from None


async def reload_traffic(redis: aioredis.Redis, roads: Roads, now: float) -> None:
    """Make the road network's events those stored in Redis, and re-weight it."""
    raw = cast("dict[bytes, bytes]", await redis.hgetall(keys.TRAFFIC))
    wanted: dict[str, TrafficEvent] = {}
    for raw_id, body in raw.items():
        stored = json.loads(body)
        data = msgspec.convert(stored["event"], TrafficEventIn)
        wanted[raw_id.decode()] = to_event(data, raw_id.decode(), stored["created"])
    for gone in set(roads.traffic.events) - set(wanted):
        roads.traffic.remove(gone)
    for event_id, event in wanted.items():
        if roads.traffic.events.get(event_id) != event:
            roads.traffic.add(event)
    roads.refresh(now)


async def keep_traffic_current(redis: aioredis.Redis, roads: Roads, *, refresh_s: float) -> None:
    """Reload and re-weight every ``refresh_s`` (events that start or end on their own)."""
    while True:
        await clock.sleep(refresh_s)
        try:
            await reload_traffic(redis, roads, clock.now())
        except (OSError, GeoError, RedisError) as exc:
            log.warning("traffic refresh failed: %s", exc)
        except Exception:  # a bug met once must not freeze the traffic for good
            log.exception("traffic refresh failed")


async def _announce(redis: aioredis.Redis, event_id: str, action: str) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        queue_event(pipe, {"type": "traffic", "event_id": event_id, "action": action})
        await pipe.execute()


def _roads(state: State) -> Roads:
    roads = cast("Roads | None", state.get("roads"))
    if roads is None:
        raise ServiceUnavailable("this server has no road network")
    return roads


class TrafficController(Controller):
    path = "/traffic-events"
    tags = ["traffic"]  # noqa: RUF012 - Litestar reads this class attribute
    guards = [staff_only]  # noqa: RUF012

    @post("/", summary="Report congestion (a speed factor) or a closure over an area")
    async def create(
        self, data: JSONBody[TrafficEventIn], redis: NamedDependency[aioredis.Redis], state: State
    ) -> dict[str, Any]:
        roads = _roads(state)
        now = clock.now()
        event_id = data.id or "te-" + secrets.token_hex(4)
        event = to_event(data, event_id, now)
        touched = len(roads.traffic.arcs_of(event))
        if touched == 0:
            raise Unprocessable(
                "the area touches no road of the network", details={"field": "polygon"}
            )
        body = json.dumps({"event": msgspec.to_builtins(data), "created": now})
        await redis.hset(keys.TRAFFIC, event_id, body)
        await reload_traffic(redis, roads, now)
        await _announce(redis, event_id, "start")
        return {"id": event_id, "arcs": touched, "active": event.active(now)}

    @get("/", summary="The traffic events in force or ahead")
    async def list_events(self, redis: NamedDependency[aioredis.Redis]) -> list[dict[str, Any]]:
        raw = cast("dict[bytes, bytes]", await redis.hgetall(keys.TRAFFIC))
        return [{"id": k.decode(), **json.loads(v)["event"]} for k, v in sorted(raw.items())]

    @delete("/{event_id:str}", summary="End a traffic event now")
    async def end(
        self, event_id: FromPath[str], redis: NamedDependency[aioredis.Redis], state: State
    ) -> None:
        if not await redis.hdel(keys.TRAFFIC, event_id):
            raise NotFound(f"no traffic event {event_id}")
        await reload_traffic(redis, _roads(state), clock.now())
        await _announce(redis, event_id, "end")


class RoadsController(Controller):
    path = "/roads"
    tags = ["roads"]  # noqa: RUF012 - Litestar reads this class attribute
    guards = [staff_only]  # noqa: RUF012

    @get("/route", summary="The fastest route between two positions under current traffic")
    async def route(
        self,
        state: State,
        origin: Annotated[
            str, QueryParameter(name="from", description="lat,lon", schema_extra=LAT_LON_SCHEMA)
        ],
        destination: Annotated[
            str, QueryParameter(name="to", description="lat,lon", schema_extra=LAT_LON_SCHEMA)
        ],
    ) -> dict[str, Any]:
        roads = _roads(state)
        a, b = _lat_lon(origin, "from"), _lat_lon(destination, "to")
        try:
            route = roads.route(a, b)
        except OutsideServiceArea as exc:
            raise Unprocessable(str(exc)) from None
        except NoRoute as exc:
            raise Unprocessable(str(exc)) from None
        return {
            "time_s": round(route.time_s, 3),
            "distance_m": round(route.distance_m, 1),
            "polyline": route.polyline,
            "geometry": route.geojson(),
        }
