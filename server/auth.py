"""Who may call what: bearer tokens, stored hashed, each with one role.

=============  ==============================================  ================================
role           may                                             token comes from
=============  ==============================================  ================================
``admin``      everything a dispatcher may                     ``fleet token create --role admin``
``dispatcher`` the REST API and the console socket             ``fleet token create``
vehicle        ``/ws/driver`` for its own vehicle only, and    ``POST /vehicles`` (shown once)
               ``POST /orders/{id}/proofs`` for its orders
=============  ==============================================  ================================

``/health``, ``/ready``, ``/schema`` and ``/osmand`` (Traccar devices identify themselves by id,
as in Traccar) are open. Tokens travel as ``Authorization: Bearer TOKEN``, or as ``?token=`` on a
WebSocket URL (browsers cannot set headers there). Only the SHA-256 of a token is stored
(``fleet:token:{sha256}``); the token itself is printed once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from redis.exceptions import RedisError

from server import keys

STAFF_ROLES = ("admin", "dispatcher")
_CACHE_TTL_S = 10.0


# Where a token sits in a URL: a socket's ``?token=``, a customer's tracking link.
_IN_URL = re.compile(r"(?<=[?&]token=)[^&\s\"]+|(?<=/t/)[^/?\s\"]+|(?<=/track/)[^/?\s\"]+")


def redact(text: str) -> str:
    """``text`` with every token in a URL cut to ``…``.

    >>> redact("GET /ws/console?token=s3cret&bbox=1,2,3,4 and /t/abc and /ws/track/xyz?x=1")
    'GET /ws/console?token=…&bbox=1,2,3,4 and /t/… and /ws/track/…?x=1'
    """
    return _IN_URL.sub("…", text)


class RedactTokens(logging.Filter):
    """Cut tokens out of the paths a log record carries (uvicorn logs each request's path and
    query at INFO): a log file must not hand out dispatchers' or customers' access."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str) and not record.args:
            record.msg = redact(record.msg)
        return True


def redact_server_logs(names: tuple[str, ...] = ("uvicorn.error", "uvicorn.access")) -> None:
    """Put :class:`RedactTokens` on the loggers that write request paths (once each)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(role: str, label: str = "") -> tuple[str, str, dict[Any, str]]:
    """A fresh token (192 random bits) with the key and fields to store for it."""
    if role not in STAFF_ROLES:
        raise ValueError(f"role must be one of {', '.join(STAFF_ROLES)}")
    token = secrets.token_urlsafe(24)
    fields = {"role": role, "label": label, "created": str(int(time.time()))}
    return token, keys.staff_token(token_hash(token)), fields


def issue_token(redis_url: str, role: str, label: str = "") -> str:
    """Create and store a token in the Redis at ``redis_url`` (blocking: for the CLI and tools)."""
    token, key, fields = new_token(role, label)
    client = redis.Redis.from_url(redis_url)
    try:
        client.hset(key, mapping=fields)
    finally:
        client.close()
    return token


ID_LENGTH = 12  # hex digits of a token's hash that name it in ``fleet token list|revoke``


class TokenLookupError(LookupError):
    """No stored staff token, or more than one, has the id given."""


@dataclass(frozen=True, slots=True)
class StaffToken:
    id: str  # the first ID_LENGTH hex digits of its hash: safe to show, enough to revoke
    role: str
    label: str
    created: int  # Unix seconds


def token_id(token: str) -> str:
    return token_hash(token)[:ID_LENGTH]


def _staff_token(key: str, fields: dict[str, str]) -> StaffToken:
    created = fields.get("created", "0")
    return StaffToken(
        id=key.removeprefix(keys.staff_token(""))[:ID_LENGTH],
        role=fields.get("role", "?"),
        label=fields.get("label", ""),
        created=int(created) if created.isdigit() else 0,
    )


def list_tokens(redis_url: str) -> list[StaffToken]:
    """Every staff token, oldest first (blocking: for the CLI)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        found = [
            _staff_token(key, cast("dict[str, str]", client.hgetall(key)))
            for key in client.scan_iter(match=keys.staff_token("*"), count=1000)
        ]
    finally:
        client.close()
    return sorted(found, key=lambda t: (t.created, t.id))


def revoke_token(redis_url: str, wanted: str) -> StaffToken:
    """Delete the staff token whose id (or its first 6 digits or more) is ``wanted``: REST
    calls with it fail within the role cache's 10 s, and consoles open with it are closed."""
    wanted = wanted.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{6,64}", wanted):
        raise TokenLookupError(
            f"{wanted!r} is no token id: give 6 or more of the hex digits `fleet token list` shows"
        )
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        hits = list(client.scan_iter(match=keys.staff_token(wanted + "*"), count=1000))
        if len(hits) != 1:
            raise TokenLookupError(
                f"No token has the id {wanted}"
                if not hits
                else f"{len(hits)} tokens have ids starting {wanted}: give more digits"
            )
        revoked = _staff_token(hits[0], cast("dict[str, str]", client.hgetall(hits[0])))
        client.delete(hits[0])
    finally:
        client.close()
    return revoked


def presented_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return str(connection.query_params.get("token", ""))


class RoleCache:
    """Token → role, from Redis, remembered for a few seconds (revocation takes that long)."""

    def __init__(self, redis: aioredis.Redis, *, ttl_s: float | None = None) -> None:
        self.redis = redis
        self.ttl_s = _CACHE_TTL_S if ttl_s is None else ttl_s
        self._seen: dict[str, tuple[str | None, float]] = {}

    async def role_of(self, token: str) -> str | None:
        if not token:
            return None
        now = time.monotonic()
        hit = self._seen.get(token)
        if hit is not None and hit[1] > now:
            return hit[0]
        raw = cast(
            "bytes | None", await self.redis.hget(keys.staff_token(token_hash(token)), "role")
        )
        role = raw.decode() if raw else None
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[token] = (role, now + self.ttl_s)
        return role


async def is_staff(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    roles: RoleCache = connection.app.state.roles
    return await roles.role_of(presented_token(connection)) in STAFF_ROLES


async def until_revoked(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Return once the staff token ``connection`` was opened with no longer has a staff role,
    checked as often as the role cache forgets: a long-lived socket ends when a REST call with
    the token would be refused."""
    roles: RoleCache = connection.app.state.roles
    token = presented_token(connection)
    while True:
        await asyncio.sleep(roles.ttl_s)
        try:
            if await roles.role_of(token) not in STAFF_ROLES:
                return
        except RedisError:  # cannot tell now: the socket stays, as REST calls would fail
            continue


async def _require(
    connection: ASGIConnection[Any, Any, Any, Any], roles: tuple[str, ...], missing: str, wrong: str
) -> None:
    """401 with ``missing`` without a token, 403 with ``wrong`` for a token of another role."""
    token = presented_token(connection)
    if not token:
        raise NotAuthorizedException(missing)
    cache: RoleCache = connection.app.state.roles
    if await cache.role_of(token) not in roles:
        raise PermissionDeniedException(wrong)


async def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: an admin's bearer token, or 401/403."""
    await _require(
        connection, ("admin",), "an admin token is required (Authorization: Bearer …)",
        "this needs an admin token (fleet token create --role admin)",
    )  # fmt: skip


async def staff_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a dispatcher's or an admin's bearer token, or 401/403."""
    await _require(
        connection, STAFF_ROLES, "a dispatcher token is required (Authorization: Bearer …)",
        "this token may not use the dispatcher API",
    )  # fmt: skip


async def staff_or_vehicle(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """Who calls: ``None`` for a dispatcher or an admin, the vehicle's id for a driver token;
    401 for no token or one that is neither."""
    token = presented_token(connection)
    if not token:
        raise NotAuthorizedException(
            "a dispatcher token or the vehicle's driver token is required (Authorization: Bearer …)"
        )
    cache: RoleCache = connection.app.state.roles
    if await cache.role_of(token) in STAFF_ROLES:
        return None
    vehicle = cast("bytes | None", await cache.redis.get(keys.vehicle_token(token_hash(token))))
    if vehicle is None:
        raise NotAuthorizedException("this token is neither a staff token nor a driver token")
    return vehicle.decode()
