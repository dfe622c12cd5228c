"""``fleet bench dispatch --sets dynamic``: re-planning on a live server on the Andorra roads.

A real server (in this process, on a private Redis) with 50 vans connected over the driver
socket and 250 pickup-and-delivery orders (500 stops) in the busy part of the country. Then, in
turns: 10% new orders arrive at once (and are cancelled once planned, so every trial starts from
the same 500 stops), and a traffic event (a slowdown over the busy area) starts or ends. For
each event: the latency from the event being accepted by the API to the end of the
planning round it caused, as announced by the ``plan`` event on the console socket (routes are
pushed in that same round, before the orders' own updates), and, for rounds that changed
routes, to the first and to the last route pushed to a driver. Each event comes once the
planner is idle (its improvement rounds converged), as in service. After each event the warm
re-plan's cost (what the planner produced, warm-started from its candidate, within
``FLEET_SOLVER_TIME_LIMIT_S``) is compared with a 10 s cold solve of the same problem: the
mean and the worst over the trials.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
from websockets.asyncio.client import ClientConnection, connect

from dispatch.solver import solve
from geo.distance import haversine_m
from geo.roads import Roads
from server.app import create_app
from server.auth import issue_token
from server.redis_process import PrivateRedis
from server.serving import build_server
from server.settings import Settings
from simulator.load import percentile
from simulator.truth import ring

CENTRE = (42.5078, 1.5211)  # Andorra la Vella
RADIUS_M = 3000.0
_decode = msgspec.json.Decoder().decode


class _Server:
    """The app in a thread (uvicorn), so the benchmark can read its planner."""

    def __init__(self, settings: Settings, roads: Roads) -> None:
        self.app = create_app(settings, roads=roads)
        self.server = build_server(self.app, log_level="warning")
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def run(
    osm_file: Path,
    *,
    vehicles: int = 50,
    orders: int = 250,
    trials: int = 8,
    time_limit: float = 0.3,
    cold_limit: float = 10.0,
    seed: int = 1,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fleet-bench-replan-") as tmp:
        roads = Roads.open(osm_file, Path(tmp) / "roads", progress=progress)
        with PrivateRedis(Path(tmp) / "redis") as redis:
            settings = Settings(
                redis_url=redis.url, data_dir=Path(tmp), port=0, log_level="warning",
                solver_time_limit_s=time_limit, eta_refresh_s=3600.0,
            )  # fmt: skip
            server = _Server(settings, roads)
            with server as base:
                token = issue_token(redis.url, "dispatcher", "bench replan")
                return asyncio.run(
                    _bench(server, base, token, roads, vehicles=vehicles, orders=orders,
                           trials=trials, cold_limit=cold_limit, seed=seed, progress=progress)
                )  # fmt: skip


def _places(roads: Roads, rng: random.Random, n: int) -> list[tuple[float, float]]:
    net = roads.network
    near = [
        i for i in range(net.node_count)
        if haversine_m(*CENTRE, float(net.node_lat[i]), float(net.node_lon[i])) <= RADIUS_M
    ]  # fmt: skip
    return [
        (float(net.node_lat[k]), float(net.node_lon[k]))
        for k in (rng.choice(near) for _ in range(n))
    ]


def _order(pickup: tuple[float, float], dropoff: tuple[float, float]) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "pickup": {"lat": pickup[0], "lon": pickup[1]},
        "dropoff": {"lat": dropoff[0], "lon": dropoff[1]},
        "window": {"start": now.isoformat(), "end": (now + dt.timedelta(hours=4)).isoformat()},
        "size": {"parcels": 1}, "service_s": 120, "pickup_service_s": 60,
    }  # fmt: skip


async def _bench(
    server: _Server,
    base: str,
    token: str,
    roads: Roads,
    *,
    vehicles: int,
    orders: int,
    trials: int,
    cold_limit: float,
    seed: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    rng = random.Random(seed)
    ws_base = base.replace("http://", "ws://", 1)
    plans: list[tuple[float, dict[str, Any]]] = []
    routes: list[tuple[float, str]] = []
    plan_seen = asyncio.Event()
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=60) as api:
        drivers: list[ClientConnection] = []
        now = int(time.time() * 1000)
        for i, (lat, lon) in enumerate(_places(roads, rng, vehicles)):
            body = {"id": f"van-{i + 1:02d}", "capacity": {"parcels": 12}}
            van = (await api.post("/vehicles", json=body)).json()
            ws = await connect(f"{ws_base}/ws/driver?token={van['token']}", compression=None)
            await ws.send(msgspec.json.encode(
                {"type": "pings", "seq": 1, "pings": [{"lat": lat, "lon": lon, "ts": now}]}
            ).decode())  # fmt: skip
            drivers.append(ws)

        async def read_driver(ws: ClientConnection) -> None:
            async for raw in ws:
                message = _decode(raw)
                if message.get("type") == "route":
                    routes.append((time.perf_counter(), message["vehicle_id"]))

        async def read_console() -> None:
            async with connect(f"{ws_base}/ws/console?token={token}", compression=None) as ws:
                async for raw in ws:
                    message = _decode(raw)
                    event = message.get("event", {}) if message.get("type") == "event" else {}
                    if event.get("type") == "plan":
                        plans.append((time.perf_counter(), event))
                        plan_seen.set()

        readers = [asyncio.create_task(read_driver(ws)) for ws in drivers]
        readers.append(asyncio.create_task(read_console()))
        await asyncio.sleep(0.5)
        progress(f"{vehicles} vans connected; creating {orders} orders ({2 * orders} stops)")
        points = _places(roads, rng, 2 * orders)
        for k in range(orders):
            await api.post("/orders", json=_order(points[2 * k], points[2 * k + 1]))
        await _quiet(server, plans)  # the planner has placed them and stopped improving
        summary = (await api.post("/dispatch/replan")).json()
        progress(f"initial plan: {summary['assigned']} orders assigned to {summary['vehicles']} "
                 f"vans, {len(summary['dropped'])} unplanned")  # fmt: skip

        latencies: dict[str, list[float]] = {"new_orders": [], "traffic": []}
        to_push: dict[str, list[float]] = {"new_orders": [], "traffic": []}
        to_all: dict[str, list[float]] = {"new_orders": [], "traffic": []}  # its last route
        no_plan = {"new_orders": 0, "traffic": 0}  # event rounds that found no plan
        warm_vs_cold: dict[str, list[float]] = {"new_orders": [], "traffic": []}
        area = ring(*CENTRE, 1500.0, sides=16)
        for trial in range(trials):
            for kind in ("new_orders", "traffic"):
                await _quiet(server, plans)
                seen = len(plans)
                pushed = len(routes)
                added: list[str] = []
                if kind == "new_orders":
                    fresh = _places(roads, rng, orders // 5)  # 10% of the orders: 2 stops each
                    bodies = [_order(fresh[2 * k], fresh[2 * k + 1]) for k in range(orders // 10)]
                    answers = await asyncio.gather(*(api.post("/orders", json=b) for b in bodies))
                    assert all(a.status_code == 201 for a in answers)
                    added = [a.json()["order"]["id"] for a in answers]
                elif trial % 2 == 0:
                    answer = await api.post("/traffic-events", json={
                        "id": f"jam-{trial}", "polygon": area, "factor": 0.4,
                        "label": "benchmark slowdown"})  # fmt: skip
                    assert answer.status_code == 201, answer.text
                else:
                    answer = await api.delete(f"/traffic-events/jam-{trial - 1}")
                    assert answer.status_code in (200, 204), answer.text
                event_at = time.perf_counter()
                k = await _next_plan(plans, seen, plan_seen, within_s=30)
                plan = plans[k]
                latencies[kind].append(plan[0] - event_at)
                after = plans[k - 1][0] if k > seen else event_at  # a round in flight: not its
                round_pushes = [t for t, _ in routes[pushed:] if after < t <= plan[0]]
                if round_pushes:
                    to_push[kind].append(round_pushes[0] - event_at)
                    to_all[kind].append(round_pushes[-1] - event_at)
                kept = " (kept: not better by the margin)" if plan[1]["kept_previous"] else ""
                pushes = (
                    f", pushed {1000 * (round_pushes[0] - event_at):.0f}"
                    f"-{1000 * (round_pushes[-1] - event_at):.0f} ms"
                    if round_pushes else ""
                )  # fmt: skip
                progress(
                    f"  trial {trial + 1} {kind}: round done "
                    f"{1000 * (plan[0] - event_at):.0f} ms after the event, "
                    f"{len(plan[1]['changed_routes'])} routes changed{kept}{pushes}"
                )
                if plan[1]["objective"] is None:  # the round found no plan: none to compare
                    no_plan[kind] += 1
                    progress("  the round found no plan: the previous one stands")
                else:
                    warm_vs_cold[kind].append(_cold_gap(server, cold_limit, progress))
                if kind == "new_orders":  # back to the issue's 500 stops for the next trial
                    await _quiet(server, plans)
                    for order_id in added:
                        answer = await api.post(f"/orders/{order_id}/cancel")
                        assert answer.status_code == 200, answer.text
        for task in readers:
            task.cancel()
        for ws in drivers:
            await ws.close()
    result: dict[str, Any] = {"vehicles": vehicles, "orders": orders, "stops": 2 * orders,
                              "trials": trials}  # fmt: skip
    for kind in latencies:
        values = latencies[kind]
        result[kind] = {
            "round_done_ms_p50": round(1000 * statistics.median(values)),
            "round_done_ms_p95": round(1000 * percentile(values, 0.95)),
            "first_route_pushed_ms_p50": (
                round(1000 * statistics.median(to_push[kind])) if to_push[kind] else None
            ),
            "first_route_pushed_ms_p95": (
                round(1000 * percentile(to_push[kind], 0.95)) if to_push[kind] else None
            ),
            "all_routes_pushed_ms_p50": (
                round(1000 * statistics.median(to_all[kind])) if to_all[kind] else None
            ),
            "all_routes_pushed_ms_p95": (
                round(1000 * percentile(to_all[kind], 0.95)) if to_all[kind] else None
            ),
            "warm_vs_cold_pct_mean": (
                round(statistics.fmean(warm_vs_cold[kind]), 2) if warm_vs_cold[kind] else None
            ),
            "warm_vs_cold_pct_worst": max(warm_vs_cold[kind], default=None),
            "rounds_without_plan": no_plan[kind],
        }
    return result


async def _quiet(
    server: _Server, plans: list[tuple[float, dict[str, Any]]], *, at_most_s: float = 300.0
) -> None:
    """Wait until the planner is idle: its improvement rounds (warm, and a fresh solve) have
    converged and no round has ended for a second (or ``at_most_s`` has passed)."""
    planner = server.app.state.planner
    give_up = time.perf_counter() + at_most_s
    while time.perf_counter() < give_up:
        last = plans[-1][0] if plans else 0.0
        await asyncio.sleep(1.0)
        if planner.converged and (plans[-1][0] if plans else 0.0) == last:
            return


async def _next_plan(
    plans: list[tuple[float, dict[str, Any]]], seen: int, flag: asyncio.Event, *, within_s: float
) -> int:
    """The index in ``plans`` of the first round an event started after ``seen``: an idle
    improvement round that was in flight when the event came (it gives way to it) is not it."""
    deadline = time.perf_counter() + within_s
    while True:
        flag.clear()
        for k in range(seen, len(plans)):
            if plans[k][1].get("kind") == "event":
                return k
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError("no planning round followed the event")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(flag.wait(), remaining)


def _cold_gap(server: _Server, cold_limit: float, progress: Callable[[str], None]) -> float:
    """The last warm plan's cost against a cold solve of the same problem (percent)."""
    planner = server.app.state.planner
    problem, warm = planner.last_problem, planner.last_plan
    cold = solve(problem, time_limit=cold_limit)
    gap = 100 * (warm.objective - cold.objective) / max(1, cold.objective)
    progress(f"  warm plan {warm.objective:,} vs {cold_limit:g} s cold solve {cold.objective:,}: "
             f"{gap:+.2f}%")  # fmt: skip
    return float(round(gap, 2))
