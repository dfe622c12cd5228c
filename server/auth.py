"""Who may call what: bearer tokens, stored hashed, each with one role.

=============  ==============================================  ================================
role           may                                             token comes from
=============  ==============================================  ================================
``admin``      everything a dispatcher may                     ``fleet token create --role admin``
``dispatcher`` the REST API and the console socket             ``fleet token create``
vehicle        ``/ws/driver`` for its own vehicle only         ``POST /vehicles`` (shown once)
=============  ==============================================  ================================

``/health``, ``/ready``, ``/schema`` and ``/osmand`` (Traccar devices identify themselves by id,
as in Traccar) are open. Tokens travel as ``Authorization: Bearer TOKEN``, or as ``?token=`` on a
WebSocket URL (browsers cannot set headers there). Only the SHA-256 of a token is stored
(``fleet:token:{sha256}``); the token itself is printed once.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

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


def presented_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return str(connection.query_params.get("token", ""))


class RoleCache:
    """Token → role, from Redis, remembered for a few seconds (revocation takes that long)."""

    def __init__(self, redis: aioredis.Redis, *, ttl_s: float = _CACHE_TTL_S) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
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


async def staff_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a dispatcher's or an admin's bearer token, or 401/403."""
    token = presented_token(connection)
    if not token:
        raise NotAuthorizedException("a dispatcher token is required (Authorization: Bearer …)")
    roles: RoleCache = connection.app.state.roles
    if await roles.role_of(token) not in STAFF_ROLES:
        raise PermissionDeniedException("this token may not use the dispatcher API")
