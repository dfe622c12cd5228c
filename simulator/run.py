"""``fleet simulate`` and ``fleet demo``: servers, simulated worlds, reports."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from geo.roads import Roads
from server.clock import REAL, Clock
from simulator import report
from simulator.oracle import Yardstick
from simulator.scenario import Scenario, fingerprint, generate
from simulator.servers import ServerProcess
from simulator.world import RunResult, World


def _say(line: str) -> None:
    print(line, flush=True)


def shared_clock(speed: float) -> tuple[Clock, dict[str, str]]:
    """The simulated clock ``speed`` times faster than real time (``REAL`` at 1) and the
    settings that give a server the same one (``ValueError`` below 1)."""
    if speed == 1:
        return REAL, {}
    clock = Clock(rate=speed, anchor=time.time())
    return clock, {"FLEET_CLOCK_RATE": repr(speed), "FLEET_CLOCK_ANCHOR": repr(clock.anchor)}


def simulate(
    scenario: Scenario,
    *,
    osm_file: Path,
    roads_cache: Path,
    report_path: Path,
    baseline: bool = True,
    server_settings: dict[str, str] | None = None,
    speed: float = 1.0,
    say: Callable[[str], None] = _say,
) -> dict[str, Any]:
    """Run ``scenario`` with re-optimisation on and, in the same invocation, the baseline (off),
    side by side on two servers; write the JSON report, a summary and charts; return the report.

    ``speed`` above 1 runs the servers and the simulated world on one simulated clock that
    many times faster than real time (``server.clock``: one anchor, passed to the servers as
    ``FLEET_CLOCK_RATE`` and ``FLEET_CLOCK_ANCHOR``); ping → console latency stays in real ms."""
    clock, clock_settings = shared_clock(speed)
    roads = Roads.open(osm_file, roads_cache, progress=say)
    events = generate(scenario, roads.network)
    say(
        f"scenario {scenario.name} (seed {scenario.seed}, events {fingerprint(events)}): "
        f"{scenario.vehicles} vehicles, {len(events.orders)} orders, {len(events.incidents)} "
        f"incidents over {scenario.duration_s / 60:g} min on {roads.network.name}"
        + (f", {speed:g}x faster than real time" if speed != 1 else "")
    )
    arms = [("re-optimised", True)] + ([("baseline", False)] if baseline else [])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fleet-sim-") as tmp, contextlib.ExitStack() as stack:
        servers = []
        for label, on in arms:
            settings = {"FLEET_REOPTIMIZE": "on" if on else "off", **(server_settings or {}),
                        **clock_settings}  # fmt: skip
            folder = Path(tmp) / label
            servers.append(
                stack.enter_context(
                    ServerProcess(folder, osm_file=osm_file, roads_cache=roads_cache,
                                  settings=settings, log=Path(tmp) / f"{label}.log")
                )
            )  # fmt: skip
            say(f"  [{label}] server at {servers[-1].base_url}")

        async def both() -> list[RunResult]:
            worlds = [
                World(events, roads, base_url=server.base_url, reoptimize=on, label=label,
                      staff_token=server.token("dispatcher", f"simulator {label}"), progress=say,
                      clock=clock)
                for server, (label, on) in zip(servers, arms, strict=True)
            ]  # fmt: skip
            return list(await asyncio.gather(*(w.run() for w in worlds)))

        results = asyncio.run(both())
    say("replaying the kept routes on the true traffic (the report's yardstick)")
    yardstick = Yardstick(Roads.open(osm_file, roads_cache, progress=lambda _: None), events)
    runs = [report.figures(r, yardstick.replay(r, report.eta_scores(r))) for r in results]
    vs = report.compare(runs[0], runs[1] if len(runs) > 1 else None)
    about = {**dataclasses.asdict(scenario), "events": fingerprint(events),
             "failure_reasons": [list(pair) for pair in scenario.failure_reasons],  # as JSON has it
             "network": roads.network.name,
             "server_settings": dict(server_settings or {}),
             "speed": speed, "latency_clock": "real"}  # fmt: skip
    document = {
        "scenario": about,
        "runs": runs,
        "vs_baseline": vs,
        "wall_s": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    report.write(report_path, document)
    traced = report_path.with_name(f"{report_path.stem}-trace.json")
    traced.write_text(json.dumps({"scenario": about, "runs": [report.trace(r) for r in results]}))
    text = report.summary_text(about, runs, vs)
    if speed != 1:
        head, _, rest = text.partition("\n")
        text = (f"{head}\nClock: {speed:g}x real time ({scenario.duration_s / speed / 60:.1f} "
                f"real minutes); ping → console latency in real ms.\n{rest}")  # fmt: skip
    summary = report_path.with_suffix(".txt")
    summary.write_text(text)
    charts = report.charts(results, report_path.parent, report_path.stem)
    say("")
    say(text.rstrip())
    say(
        f"report: {report_path}; summary: {summary}; trace: {traced}; "
        f"charts: {', '.join(map(str, charts))}"
    )
    say(json.dumps({"scenario": scenario.name, "runs": runs, "vs_baseline": vs}))
    return document


def demo(
    scenario: Scenario,
    *,
    osm_file: Path,
    roads_cache: Path,
    host: str,
    port: int,
    duration_s: float | None,
    speed: float = 1.0,
    say: Callable[[str], None] = _say,
) -> None:
    """Serve on ``host:port`` with a simulated fleet until ``duration_s`` (simulated seconds)
    or Ctrl-C; ``speed`` above 1 runs the server and the fleet that many times faster than
    real time, as :func:`simulate` does."""
    clock, clock_settings = shared_clock(speed)
    roads = Roads.open(osm_file, roads_cache)
    events = generate(scenario, roads.network)
    with (
        tempfile.TemporaryDirectory(prefix="fleet-demo-") as tmp,
        ServerProcess(Path(tmp), osm_file=osm_file, roads_cache=roads_cache, host=host,
                      port=port, settings=clock_settings, log=Path(tmp) / "server.log") as server,
    ):  # fmt: skip
        staff = server.token("dispatcher", "fleet demo")
        world = World(events, roads, base_url=server.base_url, staff_token=staff,
                      reoptimize=True, label="demo", progress=say, clock=clock)  # fmt: skip
        base = server.base_url

        async def run() -> None:
            import httpx

            async with httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {staff}"}
            ) as api:
                answer = await api.post("/vehicles", json={"name": "Your phone"})
                phone = answer.json()
            task = asyncio.create_task(world.run(duration_s))
            loop = asyncio.get_running_loop()

            def stop() -> None:
                say("stopping…")
                world.stop()

            for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or a service manager's stop
                loop.add_signal_handler(sig, stop)
            say("fleet demo is running (Ctrl-C to stop).")
            say(f"  console:  {base}/console#token={staff}")
            say(f"  driver:   {base}/driver#token={phone['token']}  (your phone as a vehicle)")
            say(f"  API doc:  {base}/schema/swagger   (dispatcher token: {staff})")
            every = scenario.arrivals_until * scenario.duration_s / max(1, scenario.orders)
            faster = f" of simulated time, {speed:g}x faster than real time" if speed != 1 else ""
            say(f"  {scenario.vehicles} simulated vans on {roads.network.name}; an order about "
                f"every {every:.0f} s{faster}")  # fmt: skip
            waiting = asyncio.create_task(world.first_tracking_link.wait())
            await asyncio.wait([waiting, task], timeout=120, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            for order_id, token in list(world.tracking.items())[:1]:
                say(f"  tracking: {base}/t/{token}  (order {order_id}, as its customer sees it)")
            await task

        asyncio.run(run())
