"""One simulated run against one server: the fleet, the order stream, incidents, an observer.

Everything reaches the server through its public interfaces: vehicles are registered and orders
created over REST (as a shop's system would), incidents that are reported go to ``/traffic-events``
(and into the vans' navigation, which then avoids them as the routes the server draws do; hidden
ones they drive into), breakdowns are a dispatcher's ``PATCH /vehicles/{id}``; the vans speak the
driver WebSocket; an observer watches ``/ws/console`` like a dispatcher and records every route and
ETA the server publishes, and how long a ping takes to reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from geo.roads import Roads
from server.clock import REAL, Clock
from simulator.driving import ArcLookup
from simulator.scenario import Events, PlannedOrder, ground_truth
from simulator.vehicle import SimVehicle, StopRecord, VehicleStats

_decode = msgspec.json.Decoder().decode
TICK_S = 1.0
CREATE_ATTEMPTS = 3  # tries of one order's creation (transport or server errors)


@dataclass(frozen=True, slots=True)
class SeenRoute:
    """A route or ETA update as the dispatcher's view showed it, and where its van really was."""

    t_s: float  # scenario time it was seen
    vehicle_id: str
    kind: str  # "route" or "eta"
    stops: list[tuple[str, str, float]]  # (order id, kind, ETA as scenario time), in order
    van: tuple[float, float] | None  # the van's true (lat, lon) then (None: not a simulated van)


@dataclass(slots=True)
class Observed:
    """What the dispatcher's view showed during the run."""

    negative_etas: int = 0
    planned_at: set[int] = field(default_factory=set)  # one per planning round that changed routes
    route_versions: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    routes: list[SeenRoute] = field(default_factory=list)


@dataclass(slots=True)
class RunResult:
    label: str
    reoptimize: bool
    duration_s: float
    t0_ms: int
    orders: dict[str, PlannedOrder]  # server order id → what the scenario asked for
    tracking: dict[str, str]  # server order id → customer tracking token
    records: list[StopRecord]
    final_status: dict[str, str]  # server order id → status at the end
    vehicles: dict[str, VehicleStats]
    observed: Observed
    broken: list[str]
    create_errors: int = 0
    create_failures: list[str] = field(default_factory=list)  # why, for the first few
    reported_m: dict[str, float] = field(default_factory=dict)  # the server's trips report
    released: int = 0  # orders held after a wrong address that the dispatcher sent out again


def counted(n: int, noun: str) -> str:
    """``1 order``, ``2 orders``: a count for a progress line."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _iso(t0_ms: int, t_s: float) -> str:
    return dt.datetime.fromtimestamp(t0_ms / 1000 + t_s, dt.UTC).isoformat()


class World:
    def __init__(
        self,
        events: Events,
        roads: Roads,
        *,
        base_url: str,
        staff_token: str,
        reoptimize: bool,
        label: str,
        progress: Callable[[str], None] = lambda _: None,
        clock: Clock = REAL,
    ) -> None:
        self.events = events
        self.roads = roads
        self.base_url = base_url
        self.ws_url = base_url.replace("http://", "ws://", 1)
        self.staff_token = staff_token
        self.reoptimize = reoptimize
        self.label = label
        self.progress = progress
        self.time = clock  # shared with the server: simulated time when faster than real
        self.truth = ground_truth(events, roads.network)
        self.lookup = ArcLookup(roads)
        self.rng = random.Random(events.scenario.seed + 1)
        self.t0 = 0.0
        self.orders: dict[str, PlannedOrder] = {}
        self.tracking: dict[str, str] = {}
        self.observed = Observed()
        self.vans: list[SimVehicle] = []
        self.create_errors = 0
        self.create_failures: list[str] = []
        self._stop = asyncio.Event()
        self.first_tracking_link = asyncio.Event()
        self._held: list[tuple[float, str]] = []  # (when the held alert came, order id)
        self.released = 0  # held orders the simulated dispatcher sent out again

    def clock(self) -> float:
        """Scenario seconds: since the run started, on the shared clock."""
        return self.time.now() - self.t0

    def stop(self) -> None:
        self._stop.set()

    async def run(self, duration_s: float | None = None) -> RunResult:
        s = self.events.scenario
        duration = s.duration_s if duration_s is None else duration_s
        headers = {"Authorization": f"Bearer {self.staff_token}"}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30) as api:
            self.t0 = self.time.now()
            t0_ms = int(self.t0 * 1000)
            hubs = sorted({o.pickup for o in self.events.orders}) or [
                v.start for v in self.events.vehicles
            ]
            for plan in self.events.vehicles:
                body = {"id": plan.id, "name": plan.id.replace("sim-", "Van "),
                        "capacity": {"parcels": s.capacity},
                        "skills": ["cold_chain"] if plan.cold else []}  # fmt: skip
                answer = await api.post("/vehicles", json=body)
                answer.raise_for_status()
                self.vans.append(
                    SimVehicle(plan=plan, token=answer.json()["token"],
                               ws_url=f"{self.ws_url}/ws/driver?token={answer.json()['token']}",
                               roads=self.roads, lookup=self.lookup, truth=self.truth, scenario=s,
                               orders=self.orders, hubs=list(hubs), clock=self.clock,
                               sleep=self.time.sleep, t0_ms=t0_ms,
                               rng=random.Random(f"{s.seed}-{plan.id}"))
                )  # fmt: skip
            tasks = [asyncio.create_task(v.run(self._stop)) for v in self.vans]
            tasks.append(asyncio.create_task(self._observe(t0_ms)))
            broken: list[str] = []
            try:
                await self._loop(api, duration, t0_ms, broken)
            finally:
                self._stop.set()
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            final = {}
            for order_id in self.orders:
                answer = await api.get(f"/orders/{order_id}")
                final[order_id] = answer.json().get("status", "unknown")
            reported = await self._reported_distances(api, t0_ms)
        return RunResult(
            label=self.label, reoptimize=self.reoptimize, duration_s=duration, t0_ms=t0_ms,
            orders=dict(self.orders), tracking=dict(self.tracking),
            records=[r for v in self.vans for r in v.records], final_status=final,
            vehicles={v.plan.id: v.stats for v in self.vans}, observed=self.observed,
            broken=broken, create_errors=self.create_errors,
            create_failures=self.create_failures, reported_m=reported, released=self.released,
        )  # fmt: skip

    async def _reported_distances(self, api: httpx.AsyncClient, t0_ms: int) -> dict[str, float]:
        """What the server's trips report says each van drove in the run (from its pings:
        GPS noise, dropouts and outliers included), to set beside what it really drove."""
        until = {"from": t0_ms, "to": int(self.time.now() * 1000)}
        reported = {}
        for van in self.vans:
            answer = await api.get(f"/vehicles/{van.plan.id}/report", params=until)
            if answer.status_code == 200:
                reported[van.plan.id] = float(answer.json()["summary"]["distance_m"])
        return reported

    async def _loop(
        self, api: httpx.AsyncClient, duration: float, t0_ms: int, broken: list[str]
    ) -> None:
        pending = list(self.events.orders)
        incidents = [i for i in self.events.incidents if i.reported]
        navigated: list[tuple[float, str]] = []  # (end, id): reported, known to the vans' maps
        breakdowns = sorted(
            (v.breakdown_s, v.id) for v in self.events.vehicles if v.breakdown_s is not None
        )
        last = 0.0
        next_report = 0.0
        while not self._stop.is_set():
            t = self.clock()
            if t >= duration:
                break
            while pending and pending[0].at_s <= t:
                await self._create(api, pending.pop(0), t0_ms)
            while incidents and incidents[0].start_s <= t:
                incident = incidents.pop(0)
                body = {"id": incident.id, "polygon": incident.polygon(),
                        "factor": round(incident.factor, 3), "label": "reported by the simulator",
                        "end": _iso(t0_ms, incident.end_s)}  # fmt: skip
                with contextlib.suppress(httpx.HTTPError):
                    await api.post("/traffic-events", json=body)
                # The drivers' navigation hears of it too, as the routes the server draws do.
                self.roads.add_event(incident.traffic_event(), t)
                navigated.append((incident.end_s, incident.id))
                self._reroute()
            for end_s, incident_id in [n for n in navigated if n[0] <= t]:
                self.roads.end_event(incident_id, t)
                navigated.remove((end_s, incident_id))
                self._reroute()
            while breakdowns and breakdowns[0][0] <= t:
                _, vehicle_id = breakdowns[0]
                if self.events.scenario.breakdown_with_parcel and not any(
                    van.carrying() for van in self.vans if van.plan.id == vehicle_id
                ):
                    break  # (not yet: it breaks down once it has a parcel on board)
                breakdowns.pop(0)
                with contextlib.suppress(httpx.HTTPError):
                    await api.patch(f"/vehicles/{vehicle_id}", json={"status": "broken_down"})
                for van in self.vans:
                    if van.plan.id == vehicle_id:
                        van.broken = True
                        broken.append(vehicle_id)
            # The dispatcher calls the customer of an order held after a wrong address, and
            # sends it out again: the simulated addresses are right after all.
            while self._held and self._held[0][0] + self.events.scenario.dispatcher_call_s <= t:
                _, order_id = self._held.pop(0)
                reason = "the customer confirmed the address (the simulator's dispatcher)"
                with contextlib.suppress(httpx.HTTPError):
                    answer = await api.post(f"/orders/{order_id}/retry", json={"reason": reason})
                    self.released += answer.is_success
            dt_s = t - last if last else TICK_S
            for van in self.vans:
                van.step(t, dt_s)
                van.maybe_drop(t, dt_s)
            last = t
            if t >= next_report:
                self.progress(self._progress_line(t, duration))
                next_report = t + max(10.0, min(300.0, duration / 12))
            await self.time.sleep(max(0.0, TICK_S - (self.clock() - t)))

    def _reroute(self) -> None:
        """Every van driving works its way out again on the new weights (as a navigation app
        does when it hears of a jam starting or ending)."""
        for van in self.vans:
            if van.serving is None:
                van.drive = None

    def _progress_line(self, t: float, duration: float) -> str:
        records = [r for v in self.vans for r in v.records]
        delivered = sum(1 for r in records if r.outcome == "delivered")
        return (
            f"[{self.label}] {t / 60:5.1f}/{duration / 60:.1f} min: "
            f"{counted(len(self.orders), 'order')}, {delivered} delivered, "
            f"{counted(len(self.observed.planned_at), 'plan')} pushed, "
            f"{sum(v.stats.driven_m for v in self.vans) / 1000:.1f} km driven"
        )

    async def _create(self, api: httpx.AsyncClient, order: PlannedOrder, t0_ms: int) -> None:
        n = int(order.id.split("-")[1])
        body = {
            "pickup": {"lat": order.pickup[0], "lon": order.pickup[1], "address": "Shop"},
            "dropoff": {"lat": order.dropoff[0], "lon": order.dropoff[1],
                        "address": f"Customer street {n}"},
            "window": {"start": _iso(t0_ms, order.window_start_s),
                       "end": _iso(t0_ms, order.window_end_s)},
            "service_s": self.events.scenario.dropoff_service_s,
            "pickup_service_s": self.events.scenario.pickup_service_s,
            "size": {"parcels": order.parcels},
            "skills": ["cold_chain"] if order.cold else [],
            "priority": "express" if order.express else "normal",
            "customer": {"name": f"Customer {n}", "phone": f"+358 40 {n:07d}"},
            "reference": order.id,
        }  # fmt: skip
        # As a real client would: a transport error or a server error is retried with the same
        # idempotency key (the order is created once whatever happened to earlier answers).
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                answer = await api.post("/orders", json=body, headers={"Idempotency-Key": order.id})
            except httpx.HTTPError as exc:
                failure, again = f"{type(exc).__name__}: {exc}", True
            else:
                if answer.is_success:
                    break
                failure = f"HTTP {answer.status_code}: {answer.text[:200]}"
                again = answer.status_code >= 500  # a refusal: asking again changes nothing
            if not again or attempt == CREATE_ATTEMPTS:
                self.create_errors += 1
                if len(self.create_failures) < 10:
                    self.create_failures.append(f"{order.id}: {failure}")
                return
            await asyncio.sleep(0.5 * attempt)
        created = answer.json()
        self.orders[created["order"]["id"]] = order
        self.tracking[created["order"]["id"]] = created["tracking_token"]
        self.first_tracking_link.set()

    async def _observe(self, t0_ms: int) -> None:
        """Watch the console socket for the whole run (reconnecting if it drops)."""
        url = f"{self.ws_url}/ws/console?token={self.staff_token}"
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                async with connect(url, compression=None, proxy=None, max_queue=None) as ws:
                    async for raw in ws:
                        self._seen(_decode(raw), t0_ms)
            await asyncio.sleep(0.5)

    def _seen(self, message: dict[str, Any], t0_ms: int) -> None:
        now_ms = self.time.now() * 1000
        if message.get("type") == "positions":
            real_ms = time.time() * 1000  # latency in real time: a ping's ts is the instant
            for v in message.get("vehicles", []):  # of its fix, on the shared clock
                self.observed.latencies_ms.append(real_ms - 1000 * self.time.real(v["ts"] / 1000))
            return
        if message.get("type") != "event":
            return
        event = message.get("event", {})
        kind = event.get("type")
        if kind == "alert" and event.get("kind") == "held":
            self._held.append(((now_ms - t0_ms) / 1000, str(event.get("order_id"))))
            return
        if kind not in {"route", "eta"}:
            return
        published = event.get("planned_at") if kind == "route" else event.get("at")
        published = float(published if published is not None else now_ms)
        if kind == "route":
            self.observed.route_versions += 1
            self.observed.planned_at.add(int(published))
        t_s = (now_ms - t0_ms) / 1000
        seen = []
        for stop in event.get("stops", []):
            eta = float(stop["eta"])
            if eta < published - 1:
                self.observed.negative_etas += 1
            seen.append((stop["order_id"], stop["kind"], (eta - t0_ms) / 1000))
        vehicle_id = str(event.get("vehicle_id", ""))
        van = next(((v.lat, v.lon) for v in self.vans if v.plan.id == vehicle_id), None)
        self.observed.routes.append(SeenRoute(t_s, vehicle_id, kind, seen, van))
