"""A simulated vehicle: a driver app on the driver WebSocket, and a van on the real roads.

It knows only what a real driver knows: the route the server pushes (stops in order). It drives each
leg on the fastest route its navigation knows (free flow and the incidents reported: the path the
server draws) at the ground truth's real speeds, pings once a second with GPS noise, the odd outlier
and the odd dropout (pings are buffered and re-sent after reconnecting), and reports its stops:
``picked_up`` at a pickup; ``arrived``, then after the service time ``delivered`` or ``failed``
(with the reason the scenario drew; a new attempt the server plans after that succeeds) at a
drop-off. It never starts a delivery before its window opens. Idle, it drives back to its
nearest hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from geo.errors import GeoError
from geo.roads import Roads
from simulator.driving import ArcLookup, Drive
from simulator.scenario import PlannedOrder, PlannedVehicle, Scenario
from simulator.truth import EARTH_M, GroundTruth

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
MAX_BATCH = 50


@dataclass(slots=True)
class StopRecord:
    order_id: str
    kind: str
    vehicle_id: str
    arrived_s: float  # scenario time the vehicle reached the stop
    service_start_s: float  # = max(arrival, window start) for a drop-off
    outcome: str  # picked_up | delivered | failed
    answer: str = ""  # the server's stop_ack status, or its error code


@dataclass(slots=True)
class VehicleStats:
    driven_m: float = 0.0
    busy_s: float = 0.0  # driving to a stop or serving one
    pings: int = 0
    acked: int = 0
    reconnects: int = 0
    outliers: int = 0


@dataclass(slots=True)
class SimVehicle:
    plan: PlannedVehicle
    token: str
    ws_url: str
    roads: Roads
    lookup: ArcLookup
    truth: GroundTruth
    scenario: Scenario
    orders: dict[str, PlannedOrder]
    hubs: list[tuple[float, float]]
    clock: Callable[[], float]  # scenario seconds
    t0_ms: int  # wall-clock Unix ms at scenario time 0
    rng: random.Random
    sleep: Callable[[float], Awaitable[None]]  # scenario seconds (the world's clock)
    lat: float = 0.0
    lon: float = 0.0
    heading: float = 0.0
    stops: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0
    done: set[tuple[str, str]] = field(default_factory=set)
    failed_once: set[str] = field(default_factory=set)  # a new attempt at these succeeds
    awaiting_retry: dict[str, int] = field(default_factory=dict)  # order → failed at (Unix ms)
    drive: Drive | None = None
    target: tuple[str, str] | None = None  # (order id, kind), or ("hub", "") when repositioning
    serving: tuple[str, str] | None = None
    serve_until: float = 0.0
    broken: bool = False
    offline_until: float = 0.0
    outbox: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # stop events not yet sent
    records: list[StopRecord] = field(default_factory=list)
    stats: VehicleStats = field(default_factory=VehicleStats)
    seq: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # something to send

    def __post_init__(self) -> None:
        self.lat, self.lon = self.plan.start

    # --- the van ------------------------------------------------------------------------------

    def carrying(self) -> bool:
        """Whether a parcel is on board: picked up (or collected), not yet dropped off."""
        taken = {o for o, kind in self.done if kind in ("pickup", "transfer")}
        return bool(taken - {o for o, kind in self.done if kind in ("dropoff", "return")})

    def _next_stop(self) -> dict[str, Any] | None:
        for stop in self.stops:
            if (stop["order_id"], stop["kind"]) not in self.done:
                return stop
        return None

    def step(self, t: float, dt: float) -> None:
        """Advance the world by ``dt`` seconds ending at scenario time ``t``; queue one ping."""
        if not self.broken:
            self._move(t - dt, dt)
        self._ping(t)

    def _move(self, t: float, dt: float) -> None:
        if self.serving is not None:
            self.stats.busy_s += dt
            if t + dt >= self.serve_until:
                self._finish_service(t + dt)
            return
        stop = self._next_stop()
        key = (stop["order_id"], stop["kind"]) if stop else ("hub", "")
        if key != self.target or self.drive is None:
            self.target = key
            if stop is not None:
                goal = (float(stop["lat"]), float(stop["lon"]))
            else:
                goal = min(self.hubs, key=lambda h: (h[0] - self.lat) ** 2 + (h[1] - self.lon) ** 2)
            try:
                self.drive = Drive.plan(self.roads, self.lookup, (self.lat, self.lon), goal)
            except (GeoError, KeyError):
                self.drive = None
                return
        drive = self.drive
        if drive is None:
            return
        before = drive.driven_m
        if not drive.done:
            drive.advance(dt, t, self.truth)
            if drive.segments:
                self.lat, self.lon, self.heading = drive.position()
        self.stats.driven_m += drive.driven_m - before
        if stop is not None:
            self.stats.busy_s += dt
        if drive.done and stop is not None:
            self._arrive(stop, t + dt)

    def _arrive(self, stop: dict[str, Any], t: float) -> None:
        order = self.orders.get(stop["order_id"])
        kind = stop["kind"]
        if kind == "dropoff":
            opens = order.window_start_s if order else t
            start, service = max(t, opens), self.scenario.dropoff_service_s
            self._event(stop["order_id"], "arrived")
        else:  # a pickup (or a transfer), or a refused parcel handed back at the shop
            start, service = t, self.scenario.pickup_service_s
        self.serving = (stop["order_id"], kind)
        self.serve_until = start + service
        self.records.append(StopRecord(stop["order_id"], kind, self.plan.id, t, start, outcome=""))
        self.drive = None

    def _finish_service(self, t: float) -> None:
        assert self.serving is not None
        order_id, kind = self.serving
        order = self.orders.get(order_id)
        if kind in ("pickup", "transfer"):  # (a transfer: from a van out of service)
            outcome = "picked_up"
            self._event(order_id, "picked_up")
        elif kind == "return":
            outcome = "returned"
            self._event(order_id, "returned")
        elif order is not None and order.failure is not None and order_id not in self.failed_once:
            outcome = "failed"
            self._event(order_id, "failed", reason=order.failure)
            self.failed_once.add(order_id)
            self.awaiting_retry[order_id] = self.t0_ms + int(t * 1000)
        else:
            outcome = "delivered"
            self._event(order_id, "delivered", proof=f"sim-{order_id}")
        self.records[-1].outcome = outcome
        self.done.add(self.serving)
        self.serving = None
        self.target = None

    def _event(self, order_id: str, event: str, **extra: str) -> None:
        self.events.append({"type": "stop", "order_id": order_id, "event": event, **extra})
        self.wake.set()

    def _ping(self, t: float) -> None:
        lat, lon = self.lat, self.lon
        sigma = self.scenario.gps_sigma_m
        if self.rng.random() < self.scenario.outlier_rate:
            sigma = 400.0
            self.stats.outliers += 1
        dlat = self.rng.gauss(0, sigma) / EARTH_M
        dlon = self.rng.gauss(0, sigma) / (EARTH_M * math.cos(math.radians(lat)))
        moving = self.drive is not None and not self.drive.done and self.serving is None
        self.outbox.append({
            "lat": round(lat + math.degrees(dlat), 7),
            "lon": round(lon + math.degrees(dlon), 7),
            "ts": self.t0_ms + int(t * 1000),
            "heading": round(self.heading, 1),
            "accuracy": round(max(sigma, 3.0), 1),
            "speed": 8.0 if moving else 0.0,
        })  # fmt: skip
        self.stats.pings += 1
        self.wake.set()

    # --- the driver app -----------------------------------------------------------------------

    def maybe_drop(self, t: float, dt: float) -> bool:
        """Whether connectivity is lost now (the scenario's dropout rate)."""
        rate = self.scenario.dropouts_per_hour / 3600.0
        if t >= self.offline_until and self.rng.random() < rate * dt:
            self.offline_until = t + self.rng.uniform(10, 40)
            return True
        return False

    async def run(self, stop: asyncio.Event) -> None:
        """Keep a connection open, send buffered pings and stop events, take routes."""
        while not stop.is_set():
            if self.clock() < self.offline_until:
                await self.sleep(0.5)
                continue
            try:
                async with connect(
                    self.ws_url, compression=None, proxy=None, open_timeout=10, max_queue=64
                ) as ws:
                    await self._session(ws, stop)
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                pass
            if not stop.is_set():
                self.stats.reconnects += 1
                await self.sleep(1.0)

    async def _session(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        acks: dict[int, asyncio.Future[dict[str, Any]]] = {}
        reader = asyncio.create_task(self._read(ws, acks))
        try:
            while not stop.is_set() and self.clock() >= self.offline_until:
                if reader.done():
                    return
                while self.events:
                    frame = dict(self.events[0], seq=self._next_seq())
                    answer = await self._request(ws, acks, frame)
                    if answer is None:
                        return
                    self._record_answer(frame, answer)
                    self.events.pop(0)
                if self.outbox:
                    batch = self.outbox[:MAX_BATCH]
                    frame = {"type": "pings", "seq": self._next_seq(), "pings": batch}
                    answer = await self._request(ws, acks, frame)
                    if answer is None:
                        return
                    if answer.get("type") == "ack" or answer.get("code") in {
                        "invalid_ping", "batch_too_large",
                    }:  # fmt: skip
                        del self.outbox[: len(batch)]  # taken (or never takeable): not re-sent
                        self.stats.acked += len(batch)
                self.wake.clear()
                if not (self.outbox or self.events):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), 0.5)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await reader

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    async def _request(
        self,
        ws: ClientConnection,
        acks: dict[int, asyncio.Future[dict[str, Any]]],
        frame: dict[str, Any],
    ) -> dict[str, Any] | None:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        acks[frame["seq"]] = future
        try:
            await ws.send(_encode(frame).decode())
            return await asyncio.wait_for(future, 10.0)
        except (ConnectionClosed, TimeoutError):
            return None
        finally:
            acks.pop(frame["seq"], None)

    async def _read(
        self, ws: ClientConnection, acks: dict[int, asyncio.Future[dict[str, Any]]]
    ) -> None:
        async for raw in ws:
            message = _decode(raw)
            kind = message.get("type")
            if kind == "route" and message.get("version", 0) >= self.version:
                self.version = message["version"]
                self.stops = message["stops"]
                self._retry(message)
            elif kind in {"ack", "stop_ack", "error"}:
                future = acks.get(message.get("seq", -1))
                if future is not None and not future.done():
                    future.set_result(message)

    def _retry(self, route: dict[str, Any]) -> None:
        """A route planned after a failed attempt that lists the order again asks for a new
        attempt: its stops are to be served again (the second attempt succeeds)."""
        again = {
            s["order_id"] for s in route["stops"]
            if route.get("planned_at", 0) > self.awaiting_retry.get(s["order_id"], 1 << 62)
        }  # fmt: skip
        for order_id in again:
            del self.awaiting_retry[order_id]
            self.done -= {(order_id, "pickup"), (order_id, "dropoff")}

    def _record_answer(self, frame: dict[str, Any], answer: dict[str, Any]) -> None:
        for record in reversed(self.records):
            if record.order_id == frame["order_id"]:
                record.answer = answer.get("status") or answer.get("code", "")
                break
