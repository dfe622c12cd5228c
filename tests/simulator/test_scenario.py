"""Scenarios are repeatable; the ground truth and the driving model behave like roads."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dispatch.problem import Problem, Task, Vehicle
from dispatch.solver import extend
from geo.roads import Roads
from simulator.driving import ArcLookup, Drive
from simulator.scenario import SCENARIOS, fingerprint, generate
from simulator.truth import GroundTruth


def test_same_seed_same_orders_incidents_and_routes(helsinki: Roads) -> None:
    rush = SCENARIOS["rush"]
    a, b = generate(rush, helsinki.network), generate(rush, helsinki.network)
    assert a == b
    assert fingerprint(a) == fingerprint(b)
    assert len(a.orders) == 150
    assert len(a.vehicles) == 25
    assert len(a.incidents) == 3
    assert sum(i.reported for i in a.incidents) == 2
    other = generate(rush.with_seed(8), helsinki.network)
    assert fingerprint(other) != fingerprint(a)
    assert [o.dropoff for o in other.orders] != [o.dropoff for o in a.orders]

    # The routes: the first twenty orders planned for the fleet twice give the same plan.
    def plan() -> list[tuple[str, list[tuple[str, str]]]]:
        orders = a.orders[:20]
        points = [helsinki.snap(*v.start) for v in a.vehicles]
        for o in orders:
            points += [helsinki.snap(*o.pickup), helsinki.snap(*o.dropoff)]
        times = np.ceil(helsinki.matrix_s(points, points)).astype(np.int64)
        np.fill_diagonal(times, 0)
        n = len(a.vehicles)
        problem = Problem(
            times=times,
            vehicles=[Vehicle(id=v.id, start=i, capacity=(12,)) for i, v in enumerate(a.vehicles)],
            tasks=[
                Task(id=o.id, pickup=n + 2 * k, dropoff=n + 2 * k + 1, size=(o.parcels,))
                for k, o in enumerate(orders)
            ],
        )
        # The first plan every solve starts from (cheapest insertion): the search after it runs
        # for a wall-clock time limit, and how far it gets depends on the machine's load.
        result = extend(problem, None)
        return [(r.vehicle_id, [(v.task_id, v.kind) for v in r.visits]) for r in result.routes]

    routes = plan()
    assert sum(len(visits) for _, visits in routes) == 40, "every order planned"
    assert routes == plan()


def test_ground_truth_is_slower_than_free_flow_and_incidents_slow_further(
    helsinki: Roads,
) -> None:
    events = generate(SCENARIOS["rush"], helsinki.network)
    truth = GroundTruth(helsinki.network, seed=7, level=0.85, incidents=events.incidents)
    arcs = range(helsinki.network.arc_count)
    factors = np.array([truth.factor(arc, 0.0) for arc in arcs])
    assert np.all(factors <= 0.85 + 1e-9)
    assert np.all(factors > 0)
    incident = events.incidents[0]
    inside = [a for a in arcs if truth._incident_arcs[0][a]]
    assert inside, "an incident covers some roads"
    during = (incident.start_s + incident.end_s) / 2
    without = GroundTruth(helsinki.network, seed=7, level=0.85)
    for arc in inside[:20]:
        assert truth.factor(arc, during) < without.factor(arc, during)
        assert truth.factor(arc, incident.end_s + 1) == without.factor(arc, incident.end_s + 1)


def test_a_van_drives_the_leg_at_the_true_speed(helsinki: Roads) -> None:
    events = generate(dataclasses.replace(SCENARIOS["rush"], incidents=0), helsinki.network)
    order = events.orders[0]
    drive = Drive.plan(helsinki, ArcLookup(helsinki), order.pickup, order.dropoff)
    route = helsinki.route(order.pickup, order.dropoff)
    # The same path (segment lengths are haversine, the model's ellipsoidal: within 0.5%).
    assert abs(drive.remaining_m - route.distance_m) < 0.005 * route.distance_m
    slow = GroundTruth(helsinki.network, seed=1, level=0.5, hot_spots=0)
    seconds = 0
    while not drive.done:
        drive.advance(1.0, float(seconds), slow)
        seconds += 1
    # At half the free-flow speed the leg takes twice the model's time (to the second).
    assert abs(seconds - 2 * route.time_s) <= 1.5 + 0.01 * route.time_s
    lat, lon, _ = drive.position()
    end = helsinki.snap(*order.dropoff)
    assert abs(lat - end.lat) < 1e-6
    assert abs(lon - end.lon) < 1e-6


def test_failures_by_reason_and_the_default_draws_unchanged(helsinki: Roads) -> None:
    rush = SCENARIOS["rush"]
    # The rush scenario's events on the built-in map, as every published run of seed 7 had
    # them (docs/BENCHMARKS.md): rates by reason must not change what a seed gives by default.
    assert fingerprint(generate(rush, helsinki.network)) == "68f6db98eea0271d"
    mixed = dataclasses.replace(rush, failure_reasons=(("refused", 0.3), ("other", 0.1)))
    reasons = [o.failure for o in generate(mixed, helsinki.network).orders]
    assert set(reasons) == {None, "refused", "other"}
    assert 0.2 < reasons.count("refused") / len(reasons) < 0.4
    assert 0.03 < reasons.count("other") / len(reasons) < 0.2
    none = dataclasses.replace(rush, failure_rate=0.0)
    assert all(o.failure is None for o in generate(none, helsinki.network).orders)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"failure_reasons": (("lost", 0.1),)}, "unknown failure reason 'lost'"),
        ({"failure_reasons": (("refused", 0.7), ("other", 0.5))}, "add up to more than 1"),
        ({"failure_rate": 1.5}, "between 0 and 1"),
        ({"gps_sigma_m": -1.0}, "0 m or more"),
    ],
)
def test_a_scenario_refuses_impossible_rates(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SCENARIOS["rush"], **change)  # type: ignore[arg-type]
