"""Planning rounds: open orders + available vehicles at their live positions → routes.

One round (:meth:`Planner.plan_once`): snap every vehicle and stop to the road network, build the
travel-time matrix on the live traffic weights, solve (``dispatch.solver.solve``, warm-started
from the previous plan), then store each vehicle's route with a version that grows when its stops
change (``fleet:route:{id}``), move newly assigned orders to ``processed``, and publish a
``route`` event per changed route. Rounds run in one process at a time (lease
``fleet:lease:planner``); a trigger (new or cancelled order, vehicle change, traffic event, or
``POST /dispatch/replan``) wakes the loop, and triggers that arrive within ``debounce_s`` share a
round.

With ``reoptimize=False`` (``FLEET_REOPTIMIZE=off``, the simulator's baseline) each order is
planned once, when it comes: after the first plan, a round puts the orders without a vehicle
into the routes as they stand, each where it adds the least cost (``dispatch.solver.extend``);
no planned stop ever changes vehicle or order, and there are no improvement rounds.

A vehicle with a ``depot`` ends its routes there: the way back is planned, drawn and timed
(the route's ``end``), and the end of its shift is when it must be back. An order without a
pickup place is loaded at a depot: until a van has picked it up there, it has a ``pickup`` stop
at the depot nearest its drop-off (:func:`_pickup_place`), like any other pickup, so an order
that comes while the vans are out sends one of them back to load it. In a fleet without depots
it leaves with whichever van takes it (nowhere else to load it is known). Vehicles without a
live position are not planned.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import logging
import math
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from dispatch.errors import NoSolution
from dispatch.plan import Plan
from dispatch.problem import Costs, Problem, Task, Vehicle
from dispatch.solver import extend, solve
from geo.distance import haversine_m
from geo.errors import GeoError
from geo.polyline import decode, encode
from geo.roads import Roads
from server import clock as server_clock
from server import keys
from server.dispatching.etas import OFF_ROUTE_M
from server.errors import Conflict
from server.events import queue_event
from server.lease import Lease
from server.orders.model import Order, Place, Window
from server.orders.store import OrderStore
from server.tracking.queries import positions
from server.tracking.vehicles import Depot, all_vehicles
from server.tracking.wire import Route, RouteEnd, RouteStop

log = logging.getLogger("fleet.planner")
PLANNABLE = ("received", "processed", "departed")
TRAFFIC_STATES = 8  # candidates remembered by the set of traffic events in force
ON_BOARD = ("picked_up", "arrived", "returning")  # on a van: only that van can drop them off


@dataclass(frozen=True, slots=True)
class RoundSummary:
    vehicles: int
    orders: int
    assigned: int
    dropped: dict[str, str]
    changed_routes: list[str]
    seconds: float
    kept_previous: bool = False  # the new plan was not better by the margin: routes unchanged
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step of the round
    objective: int | None = None  # this round's plan (none: no plan came out of it)
    candidate: int | None = None  # the best plan known after it: the next warm start


_STOP: Any = None  # in the solver process: the event that ends an idle round early


def _start_worker(stop: Any) -> None:
    global _STOP
    _STOP = stop


def _solve_in_worker(problem: Problem, **options: Any) -> Plan:
    return solve(problem, stop=_STOP.is_set if _STOP is not None else None, **options)


def _parcel_on(order: Order) -> str | None:
    """The van that has the order's parcel: picked up (or going back to the sender), or back
    with the planner after a failed delivery, which leaves it on the van that tried (its new
    attempt is a drop-off from that van, not a second pickup at the shop); while a collection
    is due, the van out of service it is collected from. None: the parcel is not on a van."""
    tried = "picked_up" in order.nodes or order.pickup is None  # (one without: it left with it)
    retried = order.status in PLANNABLE and "failed" in order.nodes and tried
    if order.status in ON_BOARD or retried:
        return order.transfer_from or order.vehicle_id
    return None


def _carried_by(order: Order, where: dict[str, Any]) -> str | None:
    """The vehicle among those planned that has the order's parcel on board, if one does."""
    holder = _parcel_on(order)
    return holder if holder in where else None


def _pickup_place(
    pickup: Place | None, dropoff: Place, depots: list[tuple[float, float]]
) -> tuple[float, float] | None:
    """Where an order's parcel is picked up: its pickup place; for an order without one, the
    depot nearest its drop-off in a straight line, among the fleet's (whichever van takes it
    loads it there: a company keeps parcels at the depot serving the area); none in a fleet
    without depots (it leaves with the van).

    >>> depots = [(60.17, 24.94), (60.20, 24.90)]
    >>> _pickup_place(None, Place(lat=60.19, lon=24.91), depots)
    (60.2, 24.9)
    >>> _pickup_place(Place(lat=60.1, lon=24.8), Place(lat=60.19, lon=24.91), depots)
    (60.1, 24.8)
    >>> _pickup_place(None, Place(lat=60.19, lon=24.91), []) is None
    True
    """
    if pickup is not None:
        return (pickup.lat, pickup.lon)
    if not depots:
        return None
    return min(depots, key=lambda d: haversine_m(d[0], d[1], dropoff.lat, dropoff.lon))


def _stop_kind(order_id: str, kind: str, returns: set[str], transfers: dict[str, str]) -> str:
    """What a planned visit is to the driver: a ``pickup`` of a parcel on a van out of service
    is a ``transfer`` from it; the ``dropoff`` of one going back to its sender, a ``return``.

    >>> transfers = {"o-1": "van-7"}
    >>> _stop_kind("o-1", "pickup", set(), transfers), _stop_kind("o-1", "dropoff", set(), {})
    ('transfer', 'dropoff')
    >>> _stop_kind("o-2", "dropoff", {"o-2"}, {}), _stop_kind("o-2", "pickup", {"o-2"}, {})
    ('return', 'pickup')
    """
    if kind == "pickup":
        return "transfer" if order_id in transfers else kind
    return "return" if order_id in returns else kind


def _return_place(order: Order, depots: dict[str, Depot | None]) -> tuple[float, float] | None:
    """Where the parcel of an order going back to the sender is taken: its pickup place, or
    the depot of the van that has it (for an order loaded there); none without either."""
    if order.pickup is not None:
        return (order.pickup.lat, order.pickup.lon)
    depot = depots.get(order.vehicle_id or "")
    return (depot.lat, depot.lon) if depot is not None else None


def _window(now: float, window: Window | None, horizon: int) -> tuple[int, int]:
    """A window as seconds from ``now`` (the planning clock's zero); none: the whole horizon."""
    if window is None:
        return (0, horizon)
    start = max(0, int(window.start.timestamp() - now))
    return (start, max(start, int(window.end.timestamp() - now)))


def _kept(
    window: tuple[int, int], promise: float | None, now: float, slack: float
) -> tuple[int, int]:
    """A drop-off window (seconds from ``now``) that closes, for lateness, ``slack`` seconds
    after the time promised at confirmation when that comes before its end: re-plans then
    weigh a broken promise as they weigh a missed window, and keep the promises they can.

    >>> _kept((0, 3600), 1000.0 + 600, 1000.0, 120)
    (0, 720)
    >>> _kept((300, 3600), None, 1000.0, 120)
    (300, 3600)
    """
    if promise is None:
        return window
    start, end = window
    return (start, max(start, min(end, int(promise - now + slack))))


class Planner:
    def __init__(
        self,
        redis: aioredis.Redis,
        orders: OrderStore,
        roads: Roads,
        *,
        time_limit_s: float = 0.3,
        debounce_s: float = 0.1,
        improve_after_s: float = 2.0,
        fresh_limit_s: float = 10.0,
        reoptimize: bool = True,
        margin: float = 0.02,
        freeze_s: float = 600.0,
        promise_slack_s: float | None = None,
        time_zone: str = "UTC",
        clock: Callable[[], float] = server_clock.now,
    ) -> None:
        self.redis = redis
        self.orders = orders
        self.roads = roads
        self.time_limit_s = time_limit_s
        self.debounce_s = debounce_s
        self.improve_after_s = improve_after_s
        self.fresh_limit_s = fresh_limit_s
        self.reoptimize = reoptimize
        self.margin = margin
        self.freeze_s = freeze_s
        self.promise_slack_s = promise_slack_s
        self.zone = ZoneInfo(time_zone)
        self.clock = clock
        self.lease = Lease(redis, keys.PLANNER_LEASE, ttl_s=max(30.0, 5 * time_limit_s))
        self._wake = asyncio.Event()
        self._pool: ProcessPoolExecutor | None = None
        self._previous: Plan | None = None  # the plan the drivers follow
        self._ends: dict[str, tuple[float, float] | None] = {}  # the depots the routes end at
        self._returns: set[str] = set()  # the orders the routes take back to the sender
        self._candidate: Plan | None = None  # the best plan found since: the next warm start
        # The last candidate under each set of traffic events in force: when a jam ends, the
        # plan made before it began is often a better warm start than the jam's own.
        self._by_traffic: dict[frozenset[str], Plan] = {}
        self._stale_rounds = 0  # improvement rounds in a row that found nothing better
        self._fresh_done = False  # since the last event: a fresh (cold) solve was tried
        self._context = multiprocessing.get_context("spawn")
        self._interrupt = self._context.Event()  # set: the idle round in flight ends early
        self._idle_round = False
        self.rounds = 0
        self.last_problem: Problem | None = None
        self.last_plan: Plan | None = None
        self._one_at_a_time = asyncio.Lock()  # the loop and POST /dispatch/replan

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=self._context, initializer=_start_worker,
                initargs=(self._interrupt,),
            )  # fmt: skip
        return self._pool

    def close(self) -> None:
        """Stop the solver process: a round in flight is told to stop and is abandoned (a
        long fresh solve would otherwise keep the process busy, and its exit waiting)."""
        self._interrupt.set()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    @property
    def converged(self) -> bool:
        """No event is waiting and the idle rounds have stopped finding better plans."""
        return (
            self._candidate is not None
            and self._stale_rounds >= 3
            and not self._wake.is_set()
            and not self._one_at_a_time.locked()
        )

    def request(self) -> None:
        """Ask for a planning round soon (cheap; many requests make one round). An idle
        improvement round in flight gives way: it stops with what it has found."""
        self._wake.set()
        if self._idle_round:
            self._interrupt.set()

    async def run(self) -> None:
        """Plan on every trigger. While nothing happens, keep improving the candidate plan:
        warm rounds (as long as an event's), and once they stall a fresh solve from scratch
        (``fresh_limit_s``; a warm start stays in its plan's basin, which a cold solve often
        beats), until a few rounds in a row find nothing better. A trigger interrupts them."""
        while True:
            idle = fresh = False
            try:
                await asyncio.wait_for(
                    self._wake.wait(), server_clock.real_seconds(self.improve_after_s)
                )
                await server_clock.sleep(self.debounce_s)  # let close triggers gather
                self._wake.clear()
                self._stale_rounds = 0
                self._fresh_done = False
            except TimeoutError:
                if not self.reoptimize or self._candidate is None or self._stale_rounds >= 3:
                    continue  # plan-once dispatch, nothing to improve, or it has converged
                idle = True
                fresh = self._stale_rounds >= 1 and not self._fresh_done
            try:
                if await self.lease.hold():
                    summary = await self.plan_once(idle=idle, fresh=fresh)
                    log.info("planned %s", summary)
            except (RedisError, OSError, GeoError) as exc:
                log.warning("planning round failed: %s", exc)
            except Exception:  # a bug met in one round must not end planning for good
                log.exception("planning round failed")
                self._stale_rounds += 1  # (no endless idle rounds into the same failure)

    async def plan_once(self, *, idle: bool = False, fresh: bool = False) -> RoundSummary:
        """One round: triggered by an event (the default), or an ``idle`` improvement round,
        warm or ``fresh`` (a cold solve)."""
        async with self._one_at_a_time:
            summary = await self._plan_once(idle=idle, fresh=fresh)
            self.rounds += 1
            event = {"type": "plan", "round": self.rounds, "vehicles": summary.vehicles,
                     "orders": summary.orders, "assigned": summary.assigned,
                     "dropped": len(summary.dropped), "changed_routes": summary.changed_routes,
                     "kept_previous": summary.kept_previous, "objective": summary.objective,
                     "kind": "fresh" if fresh else "improve" if idle else "event",
                     "seconds": round(summary.seconds, 3),
                     "at": int(self.clock() * 1000)}  # fmt: skip
            async with self.redis.pipeline(transaction=False) as pipe:
                queue_event(pipe, event)
                await pipe.execute()
            return summary

    async def _plan_once(self, *, idle: bool, fresh: bool) -> RoundSummary:
        started = lap = time.perf_counter()
        phases: dict[str, float] = {}

        def done(step: str) -> None:  # where a round's time goes, for the log
            nonlocal lap
            phases[step], lap = round(time.perf_counter() - lap, 3), time.perf_counter()

        now = self.clock()
        registered = await all_vehicles(self.redis)
        fleet = [v for v in registered if v.status == "available"]
        where = {p.id: p for p in await positions(self.redis, [v.id for v in fleet])}
        fleet = [v for v in fleet if v.id in where]
        # (A held order, after a wrong address, waits for a dispatcher: its parcel stays on
        # the van, with no stop for it.)
        found = await self.orders.find(status=None, limit=5000, open_only=True)
        held = {o.id for o in found if o.held}
        # A parcel on a van out of service (broken down, say) is collected by another from
        # where that van last was: a ``transfer`` stop, then the parcel's drop-off.
        stranded = {
            o.id: holder for o in found
            if o.id not in held and (holder := _parcel_on(o)) is not None and holder not in where
        }  # fmt: skip
        stuck_at = {p.id: p for p in await positions(self.redis, sorted(set(stranded.values())))}
        stranded = {o: holder for o, holder in stranded.items() if holder in stuck_at}
        open_orders = [
            o for o in found
            if o.id not in held and (
                o.status in PLANNABLE if (holder := _parcel_on(o)) is None
                else holder in where or o.id in stranded)  # (else: it waits on its van)
        ]  # fmt: skip
        # Working hours: a vehicle between its shifts is not planned, unless it has goods on
        # board (it finishes those, late as the plan says); one on shift ends with it.
        moment = dt.datetime.fromtimestamp(now, tz=dt.UTC)
        shift_left = {v.id: v.shift_left(moment, self.zone) for v in fleet}
        carrying = {c for o in open_orders if (c := _carried_by(o, where)) is not None}
        fleet = [v for v in fleet if shift_left[v.id] is not None or v.id in carrying]
        where = {v.id: where[v.id] for v in fleet}
        promises = await self._promises(open_orders) if self.promise_slack_s is not None else {}
        places = [(where[v.id].lat, where[v.id].lon) for v in fleet]
        # A parcel going back to the sender is dropped off where it came from: the shop, or
        # the depot of the van that has it (none now: nowhere to plan, it waits on the van).
        depots = {v.id: v.depot for v in registered}
        back_to = {o.id: _return_place(o, depots) for o in open_orders if o.status == "returning"}
        open_orders = [o for o in open_orders if o.id not in back_to or back_to[o.id] is not None]
        # An order without a pickup place is loaded at a depot (the fleet's, in or out of
        # service: the place does not move with the vans).
        loads = sorted({(v.depot.lat, v.depot.lon) for v in registered if v.depot is not None})
        index: dict[tuple[str, str], int] = {}
        for o in open_orders:
            holder = _parcel_on(o)
            if holder is None:
                start = _pickup_place(o.pickup, o.dropoff, loads)
            elif o.id in stranded:
                start = (stuck_at[holder].lat, stuck_at[holder].lon)
            else:
                start = None  # on board
            if start is not None:  # (none: on board, or leaving with the van)
                index[(o.id, "pickup")] = len(places)
                places.append(start)
            index[(o.id, "dropoff")] = len(places)
            places.append(back_to.get(o.id) or (o.dropoff.lat, o.dropoff.lon))
        depot_at: dict[str, int] = {}  # vehicle → where its routes end (its depot), in places
        for record in fleet:
            if record.depot is not None:
                depot_at[record.id] = len(places)
                places.append((record.depot.lat, record.depot.lon))
        done("read")
        # One vectorised snap (a vehicle off the roads is taken to the nearest one).
        seconds = np.zeros((0, 0))
        snapped: list[tuple[float, float]] = []
        if places:
            batch = self.roads.snap_many([p[0] for p in places], [p[1] for p in places])
            snapped = list(zip(batch.lat.tolist(), batch.lon.tolist(), strict=True))
            seconds = self.roads.matrix_s(batch, batch)
            # A vehicle's fix may sit between roads: it leaves by whichever leads on soonest.
            fixes = [i for i in range(len(fleet)) if batch.inside[i]]
            if fixes:
                seconds[fixes] = np.minimum(
                    seconds[fixes], self.roads.from_fixes_s([places[i] for i in fixes], batch)
                )
        seconds = seconds * await self._pace()
        traffic = frozenset(
            e for e, event in self.roads.traffic.events.items() if event.active(now)
        )
        done("matrix")
        horizon = 2 * 24 * 3600
        times = np.where(np.isfinite(seconds), np.ceil(seconds), horizon).astype(np.int64)
        np.fill_diagonal(times, 0)
        dimensions = sorted(
            {k for v in fleet for k in v.capacity} | {k for o in open_orders for k in o.size}
        )
        fleet_ids = [v.id for v in fleet]
        pins = {o: v for o, v in (await self.orders.pins()).items() if v in where}
        vehicles = [
            Vehicle(id=v.id, start=i, capacity=tuple(int(v.capacity.get(d, 0)) for d in dimensions),
                    skills=frozenset(v.skills), end=depot_at.get(v.id),
                    shift=(0, math.ceil(min(24 * 3600, shift_left[v.id] or 0))))
            for i, v in enumerate(fleet)
        ]  # fmt: skip
        tasks = [
            Task(
                id=o.id,
                pickup=index.get((o.id, "pickup")),
                dropoff=index[(o.id, "dropoff")],
                pickup_window=(0, horizon) if o.id in stranded
                else _window(now, o.pickup_window, horizon),
                dropoff_window=(0, horizon) if o.id in back_to else _kept(
                    _window(now, o.window, horizon), promises.get(o.id), now,
                    self.promise_slack_s or 0.0),
                pickup_service_s=int(o.pickup_service_s),
                dropoff_service_s=int(o.service_s),
                size=tuple(math.ceil(o.size.get(d, 0)) for d in dimensions),
                skills=frozenset(o.skills),
                priority=o.priority,
                on_board=_carried_by(o, where),
                assigned=pins[o.id] if pins.get(o.id) in where else (
                    None if self.reoptimize or o.vehicle_id not in where else o.vehicle_id),
            )
            for o in open_orders
        ]  # fmt: skip
        problem = Problem(
            times=times, vehicles=vehicles, tasks=tasks, dimensions=tuple(dimensions),
            costs=Costs(balance=1), horizon=horizon,
            locked=await self._promised(
                fleet_ids, {o.id: o for o in open_orders}, pins, now,
                pickups={o for o, kind in index if kind == "pickup"},
                aboard={t.id: t.on_board for t in tasks if t.on_board is not None},
            ),
        )  # fmt: skip
        problem = dataclasses.replace(problem, locked=problem.keepable_locks())
        done("problem")
        # In a worker process: OR-Tools holds the GIL while it searches, which in a thread
        # would stall this process's sockets for the whole round.
        self._interrupt.clear()
        self._idle_round = idle
        warm = self._candidate or self._previous
        earlier = self._by_traffic.get(traffic)  # the last candidate under this same traffic
        if idle and self._wake.is_set():
            plan = None  # an event came while this round was being set up: it goes first
        else:
            try:
                plan = await asyncio.get_running_loop().run_in_executor(
                    self._executor(),
                    functools.partial(extend, problem, self._previous)
                    if not self.reoptimize and self._previous is not None
                    else functools.partial(
                        _solve_in_worker, problem,
                        time_limit=self.fresh_limit_s if fresh else self.time_limit_s,
                        initial=None if fresh else warm,
                        reference=self._previous, second_engine=False,
                        alternatives=[] if earlier is None or earlier is warm else [earlier],
                    ),
                )  # fmt: skip
            except NoSolution:  # an idle round interrupted before it had a plan
                plan = None
            finally:
                self._idle_round = False
        done("solve")
        if fresh:
            self._fresh_done = True
        candidate = self._candidate
        if plan is None or (
            idle and candidate is not None and plan.objective >= 0.999 * candidate.objective
        ):
            self._stale_rounds += 1  # (an event resets the count: see run)
            if fresh or plan is None:  # a worse plan from scratch is not a warm start
                plan = None
        else:
            self._stale_rounds = 0
        if plan is not None:
            self.last_problem, self.last_plan = problem, plan  # for benchmarks, debugging
            self._candidate = plan
            self._by_traffic.pop(traffic, None)  # (the latest last)
            self._by_traffic[traffic] = plan
            while len(self._by_traffic) > TRAFFIC_STATES:
                del self._by_traffic[next(iter(self._by_traffic))]
        waiting = {o.id for o in open_orders if o.status == "received"}
        # A depot set, moved or removed changes where routes end, a parcel to take back
        # changes where its stop is, and a held order's stops are to go: the plan is taken
        # whatever its cost, so the stored routes say so.
        ends_now = {v.id: (v.depot.lat, v.depot.lon) if v.depot else None for v in fleet}
        previous = self._previous.routes if self._previous else []
        on_plan = {v.task_id for r in previous for v in r.visits}
        moved_stops = (
            any(self._ends.get(v) != end for v, end in ends_now.items())
            or bool(back_to.keys() - self._returns)
            or bool(held & on_plan)  # a stop no driver is to drive to any more
        )
        if plan is None or not (moved_stops or self._better(
            plan, {t.id for t in tasks} - waiting, set(fleet_ids), pins
        )):  # fmt: skip
            if not idle:
                returns = set(back_to)
                ahead = {
                    (t.id, _stop_kind(t.id, kind, returns, stranded))
                    for t in tasks
                    for kind in (("dropoff",) if t.pickup is None else ("pickup", "dropoff"))
                }
                await self._redraw(snapped, {v.id: v.start for v in vehicles}, ahead)
                done("redraw")
            return RoundSummary(
                vehicles=len(vehicles), orders=len(tasks),
                assigned=sum(1 for r in self._previous.routes for v in r.visits
                             if v.kind == "dropoff") if self._previous else 0,
                dropped={d.task_id: d.reason for d in (plan or candidate or Plan([])).dropped},
                changed_routes=[],
                seconds=time.perf_counter() - started, kept_previous=True, phases=phases,
                objective=plan.objective if plan else None,
                candidate=self._candidate.objective if self._candidate else None,
            )  # fmt: skip
        self._previous = plan
        ends = {
            o.id: horizon if o.id in back_to else _window(now, o.window, horizon)[1]
            for o in open_orders
        }
        changed = await self._store(
            plan,
            snapped,
            now,
            {v.id: v.start for v in vehicles},
            ends,
            depot_at,
            set(back_to),
            stranded,
        )
        self._ends.update(ends_now)
        self._returns = set(back_to)
        planned = {route.vehicle_id for route in plan.routes}
        changed += await self._empty_routes([v.id for v in registered if v.id not in planned], now)
        done("store")
        by_id = {o.id: o for o in open_orders}

        async def confirm(order_id: str, vehicle_id: str, start_s: int, collect: str) -> None:
            with contextlib.suppress(Conflict):  # another process got there first
                await self.orders.transition(
                    order_id, "processed", by="planner", vehicle_id=vehicle_id
                )
                if collect:
                    await self.orders.hand_over(order_id, vehicle_id, transfer_from=collect)
                # the ETA promised at confirmation, against which ETA accuracy is judged
                promised = int((now + start_s) * 1000)
                await self.redis.hsetnx(keys.order(order_id), "promised_eta", promised)

        updates = []  # each order's own: they go concurrently
        for route in plan.routes:
            for visit in route.visits:
                order = by_id[visit.task_id]
                collect = stranded.get(order.id, "")  # (the van out of service to collect from)
                if visit.kind == "dropoff" and order.status == "received":
                    updates.append(confirm(order.id, route.vehicle_id, visit.start_s, collect))
                elif visit.kind == "dropoff" and (
                    order.vehicle_id != route.vehicle_id or order.transfer_from != collect
                ):
                    # customers follow their order to its new van
                    updates.append(
                        self.orders.hand_over(order.id, route.vehicle_id, transfer_from=collect)
                    )
        await asyncio.gather(*updates)
        done("orders")
        return RoundSummary(
            vehicles=len(vehicles),
            orders=len(tasks),
            assigned=sum(1 for r in plan.routes for v in r.visits if v.kind == "dropoff"),
            dropped={d.task_id: d.reason for d in plan.dropped},
            changed_routes=changed,
            seconds=time.perf_counter() - started,
            phases=phases,
            objective=plan.objective,
            candidate=plan.objective,
        )

    def _better(
        self, plan: Plan, task_ids: set[str], vehicle_ids: set[str], pins: dict[str, str]
    ) -> bool:
        """Whether ``plan`` replaces the current one: there is none, it could not be read back
        onto this problem, the new one serves a different set of orders (new ones placed,
        others dropped, a vehicle's orders handed over), or it costs at least ``margin`` less.
        No flip-flopping for crumbs. ``task_ids``: the orders planned before that still are
        (not those waiting for a vehicle, new or back after a failed attempt: placing them is
        a change)."""
        old = self._previous
        if old is None or plan.reference_objective is None:
            return True
        served_before = {
            v.task_id for r in old.routes if r.vehicle_id in vehicle_ids for v in r.visits
        } & task_ids
        served_now = {v.task_id for r in plan.routes for v in r.visits}
        if served_now != served_before:
            return True
        on_before = {v.task_id: r.vehicle_id for r in old.routes for v in r.visits}
        if any(on_before.get(t, v) != v for t, v in pins.items() if t in task_ids):
            return True  # a dispatcher moved an order to another vehicle
        return plan.objective < plan.reference_objective * (1 - self.margin)

    async def _promised(
        self,
        vehicle_ids: list[str],
        orders: dict[str, Any],
        pins: dict[str, str],
        now: float,
        *,
        pickups: set[str],
        aboard: dict[str, str],
    ) -> dict[str, tuple[str, ...]]:
        """Vehicle → the orders of the stops it keeps first, in order, from its current route:
        the stop it is driving to (a re-plan never turns a driver around) and the ones after it
        due within ``freeze_s`` (their customers were given those ETAs: a re-plan moves them
        neither to another van nor behind new orders). A stop done, or no longer this
        vehicle's, is skipped, as is a pickup no longer to be made (``pickups``: the orders
        with one this round) and a stop of a parcel on board another van (``aboard``: order →
        that van; a van back in service before its parcel was collected); the frozen run ends
        at an order a dispatcher pinned elsewhere."""
        promised: dict[str, tuple[str, ...]] = {}
        taken: set[str] = set()
        for vehicle_id in vehicle_ids:
            raw = cast("bytes | None", await self.redis.get(keys.route(vehicle_id)))
            kept: list[str] = []
            for stop in json.loads(raw)["stops"] if raw else []:
                order = orders.get(stop["order_id"])
                if order is None or order.vehicle_id != vehicle_id:
                    continue  # done, cancelled or not this vehicle's any more
                if order.status == "received":
                    continue  # back with the planner (a failed attempt): promised no more
                if aboard.get(order.id, vehicle_id) != vehicle_id:
                    continue  # its parcel is on another van
                if stop["kind"] in ("pickup", "transfer") and order.id not in pickups:
                    continue  # picked up already, or no depot left to load it at
                if stop["kind"] == "dropoff" and order.status == "returning":
                    continue  # failed: the way back is planned afresh
                if order.id in taken or pins.get(order.id, vehicle_id) != vehicle_id:
                    break
                if kept and stop["eta"] / 1000 > now + self.freeze_s:
                    break
                kept.append(order.id)
            taken.update(kept)
            if kept:
                promised[vehicle_id] = tuple(kept)
        return promised

    async def _promises(self, orders: list[Order]) -> dict[str, float]:
        """Order → the drop-off time promised at its confirmation (epoch seconds); none for an
        order back after a failed attempt (that promise is broken already)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for o in orders:
                pipe.hget(keys.order(o.id), "promised_eta")
            raw = await pipe.execute()
        return {
            o.id: int(p) / 1000
            for o, p in zip(orders, raw, strict=True)
            if p is not None and "failed" not in o.nodes
        }

    async def _pace(self) -> float:
        """The learned city-wide pace factor (see ``dispatching/etas.py``); 1 until there is
        one. Only the city-wide one: with the per-area factors in the matrix (which the ETAs
        use), the rush scenario's on-time rate fell by 7 points (one run each, seed 7)."""
        raw = await self.redis.get(keys.PACE)
        try:
            return float(raw) if raw is not None else 1.0
        except ValueError:
            return 1.0

    def _draw(
        self, geometry: str, here: tuple[float, float], stops: list[tuple[float, float]]
    ) -> tuple[str, bool]:
        """A route's road path, drawn again from ``here`` when it has none or the vehicle is
        more than ``OFF_ROUTE_M`` from it; and whether it was."""
        if not stops or (
            geometry and self.roads.distance_to_path_m(*here, decode(geometry)) <= OFF_ROUTE_M
        ):
            return geometry, False
        return encode(self.roads.path_through([here, *stops])), True

    async def _draw_all(
        self, drafts: list[tuple[str, tuple[float, float], list[tuple[float, float]]]]
    ) -> list[tuple[str, bool]]:
        """:meth:`_draw` for many routes, in one worker thread (the event loop serves the
        sockets meanwhile)."""
        return await asyncio.to_thread(lambda: [self._draw(*draft) for draft in drafts])

    async def _redraw(
        self,
        snapped: list[tuple[float, float]],
        starts: dict[str, int],
        ahead: set[tuple[str, str]],
    ) -> None:
        """Routes kept as they are: re-draw (and re-send, same version) the road path of each
        vehicle that has left its own, through the stops still ``ahead`` (order, kind)."""
        ids = list(starts)
        if not ids:
            return
        raws = cast("list[bytes | None]", await self.redis.mget([keys.route(v) for v in ids]))
        documents = {v: json.loads(raw) for v, raw in zip(ids, raws, strict=True) if raw}
        drawn = await self._draw_all([
            (document.get("geometry", ""), snapped[starts[v]],
             [(s["lat"], s["lon"]) for s in document["stops"]
              if (s["order_id"], s["kind"]) in ahead]
             + ([(document["end"]["lat"], document["end"]["lon"])] if document.get("end") else []))
            for v, document in documents.items()
        ])  # fmt: skip
        async with self.redis.pipeline(transaction=True) as pipe:
            for (vehicle_id, document), (geometry, redraw) in zip(
                documents.items(), drawn, strict=True
            ):
                if redraw:
                    document["geometry"] = geometry
                    pipe.set(keys.route(vehicle_id), json.dumps(document))
                    queue_event(pipe, document)
            await pipe.execute()

    async def _empty_routes(self, vehicle_ids: list[str], now: float) -> list[str]:
        """Empty the routes of vehicles out of this plan (in maintenance, off shift, broken
        down, without a position) that still list stops: their orders are planned on other vans
        now, and their drivers must not drive to them too. A new version, published."""
        if not vehicle_ids:
            return []
        raws = cast(
            "list[bytes | None]", await self.redis.mget([keys.route(v) for v in vehicle_ids])
        )
        emptied = []
        async with self.redis.pipeline(transaction=True) as pipe:
            for vehicle_id, raw in zip(vehicle_ids, raws, strict=True):
                old = json.loads(raw) if raw else None
                if not old or not old["stops"]:
                    continue
                document = msgspec.to_builtins(
                    Route(vehicle_id, old["version"] + 1, int(now * 1000), [], "")
                )
                pipe.set(keys.route(vehicle_id), json.dumps(document))
                queue_event(pipe, document)
                emptied.append(vehicle_id)
            await pipe.execute()
        return emptied

    async def _store(
        self,
        plan: Plan,
        snapped: list[tuple[float, float]],
        now: float,
        starts: dict[str, int],
        ends: dict[str, int],
        depots: dict[str, int],
        returns: set[str],
        transfers: dict[str, str],
    ) -> list[str]:
        """Write each route; bump the version and publish only when its stops changed. The
        road geometry is drawn again then, or when the vehicle has left the one it has (it is
        published again, same version). One read, one thread for the drawing, one write.
        ``ends``: each order's window end (seconds from ``now``), against which a drop-off's
        ``late_s`` is told (the plan's own is against the promise when that comes first).
        ``depots``: where the routes of vehicles with a depot end (their way back is drawn and
        their return time given). ``returns``: the orders whose drop-off takes the parcel back to
        the sender (a stop of kind ``return``); ``transfers``: order → the van out of service
        its pickup collects the parcel from (a stop of kind ``transfer``)."""
        ids = [route.vehicle_id for route in plan.routes]
        if not ids:
            return []
        raws = cast("list[bytes | None]", await self.redis.mget([keys.route(v) for v in ids]))
        drafts = []
        for route, raw in zip(plan.routes, raws, strict=True):
            stops = [
                RouteStop(order_id=v.task_id, lat=snapped[v.location][0],
                          kind=_stop_kind(v.task_id, v.kind, returns, transfers),
                          lon=snapped[v.location][1], eta=int((now + v.start_s) * 1000),
                          late_s=v.late_s if v.kind == "pickup"
                          else max(0, v.start_s - ends[v.task_id]),
                          from_vehicle=transfers[v.task_id]
                          if v.kind == "pickup" and v.task_id in transfers else msgspec.UNSET)
                for v in route.visits
            ]  # fmt: skip
            old = json.loads(raw) if raw else None
            same = old is not None and [(s["order_id"], s["kind"]) for s in old["stops"]] == [
                (s.order_id, s.kind) for s in stops
            ]
            version = (old["version"] if old else 0) + (0 if same else 1)
            depot = depots.get(route.vehicle_id)
            end = None if depot is None else RouteEnd(
                lat=snapped[depot][0], lon=snapped[depot][1], eta=int((now + route.end_s) * 1000)
            )  # fmt: skip
            was = (old or {}).get("end")
            new_end = (was and (was["lat"], was["lon"])) != (end and (end.lat, end.lon))
            # (a depot set, moved or removed: the path to draw and the news to send change)
            geometry = old.get("geometry", "") if same and old and not new_end else ""
            drafts.append((route.vehicle_id, stops, same, new_end, version, geometry, end))
        drawn = await self._draw_all([
            (geometry, snapped[starts[vehicle_id]],
             [(s.lat, s.lon) for s in stops] + ([(end.lat, end.lon)] if end else []))
            for vehicle_id, stops, _, _, _, geometry, end in drafts
        ])  # fmt: skip
        changed = []
        async with self.redis.pipeline(transaction=True) as pipe:
            for (vehicle_id, stops, same, new_end, version, _, end), (geometry, redraw) in zip(
                drafts, drawn, strict=True
            ):
                document = msgspec.to_builtins(
                    Route(vehicle_id, version, int(now * 1000), stops, geometry, end)
                )
                pipe.set(keys.route(vehicle_id), json.dumps(document))
                if not same or new_end or redraw:
                    queue_event(pipe, document)
                if not same:
                    changed.append(vehicle_id)
            await pipe.execute()
        return changed
