"""``/ws/driver``: a vehicle's app streams batches of pings; each batch is acked once in Redis.

Close codes (also in ``docs/PROTOCOL.md``):

====  =====================================================================
4001  no token, or a token that belongs to no vehicle; or the token was replaced
      (``POST /vehicles/{id}/token``) while the socket was open
4029  too many messages a second, for too long (after ``rate_limited`` errors)
1009  a frame larger than ``FLEET_WS_MAX_FRAME_BYTES`` (closed by the protocol layer)
1011  the server cannot reach Redis for a while
====  =====================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

import msgspec
from litestar import WebSocket, websocket
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect
from redis.exceptions import RedisError

from geo.fences import Inside
from server import keys
from server.auth import token_hash
from server.background import stop_task
from server.nativews import NativeWebSocket
from server.orders.store import OrderStore
from server.settings import Settings
from server.sockets import receive_frame
from server.tracking.console import TOKEN_REPLACED, DriverLink, Hub
from server.tracking.filters import Fix, Limits
from server.tracking.geofences import GeofenceTracker, membership_of
from server.tracking.ingest import LIVE_FIX, Ingestor, fix_of
from server.tracking.ratelimit import TokenBucket
from server.tracking.stops import StopHandler
from server.tracking.wire import (
    Ack,
    StopEvent,
    WireError,
    decode_client,
    encode,
    error_frame,
    peek_seq,
)
from server.wsframes import Handshake

log = logging.getLogger("fleet.driver")

CLOSE_UNAUTHORIZED = 4001
TOKEN_REPLACED_REASON = "this vehicle's token has been replaced"
CLOSE_RATE_LIMITED = 4029
CLOSE_UNAVAILABLE = 1011
MAX_RATE_STRIKES = 50  # consecutive rate-limited messages before the socket is closed
MAX_REDIS_FAILURES = 5


@dataclass(frozen=True, slots=True)
class DriverServices:
    """What a driver connection needs from its process; built once by the app's lifespan."""

    ingestor: Ingestor
    limits: Limits
    fences: GeofenceTracker
    hub: Hub
    orders: OrderStore
    settings: Settings


class Channel(Protocol):
    """A driver's open WebSocket, whichever server layer carries it."""

    async def receive(self) -> str | bytes | None: ...  # ``None``: the client has gone

    async def send(self, data: bytes) -> None: ...  # one text message (UTF-8 JSON)

    async def close(self, code: int, reason: str) -> None: ...


async def native_driver(socket: NativeWebSocket, request: Handshake, state: State) -> None:
    """``/ws/driver`` served by :mod:`server.nativews` (how ``fleet serve`` runs it)."""
    token = parse_qs(request.query).get("token", [""])[0]
    await serve_driver(socket, token, state.driver)


@websocket("/ws/driver")
async def driver_socket(
    socket: WebSocket[Any, Any, Any], driver: NamedDependency[DriverServices]
) -> None:
    """``/ws/driver`` through ASGI, for an ASGI server other than fleet's own."""
    await socket.accept()
    await serve_driver(_AsgiChannel(socket), socket.query_params.get("token", ""), driver)


class _AsgiChannel:
    def __init__(self, socket: WebSocket[Any, Any, Any]) -> None:
        self.socket = socket
        self.sending = asyncio.Lock()  # acks and pushed routes share the socket

    async def receive(self) -> str | bytes | None:
        try:
            return await receive_frame(self.socket)
        except WebSocketDisconnect:
            return None

    async def send(self, data: bytes) -> None:
        async with self.sending:
            with contextlib.suppress(WebSocketDisconnect):
                await self.socket.send_text(data.decode())

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            await self.socket.close(code, reason)


async def serve_driver(channel: Channel, token: str, services: DriverServices) -> None:
    """One driver connection, from the token check to the client going away."""
    ingestor = services.ingestor
    # Two round trips on the ping path's own connection: thousands of drivers reconnecting at
    # once (a server restart) must not queue for the shared pool.
    fast = ingestor.connection
    raw_id = await fast.call("GET", keys.vehicle_token(token_hash(token))) if token else None
    if raw_id is None:
        await channel.close(CLOSE_UNAUTHORIZED, "unknown or missing vehicle token")
        return
    vehicle_id = raw_id.decode()
    with services.hub.driver_link(vehicle_id) as link:
        live, fences_raw, current, still = await asyncio.gather(
            fast.call("HMGET", keys.live(vehicle_id), *LIVE_FIX),
            fast.call("GET", keys.in_fences(vehicle_id)),
            fast.call("GET", keys.route(vehicle_id)),
            # Again, now that a replacement would reach this socket: one made in between
            # would have been missed.
            fast.call("GET", keys.vehicle_token(token_hash(token))),
        )
        if still != raw_id:
            await channel.close(CLOSE_UNAUTHORIZED, TOKEN_REPLACED_REASON)
            return
        last, inside = fix_of(live), membership_of(fences_raw)
        # (else a newer one came meanwhile, or the token was replaced)
        if current is not None and link.route is None and not link.revoked:
            link.push(msgspec.json.decode(current), current)
        pusher = asyncio.create_task(_push_routes(channel, link.routes))
        try:
            stops = StopHandler(services.orders, ingestor.redis, vehicle_id, services.settings)
            await _serve_driver(channel, vehicle_id, services, stops, last, inside, link)
        finally:
            await stop_task(pusher, log)


async def _push_routes(channel: Channel, routes: asyncio.Queue[bytes]) -> None:
    """Send the vehicle's new routes; close the socket once its token has been replaced."""
    while (route := await routes.get()) != TOKEN_REPLACED:
        await channel.send(route)
    await channel.close(CLOSE_UNAUTHORIZED, TOKEN_REPLACED_REASON)


async def _serve_driver(
    channel: Channel,
    vehicle_id: str,
    services: DriverServices,
    stops: StopHandler,
    last: Fix | None,
    inside: Inside,
    link: DriverLink,
) -> None:
    ingestor, limits, fences = services.ingestor, services.limits, services.fences
    bucket = TokenBucket(limits.max_messages_per_s, 2 * limits.max_messages_per_s)
    strikes = redis_failures = 0
    while (frame := await channel.receive()) is not None:
        if link.revoked:  # what arrived before the close is not the token's any more
            return
        if not bucket.take():
            strikes += 1
            if strikes > MAX_RATE_STRIKES:
                await channel.close(CLOSE_RATE_LIMITED, "too many messages per second")
                return
            message = f"at most {limits.max_messages_per_s:g} messages a second; resend later"
            await channel.send(error_frame("rate_limited", message, peek_seq(frame)))
            continue
        strikes = 0
        try:
            batch = decode_client(frame, max_batch=limits.max_batch)
        except WireError as exc:
            await channel.send(error_frame(exc.code, exc.message, exc.seq))
            continue
        if isinstance(batch, StopEvent):
            await channel.send(await stops.handle(batch))
            continue
        try:
            result = await ingestor.ingest(vehicle_id, batch.pings, last)
        except RedisError as exc:
            redis_failures += 1
            log.warning("ingest for %s failed: %s", vehicle_id, exc)
            if redis_failures >= MAX_REDIS_FAILURES:
                await channel.close(CLOSE_UNAVAILABLE, "state store unavailable")
                return
            await channel.send(
                error_frame("unavailable", "not stored; resend the batch", batch.seq)
            )
            continue
        redis_failures = 0
        if result.fix is not None and (last is None or result.fix.ts > last.ts):
            inside = await fences.check(vehicle_id, result.fix, inside)
        last = result.fix
        ack = Ack(
            seq=batch.seq,
            accepted=result.accepted,
            duplicates=result.duplicates,
            rejected=result.rejected,
        )
        await channel.send(encode(ack))
