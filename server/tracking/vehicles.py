"""Vehicle registry for tracking: a record, an OsmAnd device id, a driver token (stored hashed).

The dispatch issue grows the record (capacities, skills, shifts, status) and puts the API behind
dispatcher authentication; today ``POST /vehicles`` is open on the loopback demo server.
"""

from __future__ import annotations

import re
import secrets

import msgspec
import redis.asyncio as aioredis

from server import keys
from server.auth import token_hash
from server.errors import ApiError, BadRequest

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class Conflict(ApiError):
    status, code = 409, "conflict"


class VehicleIn(msgspec.Struct, forbid_unknown_fields=True):
    id: str | None = None
    name: str | None = None
    device_id: str | None = None


class Vehicle(msgspec.Struct):
    id: str
    name: str
    device_id: str


class VehicleCreated(msgspec.Struct):
    id: str
    name: str
    device_id: str
    token: str  # shown once: only its hash is stored


def _check_id(value: str, field: str) -> str:
    if not _ID.match(value):
        raise BadRequest(
            f"{field} must be 1-64 letters, digits, '_', '.' or '-'", details={"field": field}
        )
    return value


async def create_vehicle(redis: aioredis.Redis, data: VehicleIn) -> VehicleCreated:
    vehicle_id = _check_id(data.id, "id") if data.id else "v-" + secrets.token_hex(4)
    device_id = _check_id(data.device_id, "device_id") if data.device_id else vehicle_id
    record = Vehicle(id=vehicle_id, name=data.name or vehicle_id, device_id=device_id)
    if not await redis.hsetnx(keys.VEHICLES, vehicle_id, msgspec.json.encode(record)):
        raise Conflict(f"vehicle {vehicle_id} exists already", details={"field": "id"})
    if not await redis.set(keys.device(device_id), vehicle_id, nx=True):
        await redis.hdel(keys.VEHICLES, vehicle_id)
        raise Conflict(f"device id {device_id} is taken", details={"field": "device_id"})
    token = secrets.token_urlsafe(24)  # 192 random bits
    await redis.set(keys.vehicle_token(token_hash(token)), vehicle_id)
    return VehicleCreated(id=vehicle_id, name=record.name, device_id=device_id, token=token)


async def vehicle_for_token(redis: aioredis.Redis, token: str) -> str | None:
    if not token:
        return None
    return _text(await redis.get(keys.vehicle_token(token_hash(token))))


async def vehicle_for_device(redis: aioredis.Redis, device_id: str) -> str | None:
    return _text(await redis.get(keys.device(device_id)))


def _text(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw
