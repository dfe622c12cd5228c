"""Vehicle registry: the record (capacity, skills, status, working hours), an OsmAnd device id,
and a driver token stored hashed (replaceable). A vehicle whose status is not ``available`` is
never planned, nor one between its shifts (``shift``: daily ``start`` to ``end`` in
``FLEET_TIME_ZONE``; see ``dispatch/shifts.py``)."""

from __future__ import annotations

import datetime as dt
import math
import re
import secrets
from typing import Annotated, Any, Literal, cast
from zoneinfo import ZoneInfo

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from dispatch.shifts import on_shift, parse_clock
from server import keys
from server.auth import token_hash
from server.bulk import hmget_each
from server.errors import BadRequest, Conflict, NotFound
from server.events import queue_event
from server.orders import csvimport
from server.orders.lifecycle import OPEN

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


Status = Literal["available", "maintenance", "off_shift", "broken_down"]
Capacity = dict[str, Annotated[float, msgspec.Meta(ge=0)]]
ClockTime = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class Depot(msgspec.Struct, forbid_unknown_fields=True):
    """Where the vehicle ends its shift: its routes end there (the planner counts the way
    back, and the end of the shift is when it must be back)."""

    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]


class Shift(msgspec.Struct, forbid_unknown_fields=True):
    """Daily working hours, local time (``FLEET_TIME_ZONE``); an end at or before the start
    runs overnight."""

    start: ClockTime
    end: ClockTime


def _default_capacity() -> dict[str, float]:
    return {"parcels": 100.0}


class VehicleIn(msgspec.Struct, forbid_unknown_fields=True):
    id: str | None = None
    name: str | None = None
    device_id: str | None = None
    capacity: Capacity = msgspec.field(default_factory=_default_capacity)
    skills: list[str] = msgspec.field(default_factory=list)
    status: Status = "available"
    shift: Shift | None = None  # None: any time
    depot: Depot | None = None  # None: routes end at the last stop


class VehiclePatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: str | None = None
    capacity: Capacity | None = None
    skills: list[str] | None = None
    status: Status | None = None
    shift: Shift | msgspec.UnsetType | None = msgspec.UNSET  # null: no working hours
    depot: Depot | msgspec.UnsetType | None = msgspec.UNSET  # null: end at the last stop


class Vehicle(msgspec.Struct):
    id: str
    name: str
    device_id: str
    capacity: dict[str, float] = msgspec.field(default_factory=_default_capacity)
    skills: list[str] = msgspec.field(default_factory=list)
    status: Status = "available"
    shift: Shift | None = None
    depot: Depot | None = None

    def shift_left(self, now: dt.datetime, zone: ZoneInfo) -> float | None:
        """Seconds left of the shift in progress at ``now`` (infinite without working hours);
        None between shifts."""
        if self.shift is None:
            return math.inf
        start, end = parse_clock(self.shift.start), parse_clock(self.shift.end)
        return on_shift(now, start, end, zone)


class VehicleCreated(msgspec.Struct):
    id: str
    name: str
    device_id: str
    capacity: dict[str, float]
    skills: list[str]
    status: Status
    shift: Shift | None
    depot: Depot | None
    token: str  # shown once: only its hash is stored


def _check_id(value: str, field: str) -> str:
    if not _ID.match(value):
        raise BadRequest(
            f"{field} must be 1-64 letters, digits, '_', '.' or '-'", details={"field": field}
        )
    return value


def _check_shift(shift: Shift | None) -> None:
    if shift is not None and shift.start == shift.end:
        raise BadRequest(
            "a shift must not end when it starts (no working hours: leave shift out)",
            details={"field": "shift"},
        )


async def create_vehicle(redis: aioredis.Redis, data: VehicleIn) -> VehicleCreated:
    _check_shift(data.shift)
    vehicle_id = _check_id(data.id, "id") if data.id else "v-" + secrets.token_hex(4)
    device_id = _check_id(data.device_id, "device_id") if data.device_id else vehicle_id
    record = Vehicle(
        id=vehicle_id,
        name=data.name or vehicle_id,
        device_id=device_id,
        capacity=data.capacity,
        skills=data.skills,
        status=data.status,
        shift=data.shift,
        depot=data.depot,
    )
    if not await redis.hsetnx(keys.VEHICLES, vehicle_id, msgspec.json.encode(record)):
        raise Conflict(f"vehicle {vehicle_id} exists already", details={"field": "id"})
    if not await redis.set(keys.device(device_id), vehicle_id, nx=True):
        await redis.hdel(keys.VEHICLES, vehicle_id)
        raise Conflict(f"device id {device_id} is taken", details={"field": "device_id"})
    token = secrets.token_urlsafe(24)  # 192 random bits
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.vehicle_token(token_hash(token)), vehicle_id)
        pipe.hset(keys.VEHICLE_TOKENS, vehicle_id, token_hash(token))
        await pipe.execute()
    return VehicleCreated(
        id=vehicle_id,
        name=record.name,
        device_id=device_id,
        capacity=record.capacity,
        skills=record.skills,
        status=record.status,
        shift=record.shift,
        depot=record.depot,
        token=token,
    )


# A fleet from a spreadsheet: one vehicle a row, the columns POST /vehicles's fields joined
# with `_` (`id`, `name`, `device_id`, `capacity_parcels`, `capacity_kg`, `skills` with `;`,
# `status`, `depot_lat`, `depot_lon`, `shift_start`, `shift_end`).
VEHICLE_CSV = csvimport.Spec(
    target=VehicleIn,
    noun="vehicle",
    top=("id", "name", "device_id", "skills", "status"),
    nested=(("capacity_", "capacity"), ("depot_", "depot"), ("shift_", "shift")),
    amounts=("capacity",),
)


class ImportedVehicle(msgspec.Struct):
    row: int  # the file's row (the header is row 1)
    id: str
    token: str  # shown once: only its hash is stored


class VehicleImport(msgspec.Struct):
    created: int
    vehicles: list[ImportedVehicle]


def vehicle_event(v: Vehicle | VehicleCreated, **extra: Any) -> dict[str, Any]:
    """The ``vehicle`` event that tells consoles (and the planner) what a vehicle now is."""
    shift, depot = msgspec.to_builtins(v.shift), msgspec.to_builtins(v.depot)
    return {"type": "vehicle", "vehicle_id": v.id, **extra, "status": v.status,
            "shift": shift, "depot": depot}  # fmt: skip


async def announce_added(redis: aioredis.Redis, made: list[VehicleCreated]) -> None:
    """A ``vehicle`` event (``added``) for each new vehicle, for the consoles (the planner
    waits for its first position)."""
    async with redis.pipeline(transaction=False) as pipe:
        for v in made:
            queue_event(pipe, vehicle_event(v, added=True))
        await pipe.execute()


async def import_vehicles(redis: aioredis.Redis, text: str) -> VehicleImport:
    """Register every vehicle of a CSV text, or none: every row is checked first (types; once
    they are right, ids, working hours, ids and device ids unique in the file and not taken),
    and a 400 lists each row's first error by row and column."""
    rows, errors = csvimport.parse(text, VEHICLE_CSV)
    if not rows and not errors:
        raise BadRequest("the file holds no vehicle: a header row, then one row per vehicle")
    seen: dict[tuple[str, str], int] = {}  # ("id" | "device_id", value) → first row
    # (Beyond the types only once every row has them: a row's number is its place in rows.)
    for row, data in enumerate([] if errors else rows, start=2):
        try:
            _check_shift(data.shift)
            if data.id:
                _check_id(data.id, "id")
            if data.device_id:
                _check_id(data.device_id, "device_id")
        except BadRequest as exc:
            errors.append(csvimport.RowError(row, str(exc.details["field"]), exc.message))
            continue
        for field, value in (("id", data.id), ("device_id", data.device_id or data.id)):
            if value and (first := seen.setdefault((field, value), row)) != row:
                errors.append(csvimport.RowError(row, field, f"{value} is on row {first} too"))
                break  # (a row's first error)
    if not errors:
        ids = [d.id for d in rows if d.id]
        devices = [d.device_id or d.id for d in rows if d.device_id or d.id]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.VEHICLES, ids or ["-"])
            for device in devices:
                pipe.exists(keys.device(device or ""))
            taken_ids, *taken_devices = await pipe.execute()
        taken = {i for i, there in zip(ids, taken_ids, strict=False) if there}
        taken_device = {d for d, n in zip(devices, taken_devices, strict=True) if n}
        for row, data in enumerate(rows, start=2):
            device = data.device_id or data.id
            if data.id in taken:
                errors.append(csvimport.RowError(row, "id", f"vehicle {data.id} exists already"))
            elif device in taken_device:
                column = "device_id" if data.device_id else "id"
                errors.append(csvimport.RowError(row, column, f"device id {device} is taken"))
    if errors:
        raise csvimport.rejected(errors, "no vehicle was registered")
    made: list[ImportedVehicle] = []
    registered: list[VehicleCreated] = []
    try:
        for row, data in enumerate(rows, start=2):
            try:
                created = await create_vehicle(redis, data)
            except Conflict as exc:  # registered by someone else since the check: say so
                raise Conflict(
                    f"row {row}: {exc.message}; the rows before it were registered",
                    details={"row": row, "created": [msgspec.to_builtins(v) for v in made]},
                ) from None
            made.append(ImportedVehicle(row=row, id=created.id, token=created.token))
            registered.append(created)
    finally:
        await announce_added(redis, registered)
    return VehicleImport(created=len(made), vehicles=made)


class VehicleToken(msgspec.Struct):
    id: str
    token: str  # shown once: only its hash is stored


async def replace_token(redis: aioredis.Redis, vehicle_id: str) -> VehicleToken:
    """Give the vehicle a new driver token: the one it had stops working at once, and the
    driver sockets open with it are closed (a lost or stolen phone, a driver who left)."""
    if not await redis.hexists(keys.VEHICLES, vehicle_id):
        raise NotFound(f"no vehicle {vehicle_id}")
    token = secrets.token_urlsafe(24)
    fresh = token_hash(token)
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(keys.VEHICLE_TOKENS)
                old = await _token_hashes(pipe, redis, vehicle_id)
                pipe.multi()  # type: ignore[no-untyped-call]
                for stale in old:
                    pipe.delete(keys.vehicle_token(stale))
                pipe.set(keys.vehicle_token(fresh), vehicle_id)
                pipe.hset(keys.VEHICLE_TOKENS, vehicle_id, fresh)
                queue_event(pipe, {"type": "vehicle_token", "vehicle_id": vehicle_id})
                await pipe.execute()
                return VehicleToken(id=vehicle_id, token=token)
            except WatchError:  # replaced at the same moment by another request: again
                continue


async def _token_hashes(pipe: Any, redis: aioredis.Redis, vehicle_id: str) -> list[str]:
    """The hashes of the vehicle's driver tokens: the indexed one (read on ``pipe``, which may
    be WATCHing), else those issued before ``fleet:vtokens`` recorded them."""
    current = cast("bytes | None", await pipe.hget(keys.VEHICLE_TOKENS, vehicle_id))
    return [current.decode()] if current else await _unindexed_tokens(redis, vehicle_id)


async def _unindexed_tokens(redis: aioredis.Redis, vehicle_id: str) -> list[str]:
    """The hashes of a vehicle's tokens issued before ``fleet:vtokens`` recorded them."""
    found = []
    prefix = keys.vehicle_token("")
    async for key in redis.scan_iter(match=prefix + "*", count=1000):
        if await redis.get(key) == vehicle_id.encode():
            found.append(key.decode().removeprefix(prefix))
    return found


IN_SERVICE = "available"


async def retire_vehicle(redis: aioredis.Redis, vehicle_id: str, resolution: int) -> Vehicle:
    """Remove a vehicle and everything the server holds of it (registry record, device id,
    driver token, live position, track, route, status). It must be out of service with no open
    order on it: the planner has then moved its orders to other vehicles. Its driver sockets are
    closed (``vehicle_token`` event) and consoles drop it (``vehicle`` event, ``removed``)."""
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(keys.VEHICLES)
                raw = cast("bytes | None", await pipe.hget(keys.VEHICLES, vehicle_id))
                if raw is None:
                    raise NotFound(f"no vehicle {vehicle_id}")
                record = msgspec.json.decode(raw, type=Vehicle)
                await _check_retirable(redis, record)
                tokens = await _token_hashes(pipe, redis, vehicle_id)
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.hdel(keys.VEHICLES, vehicle_id)
                pipe.delete(keys.device(record.device_id))
                pipe.hdel(keys.VEHICLE_TOKENS, vehicle_id)
                for stale in tokens:
                    pipe.delete(keys.vehicle_token(stale))
                queue_event(pipe, {"type": "vehicle_token", "vehicle_id": vehicle_id})
                queue_event(pipe, {"type": "vehicle", "vehicle_id": vehicle_id, "removed": True})
                await pipe.execute()
                break
            except WatchError:  # the registry changed meanwhile: look again
                continue
    await forget_live_state(redis, [vehicle_id], resolution)
    return record


async def _check_retirable(redis: aioredis.Redis, record: Vehicle) -> None:
    if record.status == IN_SERVICE:
        raise Conflict(
            f"{record.id} is in service: set its status to maintenance or off_shift first (its "
            "orders go to other vehicles), then remove it",
            details={"field": "status"},
        )
    open_ids = sorted(
        i.decode()
        for i in cast("set[bytes]", await redis.sunion([keys.orders_in(s) for s in OPEN]))
    )
    on_it = [
        order_id
        for order_id, (holder,) in zip(
            open_ids,
            await hmget_each(redis, [keys.order(i) for i in open_ids], ["vehicle_id"]),
            strict=True,
        )
        if holder is not None and holder.decode() == record.id
    ]
    pins = cast("dict[bytes, bytes]", await redis.hgetall(keys.ORDER_PINS))
    open_set = set(open_ids)  # a pin outlives its order's end, and then means nothing
    on_it += [
        o.decode() for o, v in pins.items() if v.decode() == record.id and o.decode() in open_set
    ]
    if on_it:
        raise Conflict(
            f"{record.id} still has open orders ({', '.join(sorted(set(on_it))[:10])}): "
            "reassign or finish them first",
            details={"orders": sorted(set(on_it))},
        )


async def forget_live_state(redis: aioredis.Redis, vehicle_ids: list[str], resolution: int) -> None:
    """Delete the live state, track and route of vehicles that are no longer registered (also
    what a ping already on its way when the vehicle was removed wrote back)."""
    if not vehicle_ids:
        return
    cells = await hmget_each(redis, [keys.live(v) for v in vehicle_ids], ["cell"])
    async with redis.pipeline(transaction=True) as pipe:
        for vehicle_id, (cell,) in zip(vehicle_ids, cells, strict=True):
            if cell is not None:
                pipe.srem(keys.cell(resolution, cell.decode()), vehicle_id)
            pipe.delete(
                keys.live(vehicle_id), keys.track(vehicle_id), keys.late(vehicle_id),
                keys.in_fences(vehicle_id), keys.route(vehicle_id),
            )  # fmt: skip
            pipe.zrem(keys.LASTSEEN, vehicle_id)
            pipe.hdel(keys.STATUS, vehicle_id)
        await pipe.execute()


async def vehicle_ids(redis: aioredis.Redis) -> list[str]:
    """Every registered vehicle's id, sorted (no record decoded)."""
    return sorted(raw.decode() for raw in cast("list[bytes]", await redis.hkeys(keys.VEHICLES)))


async def all_vehicles(redis: aioredis.Redis) -> list[Vehicle]:
    raw = cast("dict[bytes, bytes]", await redis.hgetall(keys.VEHICLES))
    return sorted((msgspec.json.decode(v, type=Vehicle) for v in raw.values()), key=lambda v: v.id)


async def get_vehicle(redis: aioredis.Redis, vehicle_id: str) -> Vehicle:
    raw = cast("bytes | None", await redis.hget(keys.VEHICLES, vehicle_id))
    if raw is None:
        raise NotFound(f"no vehicle {vehicle_id}")
    return msgspec.json.decode(raw, type=Vehicle)


async def update_vehicle(redis: aioredis.Redis, vehicle_id: str, patch: VehiclePatch) -> Vehicle:
    record = await get_vehicle(redis, vehicle_id)
    if not isinstance(patch.shift, msgspec.UnsetType):
        _check_shift(patch.shift)
    changed = msgspec.convert(
        {**msgspec.to_builtins(record), **msgspec.to_builtins(patch)}, Vehicle
    )
    await redis.hset(keys.VEHICLES, vehicle_id, msgspec.json.encode(changed))
    return changed


async def vehicle_for_device(redis: aioredis.Redis, device_id: str) -> str | None:
    return _text(await redis.get(keys.device(device_id)))


def _text(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw
