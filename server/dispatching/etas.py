"""Live ETAs: every stop still ahead, from the vehicle's current position on current traffic.

Between planning rounds the world moves: the vehicle drives (or does not), traffic changes. Every
``interval_s`` the planner's process walks each route from the vehicle's live position — travel
time on the current weights, waiting for a window to open, service time — and, for the routes
whose ETAs moved by more than ``threshold_s``, rewrites them (same version: the stops did not
change) and publishes an ``eta`` event; a stop whose ETA passes its window's end is flagged
``late_risk``; the stops that have just become so are listed as ``slipped``, which wakes the
planner (an ETA slipping past its window is a reason to re-plan). ETAs are never before now.

A vehicle found within ``arrive_radius_m`` of its next stop, a drop-off whose goods it carries,
has arrived there: the order moves to ``arrived`` (audited ``by`` the vehicle, "within N m")
without waiting for the driver to say so; a driver's own ``arrived`` after it is acknowledged.
Likewise a vehicle driving to its next stop (``DEPART_M`` from its fix of the last pass, not at
a stop) whose order there is only ``processed`` has ``departed`` with it ("on its way to the
pickup").

Travel times are the road model's times the learned pace (:class:`dispatch.pace.AreaPace`): on
each pass, every vehicle that drove towards its next stop since the last one gives a sample
(the model's time for that stretch against the time it really took; the median, detours and
stops left out, and idle vehicles, which park where they like), for the
whole city and for the H3 cell (resolution ``PACE_RESOLUTION``) it was driven in, so hidden
congestion shows up in the ETAs within minutes, and where it is. A leg's factor is the mean of
its two ends' areas' (:func:`dispatch.pace.leg_factors`; the city-wide factor where an area has
no samples). The factors are kept at ``fleet:pace`` and ``fleet:pace:areas``; the planner
scales its matrix by the city-wide one.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import redis.asyncio as aioredis

from dispatch.pace import AreaPace, leg_factors
from geo.cells import cell_of
from geo.distance import haversine_m
from geo.errors import GeoError
from geo.polyline import decode
from geo.roads import Roads
from server import clock as server_clock
from server import keys
from server.errors import ApiError
from server.events import queue_event
from server.orders.lifecycle import FINAL
from server.orders.model import Order
from server.orders.store import OrderStore
from server.tracking.queries import Position, current_routes, positions
from server.tracking.vehicles import vehicle_ids

OFF_ROUTE_M = 150.0  # a vehicle this far from its route's road path has left it
AT_STOP_M = 30.0  # a vehicle this close to its next stop is at it (GPS noise is ~5 m)
DEPART_M = 50.0  # a vehicle this far from its fix of the last pass is on the move
DETOUR = 1.6  # a stretch's road way this many times its straight line: a fix on the wrong road
PACE_RESOLUTION = 9  # H3 cells of ~0.1 km² (edge ~170 m): a congestion hot spot covers many


def point_factors(
    points: list[tuple[float, float]], city: float, areas: dict[str, float]
) -> list[float]:
    """The learned pace at each ``(lat, lon)``: its area's, else the city-wide one."""
    if not areas:
        return [city] * len(points)
    return [areas.get(cell_of(lat, lon, PACE_RESOLUTION), city) for lat, lon in points]


class EtaRefresher:
    def __init__(
        self,
        redis: aioredis.Redis,
        orders: OrderStore,
        roads: Roads,
        *,
        threshold_s: float = 30.0,
        arrive_radius_m: float = AT_STOP_M,
        clock: Callable[[], float] = server_clock.now,
    ) -> None:
        self.redis = redis
        self.orders = orders
        self.roads = roads
        self.threshold_s = threshold_s
        self.arrive_radius_m = arrive_radius_m
        self.clock = clock
        self.pace = AreaPace()
        self._last: dict[str, Position] = {}
        self._ahead: dict[str, set[tuple[str, str]]] = {}  # per vehicle, at the last pass
        self._left: dict[str, str] = {}  # vehicle → the route geometry it was reported off
        self._fix: dict[str, tuple[float, float]] = {}  # vehicle → where it was at the last pass

    async def refresh(self) -> list[dict[str, Any]]:
        """One pass over every route; the ``eta`` and ``off_route`` events it published."""
        now = self.clock()
        vehicles = await vehicle_ids(self.redis)
        # Only vehicles with a route have ETAs to refresh or pace to teach: thousands tracked
        # with no route cost no read of their positions (10,000 of them held the loop 0.3 s).
        documents = await current_routes(self.redis, vehicles)
        raws = {v: raw for v, raw in zip(vehicles, documents, strict=True) if raw is not None}
        where = {p.id: p for p in await positions(self.redis, raws)}
        routes: dict[str, tuple[dict[str, Any], list[tuple[dict[str, Any], Order]]]] = {}
        for vehicle_id, raw in raws.items():
            if vehicle_id in where:
                route = json.loads(raw)
                ahead = await self._ahead_of(route)
                routes[vehicle_id] = (route, await self._arrive(ahead, where[vehicle_id]))
        driving = {v for v, (_, a) in routes.items() if self._driving(v, a, where[v])}
        for vehicle_id in driving & self._moved(where):
            route, ahead = routes[vehicle_id]
            routes[vehicle_id] = (route, await self._depart(ahead, where[vehicle_id]))
        # A road-model route per vehicle that moved: thousands of them would hold the event
        # loop (pings, sockets, a shutdown) for seconds; in a thread it keeps its turns.
        await asyncio.to_thread(self._learn, where, now, driving)
        city, areas = self.pace.values(now)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.PACE, str(city))
            pipe.delete(keys.PACE_AREAS)
            if areas:
                pipe.hset(keys.PACE_AREAS, mapping={a: str(f) for a, f in areas.items()})
            await pipe.execute()
        events = []
        for vehicle_id, (route, ahead) in routes.items():
            event = await self._refresh_route(route, ahead, where[vehicle_id], now, (city, areas))
            if event is not None:
                events.append(event)
            left = self._off_route(route, ahead, where[vehicle_id], now)
            if left is not None:
                async with self.redis.pipeline(transaction=False) as pipe:
                    queue_event(pipe, left)
                    await pipe.execute()
                events.append(left)
        return events

    async def _arrive(
        self, ahead: list[tuple[dict[str, Any], Order]], position: Position
    ) -> list[tuple[dict[str, Any], Order]]:
        """``ahead``, its first stop marked ``arrived`` when the vehicle is within the radius
        of it and it is a drop-off of goods on board (picked up, or loaded at the depot)."""
        if not ahead or self.arrive_radius_m <= 0:
            return ahead
        stop, order = ahead[0]
        loaded = order.status == "picked_up" or (
            order.pickup is None and order.status in ("processed", "departed")
        )
        distance = haversine_m(position.lat, position.lon, stop["lat"], stop["lon"])
        if stop["kind"] != "dropoff" or not loaded or distance > self.arrive_radius_m:
            return ahead
        return await self._move_on(
            ahead, "arrived", position, f"within {distance:.0f} m of the stop"
        )

    def _moved(self, where: dict[str, Position]) -> set[str]:
        """The vehicles at least ``DEPART_M`` from where they were at the last pass."""
        moved = set()
        for vehicle_id, p in where.items():
            was = self._fix.get(vehicle_id)
            if was is not None and haversine_m(*was, p.lat, p.lon) >= DEPART_M:
                moved.add(vehicle_id)
        self._fix = {v: (p.lat, p.lon) for v, p in where.items()}
        return moved

    async def _depart(
        self, ahead: list[tuple[dict[str, Any], Order]], position: Position
    ) -> list[tuple[dict[str, Any], Order]]:
        """``ahead``, its first stop's order marked ``departed`` when it was only ``processed``
        and the vehicle is driving to it (moving, and not at a stop): GPS moves the order on
        (its departure node is timed, a customer reads "on the way") without the driver."""
        stop, order = ahead[0]
        if order.status != "processed" or order.vehicle_id != position.id:
            return ahead
        return await self._move_on(ahead, "departed", position, f"on its way to the {stop['kind']}")

    async def _move_on(
        self,
        ahead: list[tuple[dict[str, Any], Order]],
        status: str,
        position: Position,
        reason: str,
    ) -> list[tuple[dict[str, Any], Order]]:
        """``ahead`` with its first stop's order moved to ``status`` by the vehicle's GPS."""
        stop, order = ahead[0]
        try:
            order = await self.orders.advance(order.id, status, by=position.id, reason=reason)
        except ApiError:  # the driver's own event (or a cancellation) came first
            return ahead
        return [(stop, order), *ahead[1:]]

    def _off_route(
        self,
        route: dict[str, Any],
        ahead: list[tuple[dict[str, Any], Order]],
        position: Position,
        now: float,
    ) -> dict[str, Any] | None:
        """An ``off_route`` event (once per geometry) when the vehicle is more than
        ``OFF_ROUTE_M`` from its route's road path: the plan assumed a way it is not taking."""
        geometry = route.get("geometry", "")
        if not ahead or not geometry or self._left.get(route["vehicle_id"]) == geometry:
            return None
        distance = self.roads.distance_to_path_m(position.lat, position.lon, decode(geometry))
        if distance <= OFF_ROUTE_M:
            return None
        self._left[route["vehicle_id"]] = geometry
        return {"type": "off_route", "vehicle_id": route["vehicle_id"],
                "distance_m": round(distance), "at": int(now * 1000)}  # fmt: skip

    def _driving(
        self, vehicle_id: str, ahead: list[tuple[dict[str, Any], Order]], position: Position
    ) -> bool:
        """Whether the vehicle has been driving to its next stop since the last pass, so the
        time it took says something about the traffic. Not when it stood at a stop in between
        (a stop done since, or it is at one now: arrived, or within ``AT_STOP_M`` of its next
        stop, a pickup say, whose service is under way), nor when it has no stop ahead: an idle
        van parks where its driver likes (back at the depot, on a break), and its standing
        there would count as driving."""
        keys_now = {(stop["order_id"], stop["kind"]) for stop, _ in ahead}
        before = self._ahead.get(vehicle_id)
        self._ahead[vehicle_id] = keys_now
        if not ahead or (before and before - keys_now):
            return False
        if any(o.status == "arrived" for _, o in ahead):
            return False
        stop = ahead[0][0]
        return haversine_m(position.lat, position.lon, stop["lat"], stop["lon"]) > AT_STOP_M

    def _learn(self, where: dict[str, Position], now: float, driving: set[str]) -> None:
        """A pace sample from each vehicle ``driving`` to a stop (see :meth:`_driving`) that
        has moved at least 40 m since its last sample: a van crawling through a jam gives one
        every few passes, rather than none (a stretch over 120 s starts afresh). Not when the
        road model's way between the two fixes is much longer than the straight line
        (``DETOUR``): a fix snapped onto the wrong road makes the model's time a trip round the
        block, and the ratio far too small."""
        for vehicle_id in self._last.keys() - where.keys():
            del self._last[vehicle_id]  # no route now: its next stretch starts afresh
        for vehicle_id, p in where.items():
            last = self._last.get(vehicle_id)
            if last is None or p.ts <= last.ts or vehicle_id not in driving:
                self._last[vehicle_id] = p
                continue
            actual_s = (p.ts - last.ts) / 1000
            straight_m = haversine_m(last.lat, last.lon, p.lat, p.lon)
            if actual_s > 120:
                self._last[vehicle_id] = p
                continue
            if straight_m < 40:
                continue  # too short for GPS noise: the stretch goes on from the same fix
            try:
                way = self.roads.route((last.lat, last.lon), (p.lat, p.lon))
                detour = way.distance_m > DETOUR * straight_m + 2 * AT_STOP_M
                expected_s = 0.0 if detour else way.time_s
            except GeoError:
                expected_s = 0.0
            area = cell_of((last.lat + p.lat) / 2, (last.lon + p.lon) / 2, PACE_RESOLUTION)
            self.pace.add(area, expected_s=expected_s, actual_s=actual_s, at_s=now)
            self._last[vehicle_id] = p

    async def _ahead_of(self, route: dict[str, Any]) -> list[tuple[dict[str, Any], Order]]:
        """The route's stops not done yet, with their orders."""
        ahead = []
        for stop in route["stops"]:
            order = await self.orders.get(stop["order_id"])
            done = (
                order.status in FINAL
                or (stop["kind"] == "pickup" and order.status in ("picked_up", "arrived"))
                or (stop["kind"] == "dropoff" and order.status == "returning")  # failed there
                or (stop["kind"] == "transfer" and not order.transfer_from)  # collected
            )
            if not done:
                ahead.append((stop, order))
        return ahead

    async def _refresh_route(
        self,
        route: dict[str, Any],
        ahead: list[tuple[dict[str, Any], Order]],
        position: Any,
        now: float,
        pace: tuple[float, dict[str, float]] = (1.0, {}),
    ) -> dict[str, Any] | None:
        """The route's ETAs from the live position on current traffic (and when the vehicle is
        back at its depot, for a route that ends there), written and published when one moved
        by the threshold or a stop was done since (the route then lists only the stops ahead:
        none once the last is done, so no page shows a van busy with a delivery it has made)."""
        done = len(ahead) < len(route["stops"])
        end = route.get("end")
        if not ahead and not end:
            return await self._publish(route, [], [], [], now) if done else None
        try:
            points = [self.roads.snap(position.lat, position.lon)]
            points += [self.roads.snap(s["lat"], s["lon"]) for s, _ in ahead]
            if end:
                points.append(self.roads.snap(end["lat"], end["lon"]))
            legs = self.roads.matrix_s(points, points)
            # from the fix, the first leg by whichever road near it leads there soonest
            legs[0, 1] = self.roads.from_fixes_s([(position.lat, position.lon)], points[1:2])[0, 0]
        except GeoError:
            return None
        factor = leg_factors(point_factors([(p.lat, p.lon) for p in points], *pace))
        clock, moved, late, slipped = now, False, [], []
        # A van at its next stop is there: its fix snapped onto the other side of a one-way
        # street would otherwise cost a trip round the block.
        at_stop = (
            haversine_m(position.lat, position.lon, ahead[0][0]["lat"], ahead[0][0]["lon"])
            if ahead
            else math.inf
        )
        for i, (stop, order) in enumerate(ahead):
            leg = 0.0 if i == 0 and at_stop <= AT_STOP_M else float(legs[i, i + 1])
            clock += leg * float(factor[i, i + 1]) if np.isfinite(leg) else 0.0
            # (a parcel taken back to the sender has no window: nobody waits for it)
            window = {"dropoff": order.window, "pickup": order.pickup_window}.get(stop["kind"])
            opens = window.start.timestamp() if window is not None else now
            eta = max(clock, opens, now)
            if abs(eta * 1000 - stop["eta"]) > self.threshold_s * 1000:
                moved = True
            stop["eta"] = int(eta * 1000)
            was_late = stop.get("late_risk", False)
            stop["late_risk"] = window is not None and eta > window.end.timestamp()
            if stop["late_risk"]:
                late.append(stop["order_id"])
                if not was_late:
                    slipped.append(stop["order_id"])
            clock = eta + (order.service_s if stop["kind"] == "dropoff" else order.pickup_service_s)
        if end:  # the way back to the depot from the last stop (or from here)
            k = len(ahead)
            leg = float(legs[k, k + 1])
            back = clock + (leg * float(factor[k, k + 1]) if np.isfinite(leg) else 0.0)
            # Home with nothing to do, its time back is now: not news each pass.
            home = not ahead and haversine_m(position.lat, position.lon, end["lat"],
                                             end["lon"]) <= AT_STOP_M  # fmt: skip
            moved = moved or (not home and abs(back * 1000 - end["eta"]) > self.threshold_s * 1000)
            end["eta"] = int(back * 1000)
        if not moved and not done:
            return None
        return await self._publish(route, [s for s, _ in ahead], late, slipped, now)

    async def _publish(
        self,
        route: dict[str, Any],
        stops: list[dict[str, Any]],
        late: list[str],
        slipped: list[str],
        now: float,
    ) -> dict[str, Any]:
        route["stops"] = stops
        event = {"type": "eta", "vehicle_id": route["vehicle_id"], "version": route["version"],
                 "stops": stops, "end": route.get("end"), "late_risk": late, "slipped": slipped,
                 "at": int(now * 1000)}  # fmt: skip
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.route(route["vehicle_id"]), json.dumps(route))
            queue_event(pipe, event)
            await pipe.execute()
        return event
