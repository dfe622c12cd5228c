"""``/ws/console``: live positions for a dispatcher's viewport, never held back by a slow client.

One Redis subscription per server process (``fleet:pos``, ``fleet:events``, read by
:class:`server.resp.RespSubscriber`) feeds a :class:`Hub`.
Each console socket is a :class:`Subscriber` with a viewport and a *pending* map of vehicle id →
newest position: a new position replaces the older one not yet sent (latest wins), so the map
never holds more than one entry per vehicle in view. A sender task flushes the map as one
``positions`` frame at most every ``interval_s``. A send that does not complete within
``send_timeout_s`` means the client cannot keep up: it is closed with code 4008, and nobody else
waits for it.

Client → server::

    {"type": "viewport", "bbox": [min_lon, min_lat, max_lon, max_lat]}

Server → client::

    {"type": "positions", "vehicles": [{"id": …, "lat": …, "lon": …, "ts": …, …}, …]}
    {"type": "event", "event": {…}}
    {"type": "resync", "reason": "events_dropped"}

Events wait in a bounded queue per console; when it is full (a flood, or a client that does
not read), what waits is dropped and a ``resync`` frame takes its place: the client has missed
events and reloads the state it shows over REST, then applies the events that follow.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import redis.asyncio as aioredis
from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from server import clock, keys
from server.auth import is_staff, until_revoked
from server.resp import RespSubscriber, kwargs_of
from server.sockets import receive_frame
from server.tracking.queries import BBox, bbox_of_text, parse_bbox, vehicles_in_bbox

log = logging.getLogger("fleet.console")

CLOSE_UNAUTHORIZED = 4001
CLOSE_TOO_SLOW = 4008
CLOSE_BAD_MESSAGE = 4400
EVENTS_PER_ROUND = 50  # event frames a console gets per position round, at most
MAX_QUEUED_FRAMES = 1000  # event and error frames waiting for one console; then a resync
RESYNC_FRAME = b'{"type":"resync","reason":"events_dropped"}'

WORLD: BBox = (-180.0, -90.0, 180.0, 90.0)


class Viewport(msgspec.Struct, tag="viewport", tag_field="type"):
    bbox: tuple[float, float, float, float]


class _PositionHead(msgspec.Struct):
    """What the fan-out reads of a published position (the rest is passed on as it is)."""

    id: str
    lat: float
    lon: float


_viewport = msgspec.json.Decoder(Viewport)
_position = msgspec.json.Decoder(_PositionHead)
_encoder = msgspec.json.Encoder()


@dataclass(slots=True, eq=False)
class Subscriber:
    bbox: BBox
    pending: dict[str, bytes]
    frames: collections.deque[bytes]  # whole frames to send after the positions: events, errors
    wake: asyncio.Event
    snapshot_due: bool = True  # a fresh viewport gets a frame even when nothing is in it

    def queue(self, frame: bytes) -> None:
        """Queue a whole frame (an event, an error) to send after the positions. When
        ``MAX_QUEUED_FRAMES`` wait already, they are dropped for one ``resync`` frame: the
        client reloads what it shows, so nothing it missed stays wrong on its screen."""
        if len(self.frames) >= MAX_QUEUED_FRAMES:
            self.frames.clear()
            self.frames.append(RESYNC_FRAME)
            log.info("a console fell %d frames behind: told to resync", MAX_QUEUED_FRAMES)
        self.frames.append(frame)
        self.wake.set()

    def offer(self, vehicle_id: str, lon: float, lat: float, raw: bytes) -> None:
        b = self.bbox
        if b[0] <= lon <= b[2] and b[1] <= lat <= b[3]:
            self.pending[vehicle_id] = raw  # latest wins
            self.wake.set()


# The events a driver socket hears of (its vehicle's), as they are spelled in an event's JSON.
_FOR_DRIVERS = (b'"type": "route"', b'"type": "eta"', b'"type": "vehicle_token"')

TOKEN_REPLACED = b""  # what a driver link receives, last, once its vehicle's token is replaced


@dataclass(eq=False, slots=True)
class DriverLink:
    """What the hub tells one driver socket: its vehicle's new routes (a queue of one, the
    latest wins), and at last ``TOKEN_REPLACED`` if the token it connected with is replaced.
    ``route`` is the newest route handed to the socket: an ETA refresh of the same version
    (the ETA pass's ``eta`` event) goes to the driver as that route with its stops and end
    replaced."""

    routes: asyncio.Queue[bytes]
    revoked: bool = False
    route: dict[str, Any] | None = None

    def push(self, route: dict[str, Any], raw: bytes | None = None) -> None:
        """Queue ``route`` (``raw``: its JSON, when the caller has it) in place of one not
        sent yet."""
        self.route = route
        self._replace(_encoder.encode(route) if raw is None else raw)

    def revoke(self) -> None:
        """The token is replaced: ``TOKEN_REPLACED`` in place of a route not sent yet, and
        nothing more after it."""
        self.revoked = True
        self._replace(TOKEN_REPLACED)

    def _replace(self, frame: bytes) -> None:
        if self.routes.full():
            self.routes.get_nowait()
        self.routes.put_nowait(frame)

    def refresh(self, eta: dict[str, Any]) -> None:
        """Apply an ETA refresh to the route it is of (same version); ignore it otherwise."""
        route = self.route
        if route is not None and route.get("version") == eta.get("version"):
            self.push({**route, "stops": eta["stops"], "end": eta.get("end")})


class Hub:
    """Fans the process's Redis subscription out to its console subscribers."""

    def __init__(self, *, interval_s: float = 0.1, send_timeout_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self.send_timeout_s = send_timeout_s
        self.subscribers: set[Subscriber] = set()
        self.event_hooks: list[Callable[[bytes], None]] = []  # told of every event first
        self.position_hooks: list[Callable[[str], None]] = []  # told the id of each move
        self.driver_links: dict[str, set[DriverLink]] = {}

    def publish_positions(self, message: bytes) -> None:
        """Fan out one ``fleet:pos`` message: positions as JSON objects, one per line."""
        subscribers, hooks = self.subscribers, self.position_hooks
        for raw in message.split(b"\n"):
            try:
                head = _position.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError):
                log.warning("ignored a malformed position message: %r", raw[:200])
                continue
            for subscriber in subscribers:
                subscriber.offer(head.id, head.lon, head.lat, raw)
            for hook in hooks:
                hook(head.id)

    def publish_event(self, raw: bytes) -> None:
        for hook in self.event_hooks:
            hook(raw)
        if self.driver_links and any(kind in raw for kind in _FOR_DRIVERS):
            self._to_drivers(raw)
        frame = b'{"type":"event","event":' + raw + b"}"
        for subscriber in self.subscribers:
            subscriber.queue(frame)

    async def run(self, redis: aioredis.Redis, ready: asyncio.Event | None = None) -> None:
        """Consume ``fleet:pos`` and ``fleet:events`` until cancelled (a lifespan task); raises
        ``ConnectionError`` when the subscription is lost (the caller subscribes again)."""
        positions = keys.POSITIONS_CHANNEL.encode()

        def on_message(channel: bytes, data: bytes) -> None:
            try:
                if channel == positions:
                    self.publish_positions(data)
                else:
                    self.publish_event(data)
            except Exception:  # one bad message or hook must not end the subscription
                log.exception("handling a message on %s failed", channel.decode())

        subscriber = RespSubscriber(
            kwargs_of(redis),
            [keys.POSITIONS_CHANNEL, keys.EVENTS_CHANNEL],
            on_message,
        )
        await subscriber.run(ready)

    def _to_drivers(self, raw: bytes) -> None:
        """Hand a route, its ETAs refreshed, or the news that its driver token was replaced, to
        the driver sockets of its vehicle in this process (routes: latest wins)."""
        try:
            event = msgspec.json.decode(raw)
            vehicle_id = str(event["vehicle_id"])
            kind = event["type"]
        except (msgspec.DecodeError, KeyError, TypeError):
            return
        for link in self.driver_links.get(vehicle_id, ()):
            if link.revoked:  # nothing more for a socket that is being closed
                continue
            if kind == "vehicle_token":
                link.revoke()
            elif kind == "route":
                link.push(event, raw)
            elif kind == "eta":
                try:
                    link.refresh(event)
                except (KeyError, TypeError):  # not an ETA refresh as the ETA pass sends it
                    log.warning("ignored a malformed eta event: %r", raw[:200])

    @contextlib.contextmanager
    def driver_link(self, vehicle_id: str) -> Iterator[DriverLink]:
        """What a driver socket of the vehicle hears while the context is open."""
        link = DriverLink(asyncio.Queue(maxsize=1))
        self.driver_links.setdefault(vehicle_id, set()).add(link)
        try:
            yield link
        finally:
            links = self.driver_links.get(vehicle_id, set())
            links.discard(link)
            if not links:
                self.driver_links.pop(vehicle_id, None)

    @contextlib.asynccontextmanager
    async def subscribe(self, bbox: BBox) -> AsyncIterator[Subscriber]:
        subscriber = Subscriber(
            bbox=bbox, pending={}, frames=collections.deque(), wake=asyncio.Event()
        )
        self.subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self.subscribers.discard(subscriber)

    async def pump(self, subscriber: Subscriber, send: Callable[[str], Awaitable[None]]) -> None:
        """Send the subscriber's pending positions and events, at most every ``interval_s``.

        Each round sends the positions first, then at most ``EVENTS_PER_ROUND`` event frames:
        a flood of events (10,000 vehicles coming online at once) waits its turn instead of
        holding every position back. Raises ``TimeoutError`` when one send takes longer than
        ``send_timeout_s``.
        """
        while True:
            await subscriber.wake.wait()
            subscriber.wake.clear()
            started = clock.monotonic()
            # asyncio.timeout, not wait_for: no task per send (wait_for makes one in 3.11)
            if subscriber.pending or subscriber.snapshot_due:
                subscriber.snapshot_due = False
                batch, subscriber.pending = subscriber.pending, {}
                frame = b'{"type":"positions","vehicles":[' + b",".join(batch.values()) + b"]}"
                async with asyncio.timeout(self.send_timeout_s):
                    await send(frame.decode())
            for _ in range(min(len(subscriber.frames), EVENTS_PER_ROUND)):
                frame = subscriber.frames.popleft()
                async with asyncio.timeout(self.send_timeout_s):
                    await send(frame.decode())
            if subscriber.frames:
                subscriber.wake.set()  # the rest next round
            # Rounds start every interval_s at most: the time the sends took counts.
            await clock.sleep(max(0.0, self.interval_s - (clock.monotonic() - started)))


async def snapshot(redis: aioredis.Redis, bbox: BBox) -> list[bytes]:
    """The live positions inside ``bbox`` now, as position messages."""
    return [_encoder.encode(v) for v in await vehicles_in_bbox(redis, bbox)]


@websocket("/ws/console")
async def console_socket(
    socket: WebSocket[Any, Any, Any],
    hub: NamedDependency[Hub],
    redis: NamedDependency[aioredis.Redis],
) -> None:
    await socket.accept()
    if not await is_staff(socket):
        await socket.close(CLOSE_UNAUTHORIZED, "a dispatcher token is required (?token=)")
        return
    bbox = WORLD
    raw_bbox = socket.query_params.get("bbox")
    if raw_bbox:
        try:
            bbox = bbox_of_text(raw_bbox)
        except ValueError as exc:
            await socket.close(CLOSE_BAD_MESSAGE, f"bad bbox: {exc}"[:120])
            return
    async with hub.subscribe(bbox) as subscriber:
        for raw in await snapshot(redis, bbox):
            subscriber.pending[msgspec.json.decode(raw)["id"]] = raw
        subscriber.wake.set()
        sender = asyncio.create_task(hub.pump(subscriber, socket.send_text))
        receiver = asyncio.create_task(_read_viewports(socket, subscriber, redis))
        revoked = asyncio.create_task(until_revoked(socket))
        done, pending = await asyncio.wait(
            {sender, receiver, revoked}, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, OSError):
                await task
        if revoked in done and revoked.exception() is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    socket.close(CLOSE_UNAUTHORIZED, "the token has been revoked"),
                    hub.send_timeout_s,
                )
            return
        for task in done:
            error = task.exception()
            if isinstance(error, TimeoutError):
                # The close frame queues behind what the client does not read: bounded, so the
                # handler ends either way and the server drops the connection.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        socket.close(CLOSE_TOO_SLOW, "client too slow to keep up"),
                        hub.send_timeout_s,
                    )
            elif isinstance(error, WebSocketDisconnect | OSError):
                # Gone: closed, or dropped while a frame was on its way (the server's send
                # raises an OSError then): how a browser tab ends, nothing to warn about.
                log.debug("console socket ended by %r", error)
            elif error is not None:
                log.warning("console socket ended by %r", error)


async def _read_viewports(
    socket: WebSocket[Any, Any, Any], subscriber: Subscriber, redis: aioredis.Redis
) -> None:
    """Apply the client's viewport changes until it disconnects; answer a bad message with an
    ``error`` frame (sent by the pump, the socket's only writer)."""
    while (frame := await receive_frame(socket)) is not None:
        try:
            message = _viewport.decode(frame)
            bbox = parse_bbox(message.bbox)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            error = {"type": "error", "code": "invalid_message", "message": str(exc)}
            subscriber.queue(_encoder.encode(error))
            continue
        subscriber.bbox = bbox
        subscriber.pending = {}
        subscriber.snapshot_due = True
        for raw in await snapshot(redis, bbox):
            subscriber.pending[msgspec.json.decode(raw)["id"]] = raw
        subscriber.wake.set()
