"""``/ws/driver``: a vehicle's app streams batches of pings; each batch is acked once in Redis.

Close codes (also in ``docs/PROTOCOL.md``):

====  =====================================================================
4001  no token, or a token that belongs to no vehicle
4029  too many messages a second, for too long (after ``rate_limited`` errors)
1009  a frame larger than ``FLEET_WS_MAX_FRAME_BYTES`` (closed by the protocol layer)
1011  the server cannot reach Redis for a while
====  =====================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect
from redis.exceptions import RedisError

from geo.fences import Inside
from server import keys
from server.orders.store import OrderStore
from server.settings import Settings
from server.sockets import receive_frame
from server.tracking.console import Hub
from server.tracking.filters import Fix, Limits
from server.tracking.geofences import GeofenceTracker
from server.tracking.ingest import Ingestor
from server.tracking.ratelimit import TokenBucket
from server.tracking.stops import StopHandler
from server.tracking.vehicles import vehicle_for_token
from server.tracking.wire import (
    Ack,
    StopEvent,
    WireError,
    decode_client,
    encode,
    error_frame,
    peek_seq,
)

log = logging.getLogger("fleet.driver")

CLOSE_UNAUTHORIZED = 4001
CLOSE_RATE_LIMITED = 4029
CLOSE_UNAVAILABLE = 1011
MAX_RATE_STRIKES = 50  # consecutive rate-limited messages before the socket is closed
MAX_REDIS_FAILURES = 5


@websocket("/ws/driver")
async def driver_socket(
    socket: WebSocket[Any, Any, Any],
    ingestor: NamedDependency[Ingestor],
    limits: NamedDependency[Limits],
    fences: NamedDependency[GeofenceTracker],
    hub: NamedDependency[Hub],
    orders: NamedDependency[OrderStore],
    settings: NamedDependency[Settings],
) -> None:
    token = socket.query_params.get("token", "")
    await socket.accept()
    vehicle_id = await vehicle_for_token(ingestor.redis, token)
    if vehicle_id is None:
        await socket.close(CLOSE_UNAUTHORIZED, "unknown or missing vehicle token")
        return
    last = await ingestor.last_fix(vehicle_id)
    inside = await fences.membership(vehicle_id)
    sending = asyncio.Lock()  # acks and pushed routes share the socket
    with hub.watch_routes(vehicle_id) as routes:
        current = cast("bytes | None", await ingestor.redis.get(keys.route(vehicle_id)))
        if current is not None:
            routes.put_nowait(current)
        pusher = asyncio.create_task(_push_routes(socket, routes, sending))
        try:
            stops = StopHandler(orders, ingestor.redis, vehicle_id, settings.failed_policy)
            await _serve_driver(
                socket, vehicle_id, ingestor, limits, fences, stops, last, inside, sending
            )
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher


async def _push_routes(
    socket: WebSocket[Any, Any, Any], routes: asyncio.Queue[bytes], sending: asyncio.Lock
) -> None:
    while True:
        route = await routes.get()
        await _send(socket, sending, route.decode())


async def _serve_driver(
    socket: WebSocket[Any, Any, Any],
    vehicle_id: str,
    ingestor: Ingestor,
    limits: Limits,
    fences: GeofenceTracker,
    stops: StopHandler,
    last: Fix | None,
    inside: Inside,
    sending: asyncio.Lock,
) -> None:
    bucket = TokenBucket(limits.max_messages_per_s, 2 * limits.max_messages_per_s)
    strikes = redis_failures = 0
    try:
        while (frame := await receive_frame(socket)) is not None:
            if not bucket.take():
                strikes += 1
                if strikes > MAX_RATE_STRIKES:
                    await socket.close(CLOSE_RATE_LIMITED, "too many messages per second")
                    return
                message = f"at most {limits.max_messages_per_s:g} messages a second; resend later"
                await _send(socket, sending, error_frame("rate_limited", message, peek_seq(frame)))
                continue
            strikes = 0
            try:
                batch = decode_client(frame, max_batch=limits.max_batch)
            except WireError as exc:
                await _send(socket, sending, error_frame(exc.code, exc.message, exc.seq))
                continue
            if isinstance(batch, StopEvent):
                await _send(socket, sending, await stops.handle(batch))
                continue
            try:
                result = await ingestor.ingest(vehicle_id, batch.pings, last)
            except RedisError as exc:
                redis_failures += 1
                log.warning("ingest for %s failed: %s", vehicle_id, exc)
                if redis_failures >= MAX_REDIS_FAILURES:
                    await socket.close(CLOSE_UNAVAILABLE, "state store unavailable")
                    return
                await _send(
                    socket,
                    sending,
                    error_frame("unavailable", "not stored; resend the batch", batch.seq),
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
            await _send(socket, sending, encode(ack).decode())
    except WebSocketDisconnect:
        return


async def _send(socket: WebSocket[Any, Any, Any], sending: asyncio.Lock, text: str) -> None:
    async with sending:
        await socket.send_text(text)
