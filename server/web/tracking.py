"""Customer tracking: ``GET /track/{token}`` and ``/ws/track/{token}``; the token is the key.

What a customer sees (:func:`customer_view`, pure): the order's status, its timeline of time
nodes, the promised window, the live ETA of the drop-off and whether it is at risk of being late,
and the vehicle — but only when it is close, as Google Fleet Engine does: when the customer's stop
is at most ``FLEET_TRACKING_VISIBLE_STOPS`` stops away (1 = the next stop), its ETA there is at
most ``FLEET_TRACKING_VISIBLE_MIN`` minutes away, or the vehicle is at most
``FLEET_TRACKING_VISIBLE_M`` metres from the drop-off. Otherwise only the coarse H3 cell
(resolution 7, about 5 km²) the vehicle is in. Never the customer's name, phone or address text,
never another order; only the delivery instructions the link's holder wrote themselves
(``PUT /track/{token}/instructions``, until the van is at the door: the driver reads them),
and their rating of the delivery with a comment (``PUT /track/{token}/feedback``, once it is
delivered: a rating at or below ``FLEET_LOW_RATING`` raises a ``low_rating`` alert).
A token that matches no order, or one whose order ended more than ``LINK_LIFETIME_S`` ago,
answers 404. Once the order is delivered the view lists its proofs of
delivery (photo, signature), each with the URL of its image under the same token.

The socket sends the same view (``{"type": "track", …}``) on connect and again whenever it
changes: woken by the order's events, its vehicle's ``route``/``eta`` events and positions (through
:class:`Watchers`, fed by the console hub), at most every ``MIN_INTERVAL_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any, cast

import redis.asyncio as aioredis
from litestar import Controller, Response, WebSocket, get, put, websocket
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody

from geo.cells import cell_corners, cell_of
from geo.distance import haversine_m
from server import clock, keys
from server.errors import NotFound
from server.orders.lifecycle import FINAL
from server.orders.model import AuditEntry, FeedbackIn, InstructionsIn, Order
from server.orders.proofs import ProofStore, proof_summary
from server.orders.routes import image_response
from server.orders.store import INSTRUCTABLE, RATEABLE, OrderStore
from server.settings import Settings
from server.sockets import receive_frame
from server.tracking.queries import Position, positions

log = logging.getLogger("fleet.tracking")

AREA_RESOLUTION = 7
LINK_LIFETIME_S = 7 * 24 * 3600
MIN_INTERVAL_S = 1.0
REFRESH_S = 30.0  # re-send anyway (the clock moves: stale positions, windows)
CLOSE_UNKNOWN = 4004
ON_THE_WAY = ("processed", "departed", "picked_up", "arrived")


def _ms(when: Any) -> int:
    return int(when.timestamp() * 1000)


def customer_view(
    order: Order,
    audit: Iterable[AuditEntry],
    route: dict[str, Any] | None,
    position: Position | None,
    *,
    visible_stops: int,
    visible_m: float,
    now_ms: int,
    visible_min: float = 0.0,
) -> dict[str, Any]:
    """What the holder of the order's tracking link may see, as JSON-ready data."""
    timeline = []
    for entry in audit:
        if entry.status == entry.previous:
            continue  # not a step the customer sees (e.g. a dispatcher's reassignment)
        item: dict[str, Any] = {"status": entry.status, "at": _ms(entry.at)}
        if entry.status == "failed" and entry.reason:
            item["reason"] = entry.reason
        timeline.append(item)
    eta = late_risk = stops_away = None
    if route is not None and order.status in ON_THE_WAY:
        ahead = route.get("stops", [])
        for i, stop in enumerate(ahead):
            if stop.get("order_id") == order.id and stop.get("kind") == "dropoff":
                eta, stops_away = stop.get("eta"), i + 1
                late_risk = bool(stop.get("late_risk") or stop.get("late_s", 0) > 0)
                break
    vehicle = area = None
    distance = None
    if position is not None and order.status in ON_THE_WAY:
        distance = haversine_m(position.lat, position.lon, order.dropoff.lat, order.dropoff.lon)
        near_by_stops = stops_away is not None and stops_away <= visible_stops
        soon = eta is not None and visible_min > 0 and eta - now_ms <= visible_min * 60_000
        if near_by_stops or soon or distance <= visible_m:
            vehicle = {"lat": position.lat, "lon": position.lon, "ts": position.ts,
                       "heading": position.heading}  # fmt: skip
        else:
            cell = cell_of(position.lat, position.lon, AREA_RESOLUTION)
            area = {"cell": cell, "boundary": [list(c) for c in cell_corners(cell)]}
    rated = order.feedback
    feedback = None if rated is None else {"rating": rated.rating, "comment": rated.comment}
    return {
        "status": order.status,
        "final": order.status in FINAL,
        "window": {"start": _ms(order.window.start), "end": _ms(order.window.end)},
        "eta": eta,
        "late_risk": late_risk,
        "stops_away": stops_away,
        "timeline": timeline,
        "destination": {"lat": order.dropoff.lat, "lon": order.dropoff.lon},
        "vehicle": vehicle,
        "vehicle_area": area,
        "distance_m": round(distance) if vehicle is not None and distance is not None else None,
        "visibility": {"stops": visible_stops, "metres": visible_m, "minutes": visible_min},
        # the link holder's own words, which they may change until the van is at the door
        "instructions": order.instructions,
        "instructions_open": order.status in INSTRUCTABLE,
        # the driver could not find the address: the order waits for a dispatcher's call, and
        # the customer's instructions are what helps
        "held": bool(order.held),
        # and their rating of the delivery, once it is made
        "feedback": feedback,
        "feedback_open": order.status in RATEABLE,
        "updated_at": now_ms,
    }


async def order_for_link(orders: OrderStore, token: str, now_ms: int) -> Order:
    """The order behind a tracking link, or ``NotFound`` (unknown or expired)."""
    order_id = await orders.order_for_tracking_token(token) if token else None
    if order_id is None:
        raise NotFound("unknown or expired tracking link")
    try:
        order = await orders.get(order_id)
    except NotFound:
        raise NotFound("unknown or expired tracking link") from None
    ended = order.nodes.get(order.status)
    if order.status in FINAL and ended and now_ms - _ms(ended) > LINK_LIFETIME_S * 1000:
        raise NotFound("unknown or expired tracking link")
    return order


async def view_for(
    redis: aioredis.Redis, orders: OrderStore, settings: Settings, token: str
) -> tuple[Order, dict[str, Any]]:
    now_ms = clock.now_ms()
    order = await order_for_link(orders, token, now_ms)
    route = position = None
    if order.vehicle_id:
        raw = cast("bytes | None", await redis.get(keys.route(order.vehicle_id)))
        route = json.loads(raw) if raw else None
        found = await positions(redis, [order.vehicle_id])
        position = found[0] if found else None
    view = customer_view(
        order,
        await orders.audit(order.id),
        route,
        position,
        visible_stops=settings.tracking_visible_stops,
        visible_m=settings.tracking_visible_m,
        visible_min=settings.tracking_visible_min,
        now_ms=now_ms,
    )
    view["proofs"] = []
    if order.status == "delivered":
        view["proofs"] = [
            proof_summary(p, f"/track/{token}/proofs/{p.id}")
            for p in await ProofStore(redis, orders.sealer).list(order.id)
        ]
    return order, view


class Watchers:
    """Wakes tracking sockets: by ``order:{id}``, ``vehicle:{id}`` (events) and ``pos:{id}``."""

    def __init__(self) -> None:
        self._by_key: dict[str, set[asyncio.Event]] = {}

    def on_event(self, raw: bytes) -> None:
        if not self._by_key:
            return
        try:
            event = json.loads(raw)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        if "order_id" in event:
            self._wake(f"order:{event['order_id']}")
        if "vehicle_id" in event:
            self._wake(f"vehicle:{event['vehicle_id']}")

    def on_position(self, vehicle_id: str) -> None:
        if self._by_key:
            self._wake(f"pos:{vehicle_id}")

    def _wake(self, key: str) -> None:
        for flag in self._by_key.get(key, ()):
            flag.set()

    @contextlib.contextmanager
    def watch(self, names: Iterable[str], flag: asyncio.Event) -> Iterator[None]:
        names = list(names)
        for name in names:
            self._by_key.setdefault(name, set()).add(flag)
        try:
            yield
        finally:
            for name in names:
                flags = self._by_key.get(name, set())
                flags.discard(flag)
                if not flags:
                    self._by_key.pop(name, None)


class TrackingController(Controller):
    path = "/track"
    tags = ["tracking"]  # noqa: RUF012 - Litestar reads this class attribute

    @get("/{token:str}", summary="A customer's view of their order (the token is the key)")
    async def track(
        self,
        token: FromPath[str],
        redis: NamedDependency[aioredis.Redis],
        orders: NamedDependency[OrderStore],
        settings: NamedDependency[Settings],
    ) -> dict[str, Any]:
        return (await view_for(redis, orders, settings, token))[1]

    @put(
        "/{token:str}/instructions",
        summary="The customer's delivery instructions for the driver, until the van is at the door",
        responses={409: ResponseSpec(None, description="The van is there already, or 20 changes")},
    )
    async def instruct(
        self,
        token: FromPath[str],
        data: JSONBody[InstructionsIn],
        orders: NamedDependency[OrderStore],
    ) -> dict[str, str]:
        order = await order_for_link(orders, token, clock.now_ms())
        changed = await orders.instruct(order.id, data.instructions.strip())
        return {"instructions": changed.instructions}

    @put(
        "/{token:str}/feedback",
        summary="The customer's rating of the delivery (1 to 5) and comment, once delivered",
        responses={409: ResponseSpec(None, description="Not delivered, or changed 5 times")},
    )
    async def feedback(
        self,
        token: FromPath[str],
        data: JSONBody[FeedbackIn],
        orders: NamedDependency[OrderStore],
        settings: NamedDependency[Settings],
    ) -> dict[str, Any]:
        order = await order_for_link(orders, token, clock.now_ms())
        comment = data.comment.strip()
        await orders.rate(order.id, data.rating, comment, low=settings.low_rating)
        return {"rating": data.rating, "comment": comment}

    @get(
        "/{token:str}/proofs/{proof_id:str}",
        summary="A proof of delivery's image, once the order is delivered",
        media_type="image/*",
    )
    async def proof(
        self,
        token: FromPath[str],
        proof_id: FromPath[str],
        orders: NamedDependency[OrderStore],
        proofs: NamedDependency[ProofStore],
    ) -> Response[bytes]:
        order = await order_for_link(orders, token, clock.now_ms())
        if order.status != "delivered":
            raise NotFound(f"no proof {proof_id} to show yet")
        return image_response(*await proofs.image(order.id, proof_id))


@websocket("/ws/track/{token:str}")
async def tracking_socket(
    socket: WebSocket[Any, Any, Any],
    token: FromPath[str],
    redis: NamedDependency[aioredis.Redis],
    orders: NamedDependency[OrderStore],
    settings: NamedDependency[Settings],
    state: State,
) -> None:
    await socket.accept()
    try:
        order, view = await view_for(redis, orders, settings, token)
    except NotFound:
        await socket.close(CLOSE_UNKNOWN, "unknown or expired tracking link")
        return
    watchers: Watchers = state.track_watchers
    reader = asyncio.create_task(_drain(socket))
    flag = asyncio.Event()
    try:
        sent: dict[str, Any] | None = None
        while not reader.done():
            names = _wake_names(order)
            with watchers.watch(names, flag):
                while not reader.done() and _wake_names(order) == names:
                    if sent is None or {**view, "updated_at": 0} != {**sent, "updated_at": 0}:
                        await socket.send_text(json.dumps({"type": "track", **view}))
                        sent = view
                    waiter = asyncio.create_task(flag.wait())
                    await asyncio.wait(
                        {waiter, reader},
                        timeout=clock.real_seconds(REFRESH_S),
                        return_when="FIRST_COMPLETED",
                    )
                    waiter.cancel()
                    if reader.done():
                        break
                    await clock.sleep(MIN_INTERVAL_S)  # changes close together: one update
                    flag.clear()  # before reading: a change from now on wakes us again
                    try:
                        order, view = await view_for(redis, orders, settings, token)
                    except NotFound:
                        await socket.close(CLOSE_UNKNOWN, "unknown or expired tracking link")
                        return
    except WebSocketDisconnect:
        pass
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await reader


def _wake_names(order: Order) -> list[str]:
    names = [f"order:{order.id}"]
    if order.vehicle_id:
        names += [f"vehicle:{order.vehicle_id}", f"pos:{order.vehicle_id}"]
    return names


async def _drain(socket: WebSocket[Any, Any, Any]) -> None:
    """Read (and ignore) what the client sends, until it goes."""
    while await receive_frame(socket) is not None:
        pass
