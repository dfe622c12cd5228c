"""The judge's ETA scores: each ETA at the right horizon, split by whether its route was kept,
and the kept routes replayed on the true traffic."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from geo.roads import Roads
from simulator.driving import ArcLookup, Drive
from simulator.oracle import Yardstick
from simulator.report import HORIZONS_S, eta_scores, figures, summary_text
from simulator.scenario import SCENARIOS, PlannedOrder, generate, ground_truth
from simulator.truth import Incident
from simulator.vehicle import StopRecord, VehicleStats
from simulator.world import Observed, RunResult, SeenRoute, counted


def order(ref: str) -> PlannedOrder:
    return PlannedOrder(ref, 0.0, (60.17, 24.94), (60.16, 24.93), 0.0, 3000.0, False, False, 1,
                        None)  # fmt: skip


def stop(order_id: str, kind: str, van: str, at: float, outcome: str = "") -> StopRecord:
    outcome = outcome or ("picked_up" if kind == "pickup" else "delivered")
    return StopRecord(order_id, kind, van, at, at, outcome)


def run(routes: list[SeenRoute], records: list[StopRecord]) -> RunResult:
    ids = {r.order_id for r in records}
    return RunResult(
        label="re-optimised", reoptimize=True, duration_s=3000.0, t0_ms=0,
        orders={i: order(i) for i in ids}, tracking={}, records=records,
        final_status={i: "delivered" for i in ids},
        vehicles={"v1": VehicleStats(), "v2": VehicleStats()},
        observed=Observed(routes=routes), broken=[],
    )  # fmt: skip


def test_an_eta_is_scored_with_the_last_update_shown_at_least_the_horizon_before() -> None:
    routes = [
        SeenRoute(0.0, "v1", "route", [("a", "pickup", 100.0), ("a", "dropoff", 1000.0)], None),
        SeenRoute(400.0, "v1", "eta", [("a", "dropoff", 1150.0)], None),
        SeenRoute(1000.0, "v1", "eta", [("a", "dropoff", 1190.0)], None),
    ]
    result = run(routes, [stop("a", "pickup", "v1", 120.0), stop("a", "dropoff", "v1", 1200.0)])
    scores = eta_scores(result)
    # 5 min before 1200 is 900: the update of 400 s is the last shown by then; 15 min before
    # is 300: the route of 0 s; nothing was shown 30 min before.
    assert [s.error_s for s in scores[300]] == [50.0]
    assert [s.error_s for s in scores[900]] == [200.0]
    assert scores[1800] == []
    assert all(s.kept for h in HORIZONS_S for s in scores[h])


def test_a_route_that_changed_after_the_eta_is_told_apart_from_one_kept() -> None:
    shown = [("a", "dropoff", 600.0), ("b", "dropoff", 900.0), ("c", "dropoff", 1000.0),
             ("d", "dropoff", 1100.0)]  # fmt: skip
    routes = [
        SeenRoute(0.0, "v1", "route", shown, None),
        SeenRoute(0.0, "v2", "route", [("e", "dropoff", 1000.0)], None),
    ]
    records = [
        # v1 is serving a's drop-off when the route is shown (it stays first in the update)
        stop("a", "dropoff", "v1", -20.0),
        stop("b", "dropoff", "v1", 960.0),  # as shown: kept, 60 s late
        stop("x", "pickup", "v1", 1000.0),  # a new order put in ahead of c and d
        stop("c", "dropoff", "v1", 1300.0),
        stop("d", "dropoff", "v2", 1400.0),  # moved to the other van
        stop("e", "dropoff", "v2", 1010.0),  # kept on v2
    ]

    def scored() -> list[tuple[float, bool]]:  # b, e, c, d: in the order they were served
        return [(s.error_s, s.kept) for s in eta_scores(run(routes, records))[900]]

    assert scored() == [(60.0, True), (10.0, True), (300.0, False), (300.0, False)]
    # The same, with the new order put in behind c: c's route ahead was kept, d's was not.
    records[2] = stop("x", "pickup", "v1", 1310.0)
    assert scored() == [(60.0, True), (10.0, True), (300.0, True), (300.0, False)]


def test_the_report_gives_the_split_and_says_it() -> None:
    routes = [SeenRoute(0.0, "v1", "route", [("a", "dropoff", 1000.0), ("b", "dropoff", 1100.0)],
                        None)]  # fmt: skip
    records = [
        stop("a", "dropoff", "v1", 1030.0),
        stop("x", "pickup", "v1", 1050.0),  # a new order put in between a and b
        stop("b", "dropoff", "v1", 1090.0),
    ]
    figs = figures(run(routes, records))
    e15 = figs["eta_error"]["15min"]
    assert (e15["n"], e15["mae_s"], e15["bias_s"]) == (2, 20.0, 10.0)
    assert e15["kept"] == {"n": 1, "mae_s": 30.0, "bias_s": 30.0}
    assert e15["changed"] == {"n": 1, "mae_s": 10.0, "bias_s": -10.0}
    scenario = {"name": "t", "seed": 1, "vehicles": 2, "orders": 2, "incidents": 0,
                "reported": 0, "duration_s": 3000.0, "gps_sigma_m": 12.0, "failure_rate": 0.03,
                "failure_reasons": [["refused", 0.1], ["other", 0.05]]}  # fmt: skip
    text = summary_text(scenario, [figs], {})
    assert "GPS noise 12 m; first drop-off attempts failing: 10% refused, 5% other." in text
    assert "route ahead kept as shown: MAE 30.0 s, bias 30.0 s (n=1); changed: MAE 10.0 s" in text


def test_the_yardstick_replays_a_kept_route_on_the_true_traffic(
    helsinki: Roads, helsinki_pbf: Path, helsinki_cache: Path
) -> None:
    rush = generate(SCENARIOS["rush"], helsinki.network)
    order, van = rush.orders[0], rush.vehicles[0].start
    shown_at = 100.0
    # A jam nobody reports, around the drop-off, from a minute after the ETA was shown.
    jam = Incident("jam", *order.dropoff, radius_m=250.0, factor=0.2, start_s=shown_at + 60,
                   end_s=5000.0, reported=False)  # fmt: skip
    events = dataclasses.replace(rush, incidents=(jam,))
    truth, lookup = ground_truth(events, helsinki.network), ArcLookup(helsinki)

    def drive(start: tuple[float, float], goal: tuple[float, float], t: float) -> float:
        """When a van leaving ``start`` at ``t`` gets to ``goal`` (the simulator's 1 s ticks)."""
        leg = Drive.plan(helsinki, lookup, start, goal)
        while not leg.done:
            leg.advance(1.0, t, truth)
            t += 1.0
        return t

    picked = drive(van, order.pickup, shown_at)
    dropped = drive(order.pickup, order.dropoff, picked + rush.scenario.pickup_service_s)
    begins = max(dropped, order.window_start_s)
    stops = [("o", "pickup", picked - 5), ("o", "dropoff", begins - 40)]
    shown = SeenRoute(shown_at, "v1", "route", stops, van)
    result = run([shown], [stop("o", "pickup", "v1", picked), stop("o", "dropoff", "v1", begins)])
    result.orders["o"] = order
    yardstick = Yardstick(Roads.open(helsinki_pbf, helsinki_cache, progress=print), events)
    assert begins - shown_at >= 300, "scored at the 5-minute horizon"
    replayed = yardstick.replay(result, eta_scores(result))[300]
    assert len(replayed) == 1
    again = replayed[0]
    assert again.error_s == 40.0
    # Knowing the traffic as it came, the replay gets the van's times back (to its ticks)...
    assert abs(again.known_ahead_s) <= 3.0
    # ...knowing it only as it was when shown, it misses the jam that came after.
    assert again.known_now_s > 60.0
    figs = figures(result, yardstick.replay(result, eta_scores(result)))
    assert figs["eta_error"]["5min"]["kept"]["replayed"]["known_ahead"]["n"] == 1


def test_progress_counts_read_as_english() -> None:
    assert [counted(n, "order") for n in (0, 1, 2)] == ["0 orders", "1 order", "2 orders"]
