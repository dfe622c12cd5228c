"""The solver on tiny named instances, and on a real Solomon instance."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from dispatch import pyvrp_engine
from dispatch.check import violations
from dispatch.errors import NoSolution, ProblemError
from dispatch.plan import Plan, Route, Visit
from dispatch.problem import Costs, Problem, Task, Vehicle
from dispatch.solomon import SCALE, parse, to_problem
from dispatch.solver import (
    _as_before,
    _late_reinserted,
    _plan_of,
    _stops,
    extend,
    insert_missing,
    solve,
)
from tests.conftest import SHARED_DATA

LIMIT = 0.5  # seconds per solve: the instances are tiny


def line_times(n: int = 8, minute_per_km: int = 60) -> np.ndarray:
    """Locations 0..n-1 one kilometre apart on a straight road: a minute per kilometre."""
    x = np.arange(n)
    return (np.abs(x[:, None] - x[None, :]) * minute_per_km).astype(np.int64)


def three_vans_five_orders(**changes: object) -> Problem:
    """Three vans at the depot (location 0): A with a cold-chain box, B plain, C in maintenance;
    five orders along the road — t3 needs cold chain, t4 is picked up at 2, t5 is express."""
    vans = [
        Vehicle(id="A", start=0, capacity=(10,), skills=frozenset({"cold_chain"})),
        Vehicle(id="B", start=0, capacity=(10,)),
        Vehicle(id="C", start=0, capacity=(10,), available=False),
    ]
    tasks = [
        Task(id="t1", pickup=0, dropoff=3, size=(2,)),
        Task(id="t2", pickup=0, dropoff=5, size=(2,)),
        Task(id="t3", pickup=0, dropoff=6, size=(2,), skills=frozenset({"cold_chain"})),
        Task(id="t4", pickup=2, dropoff=7, size=(3,)),
        Task(id="t5", pickup=0, dropoff=4, size=(1,), priority="express"),
    ]
    problem = Problem(times=line_times(), vehicles=vans, tasks=tasks)
    return dataclasses.replace(problem, **changes) if changes else problem  # type: ignore[arg-type]


def test_every_order_is_served_feasibly_and_rules_hold() -> None:
    problem = three_vans_five_orders()
    plan = solve(problem, time_limit=LIMIT)
    assert violations(problem, plan, windows_hard=True) == []
    assert plan.dropped == []
    assert plan.route_of("C") is None, "a vehicle in maintenance is never planned"
    assert plan.vehicle_of("t3") == "A", "cold chain rides the cold-chain van"
    for route in plan.routes:
        kinds = [(v.task_id, v.kind) for v in route.visits]
        for task_id in {t for t, _ in kinds}:
            assert kinds.index((task_id, "pickup")) < kinds.index((task_id, "dropoff"))


def test_goods_on_board_stay_on_their_vehicle_through_re_plans() -> None:
    first = three_vans_five_orders()
    plan = solve(first, time_limit=LIMIT)
    carrier = plan.vehicle_of("t2")
    assert carrier is not None
    other = "A" if carrier == "B" else "B"
    # t2 is now picked up by its carrier; a new order appears right where the other van is.
    tasks = [t for t in first.tasks if t.id != "t2"] + [
        Task(id="t2", pickup=None, dropoff=5, size=(2,), on_board=carrier),
        Task(id="t6", pickup=1, dropoff=5, size=(2,)),
    ]
    again = solve(dataclasses.replace(first, tasks=tasks), time_limit=LIMIT, initial=plan)
    assert again.vehicle_of("t2") == carrier
    assert violations(dataclasses.replace(first, tasks=tasks), again, windows_hard=True) == []
    assert other in {r.vehicle_id for r in again.routes}


def test_assigned_tasks_keep_their_vehicle_even_when_another_is_closer() -> None:
    """Without re-optimisation (the baseline), an assigned order stays on its van: t4 is
    assigned to A although B, in the same place, would serve it as well."""
    base = three_vans_five_orders()
    tasks = [dataclasses.replace(t, assigned="A") if t.id == "t4" else t for t in base.tasks]
    problem = dataclasses.replace(base, tasks=tasks)
    plan = solve(problem, time_limit=LIMIT)
    assert plan.vehicle_of("t4") == "A"
    assert violations(problem, plan, windows_hard=True) == []
    # Assigned to a van that is not available: planned like any other order.
    tasks = [dataclasses.replace(t, assigned="C") if t.id == "t4" else t for t in base.tasks]
    plan = solve(dataclasses.replace(base, tasks=tasks), time_limit=LIMIT)
    assert plan.vehicle_of("t4") in {"A", "B"}


def test_a_warm_start_puts_new_orders_in_before_searching() -> None:
    """New orders go into the previous plan by cheapest insertion (capacity, skills and the
    locked first stop respected), so even a very short warm re-plan serves them."""
    first = three_vans_five_orders()
    plan = solve(first, time_limit=LIMIT)
    tasks = [
        *first.tasks,
        Task(id="t6", pickup=1, dropoff=5, size=(2,)),
        Task(id="t7", pickup=None, dropoff=2, size=(1,), skills=frozenset({"cold_chain"})),
    ]
    locked = {r.vehicle_id: (r.visits[0].task_id,) for r in plan.routes if r.visits}
    again = dataclasses.replace(first, tasks=tasks, locked=locked)
    warm = solve(again, time_limit=0.01, initial=plan)
    assert warm.dropped == []
    assert warm.vehicle_of("t7") == "A"
    assert violations(again, warm, windows_hard=True) == []
    for vehicle_id, (task_id,) in locked.items():
        route = warm.route_of(vehicle_id)
        assert route is not None
        assert route.visits[0].task_id == task_id


def test_cheapest_insertion_places_every_order_within_the_rules() -> None:
    problem = three_vans_five_orders()
    vans = [v for v in problem.vehicles if v.available]
    stops = _stops(problem)
    routes: list[list[int]] = [[] for _ in vans]
    insert_missing(routes, vans, stops, problem)
    placed = [[(stops[k].task.id, stops[k].kind) for k in route] for route in routes]
    every = {(t.id, kind) for t in problem.tasks for kind in ("pickup", "dropoff")}
    assert {stop for route in placed for stop in route} == every
    for route in placed:
        for task_id in {t for t, _ in route}:
            assert route.index((task_id, "pickup")) < route.index((task_id, "dropoff"))
    assert ("t3", "dropoff") in placed[0], "cold chain only on A"
    # Capacity: van A carries t1 and t2 (2 parcels each) from 0; a 9-parcel order from 3 to 5
    # would cost nothing between t1's drop at 3 and t2's at 5, but 2 + 9 > 10 there: it goes
    # after t2's drop-off instead (cheaper than sending the empty van B).
    two = [t for t in problem.tasks if t.id in {"t1", "t2"}]
    big = dataclasses.replace(problem, tasks=[*two, Task(id="big", pickup=3, dropoff=5, size=(9,))])
    stops = _stops(big)
    k = {(s.task.id, s.kind): i for i, s in enumerate(stops)}
    routes = [[k["t1", "pickup"], k["t2", "pickup"], k["t1", "dropoff"], k["t2", "dropoff"]], []]
    insert_missing(routes, vans, stops, big)
    assert routes[0][-2:] == [k["big", "pickup"], k["big", "dropoff"]]
    assert routes[1] == []


def test_insertion_prices_the_workload_balance() -> None:
    """Van A already drives to 5 with three long drop-offs there; a fourth order to 5 adds no
    driving to A but 600 s of work past the even share (1,800 s): with ``balance`` the empty
    van B takes it (300 s of driving), without it A does."""
    vans = [Vehicle(id="A", start=0, capacity=(10,)), Vehicle(id="B", start=0, capacity=(10,))]
    tasks = [Task(id=f"t{i}", pickup=0, dropoff=5, size=(1,), dropoff_service_s=600)
             for i in range(1, 5)]  # fmt: skip
    for balance, taker in ((1, 1), (0, 0)):
        problem = Problem(
            times=line_times(), vehicles=vans, tasks=tasks, costs=Costs(balance=balance)
        )
        stops = _stops(problem)
        k = {(s.task.id, s.kind): i for i, s in enumerate(stops)}
        routes: list[list[int]] = [
            [k[f"t{i}", "pickup"] for i in (1, 2, 3)] + [k[f"t{i}", "dropoff"] for i in (1, 2, 3)],
            [],
        ]
        insert_missing(routes, vans, stops, problem)
        assert k["t4", "dropoff"] in routes[taker], f"balance {balance}: van {'AB'[taker]}"


def test_too_big_or_unskilled_orders_are_reported_with_a_reason() -> None:
    tasks = [
        Task(id="huge", pickup=0, dropoff=2, size=(50,)),
        Task(id="hazmat", pickup=0, dropoff=2, size=(1,), skills=frozenset({"hazmat"})),
        Task(id="fine", pickup=0, dropoff=2, size=(1,)),
    ]
    problem = three_vans_five_orders(tasks=tasks)
    plan = solve(problem, time_limit=LIMIT)
    reasons = {d.task_id: d.reason for d in plan.dropped}
    assert reasons == {
        "huge": "larger than any suitable vehicle's capacity",
        "hazmat": "no available vehicle has the skills ['hazmat']",
    }
    assert plan.vehicle_of("fine") is not None
    assert violations(problem, plan) == []


def test_soft_windows_serve_late_rather_than_drop() -> None:
    # Drop-off at 7 km must be done by 60 s: impossible, 7 minutes away.
    tasks = [Task(id="rush", pickup=0, dropoff=7, size=(1,), dropoff_window=(0, 60))]
    problem = three_vans_five_orders(tasks=tasks)
    plan = solve(problem, time_limit=LIMIT)
    assert plan.dropped == []
    [visit] = [v for r in plan.routes for v in r.visits if v.kind == "dropoff"]
    assert visit.late_s == 7 * 60 - 60
    assert violations(problem, plan, windows_hard=False) == []
    hard = solve(dataclasses.replace(problem, hard_windows=True), time_limit=LIMIT)
    assert [d.task_id for d in hard.dropped] == ["rush"]


def test_a_locked_next_stop_stays_first() -> None:
    problem = three_vans_five_orders(locked={"B": ("t4",)})
    plan = solve(problem, time_limit=LIMIT)
    route = plan.route_of("B")
    assert route is not None
    assert (route.visits[0].task_id, route.visits[0].kind) == ("t4", "pickup")
    assert violations(problem, plan) == []


def test_locked_stops_stay_first_in_their_order_through_warm_and_cold_solves() -> None:
    # A frozen horizon: the next stops of a route are promised, so a re-plan keeps them (a
    # pickup, another drop-off, the pickup's drop-off) first and in order; new orders and
    # moves only ever come after them.
    problem = three_vans_five_orders()
    plan = solve(problem, time_limit=LIMIT)
    route = max(plan.routes, key=lambda r: len(r.visits))
    assert len(route.visits) >= 3
    promised = tuple(v.task_id for v in reversed(route.visits[-3:]))  # not the plan's order
    locked = dataclasses.replace(problem, locked={route.vehicle_id: promised})
    expected = locked.locked_stops()[route.vehicle_id]
    for found in (solve(locked, time_limit=LIMIT, initial=plan), solve(locked, time_limit=LIMIT)):
        again = found.route_of(route.vehicle_id)
        assert again is not None
        assert [(v.task_id, v.kind) for v in again.visits[: len(expected)]] == expected
        assert violations(locked, found) == []
        assert found.dropped == [] or {d.task_id for d in found.dropped}.isdisjoint(promised)


def test_a_promise_the_roads_no_longer_allow_is_not_kept() -> None:
    # t1 (drop-off at 3) then t4 (pickup at 2, drop-off at 7) are promised; the road into 2 is
    # closed: the lock ends before it, and the solver may leave t4 out.
    times = line_times()
    times[:, 2] = 48 * 3600
    times[2, 2] = 0
    problem = three_vans_five_orders(times=times, locked={"A": ("t1", "t4", "t4")})
    assert problem.keepable_locks() == {"A": ("t1",)}
    assert dataclasses.replace(problem, times=line_times()).keepable_locks() == problem.locked


def test_a_task_can_be_locked_on_one_vehicle_only_and_at_most_once_per_stop() -> None:
    with pytest.raises(ProblemError, match="two vehicles"):
        three_vans_five_orders(locked={"A": ("t1",), "B": ("t1",)})
    with pytest.raises(ProblemError, match="more often"):
        three_vans_five_orders(locked={"A": ("t1", "t1", "t1")})


def test_same_problem_same_plan_and_warm_start_is_no_worse() -> None:
    problem = three_vans_five_orders(costs=Costs(balance=5))
    one, two = solve(problem, time_limit=LIMIT, seed=1), solve(problem, time_limit=LIMIT, seed=1)
    assert one == two
    warm = solve(problem, time_limit=LIMIT, initial=one)
    assert warm.objective <= one.objective


def test_the_checker_catches_a_broken_plan() -> None:
    problem = three_vans_five_orders(tasks=[Task(id="t1", pickup=0, dropoff=3, size=(2,))])
    backwards = [Visit("t1", "dropoff", 3, 180, 180, 0), Visit("t1", "pickup", 0, 360, 360, 0)]
    broken = Plan(routes=[Route("B", backwards, 360, 360, 0), Route("C", [], 0, 0, 0)])
    found = violations(problem, broken)
    assert "t1 is delivered by B without being picked up by it first" in found
    assert "C is not available but has a route" not in found, "an empty route is fine"
    late = Plan(routes=[Route("B", [Visit("t1", "pickup", 0, 0, 0, 0),
                                    Visit("t1", "dropoff", 3, 60, 60, 0)], 60, 60, 0)])  # fmt: skip
    assert "t1 dropoff: plan says 60, earliest is 180" in violations(problem, late)


@pytest.mark.slow
def test_solomon_c101_with_the_best_known_fleet() -> None:
    path = SHARED_DATA / "vrp" / "solomon" / "C101.txt"
    if not path.is_file():
        pytest.skip(f"{path} is absent: the Solomon test needs ../shared/data/vrp")
    problem = to_problem(parse(path))
    plan = solve(problem, time_limit=2.0)
    assert violations(problem, plan) == []
    assert plan.dropped == []
    assert plan.vehicles_used == 10  # the best known
    assert plan.distance_m / SCALE < 828.94 * 1.05


def test_the_checker_counts_what_leaves_the_depot() -> None:
    tasks = [Task(id=f"d{i}", pickup=None, dropoff=3, size=(4,)) for i in range(3)]
    problem = three_vans_five_orders(tasks=tasks)
    visits = [Visit(f"d{i}", "dropoff", 3, 180, 180, 0) for i in range(3)]
    plan = Plan(routes=[Route("B", visits, 180, 180, 0)])
    assert violations(problem, plan) == ["B leaves with 12 > 10 parcels"]


def test_pyvrp_runs_beside_or_tools_only_on_problems_it_expresses_exactly() -> None:
    assert not pyvrp_engine.fits(three_vans_five_orders()), "pickups, skills: OR-Tools alone"
    path = SHARED_DATA / "vrp" / "solomon" / "R101.txt"
    if not path.is_file():
        pytest.skip(f"{path} is absent: the Solomon instances are in ../shared/data/vrp")
    problem = to_problem(parse(path))
    assert pyvrp_engine.fits(problem)
    both = solve(problem, time_limit=1.0)
    assert violations(problem, both) == []
    assert both.dropped == []
    assert both.engine in {"ortools", "pyvrp"}
    # PyVRP's plan, re-timed from the problem, passes the same checker: searched in stages
    # that try smaller fleets (the default, within the limit) or as PyVRP comes.
    for reduce_fleet in (True, False):
        started = time.perf_counter()
        theirs = pyvrp_engine.solve_here(problem, 0.5, reduce_fleet=reduce_fleet)
        assert time.perf_counter() - started < 0.5 + 1.0, "the stages share one limit"
        assert violations(problem, theirs) == []
        assert theirs.dropped == []
        assert theirs.objective == pyvrp_engine.cost(problem, theirs)


def test_insertion_prices_the_new_stops_lateness_not_only_the_detour() -> None:
    # Van A waits at 6 until 1000 s for t1; "soon" at 7 must be there by 450 s. Right after t1
    # adds the least driving (60 s) but arrives at 1060 s; before t1 costs 120 s and is on time.
    problem = Problem(
        times=line_times(),
        vehicles=[Vehicle(id="A", start=0, capacity=(10,))],
        tasks=[
            Task(id="t1", pickup=None, dropoff=6, dropoff_window=(1000, 2000), size=(1,)),
            Task(id="soon", pickup=None, dropoff=7, dropoff_window=(0, 450), size=(1,)),
        ],
    )
    stops = _stops(problem)
    routes = [[0]]
    insert_missing(routes, list(problem.vehicles), stops, problem)
    assert [stops[k].task.id for k in routes[0]] == ["soon", "t1"]


def test_insertion_prices_the_lateness_it_pushes_onto_later_stops() -> None:
    # Van A at 0 will drop t1 at 2 and t2 at 4, the latter exactly as its window closes (240 s).
    # "x" at 1 lies on A's way (no detour), but its minute of service would make t2 a minute
    # late: 600 in lateness. Van B at 3 reaches it in 120 s, late for nobody: B takes it.
    problem = Problem(
        times=line_times(),
        vehicles=[
            Vehicle(id="A", start=0, capacity=(10,)),
            Vehicle(id="B", start=3, capacity=(10,)),
        ],
        tasks=[
            Task(id="t1", pickup=None, dropoff=2, size=(1,)),
            Task(id="t2", pickup=None, dropoff=4, dropoff_window=(0, 240), size=(1,)),
            Task(id="x", pickup=None, dropoff=1, dropoff_service_s=60, size=(1,)),
        ],
    )
    stops = _stops(problem)
    routes: list[list[int]] = [[0, 1], []]
    insert_missing(routes, list(problem.vehicles), stops, problem)
    assert [[stops[k].task.id for k in route] for route in routes] == [["t1", "t2"], ["x"]]


def test_after_a_traffic_shock_late_orders_are_put_back_where_they_are_on_time() -> None:
    # The plan had van A drop t1 at 1 and x at 6 by 400 s (on time at a minute per km). Traffic
    # now takes two: A would reach 6 at 720 s. Van B at 7 gets there in 120 s: x moves to B;
    # t1, on time, stays. Were A's route locked on x, x would stay (a driver is never turned).
    problem = Problem(
        times=line_times(minute_per_km=120),
        vehicles=[
            Vehicle(id="A", start=0, capacity=(10,)),
            Vehicle(id="B", start=7, capacity=(10,)),
        ],
        tasks=[
            Task(id="t1", pickup=None, dropoff=1, size=(1,)),
            Task(id="x", pickup=None, dropoff=6, dropoff_window=(0, 400), size=(1,)),
        ],
    )
    stops = _stops(problem)
    vans = list(problem.vehicles)
    repaired = _late_reinserted([[0, 1], []], vans, stops, problem)
    assert repaired is not None
    assert [[stops[k].task.id for k in route] for route in repaired] == [["t1"], ["x"]]
    assert _late_reinserted(repaired, vans, stops, problem) is None, "nothing late: no change"
    locked = dataclasses.replace(problem, locked={"A": ("x",)})
    assert _late_reinserted([[1, 0], []], vans, stops, locked) is None


def test_a_warm_start_that_breaks_a_lock_is_mended_not_thrown_away() -> None:
    problem = three_vans_five_orders()
    plan = solve(problem, time_limit=LIMIT)
    route = next(r for r in plan.routes if len({v.task_id for v in r.visits}) > 1)
    last = route.visits[-1].task_id  # the driver has since set off towards this one
    locked = dataclasses.replace(problem, locked={route.vehicle_id: (last,)})
    warm = solve(locked, time_limit=LIMIT, initial=plan)
    assert warm.initial_objective is not None, "the warm start was read, not a cold solve"
    again = warm.route_of(route.vehicle_id)
    assert again is not None
    assert again.visits[0].task_id == last
    assert violations(locked, warm) == []


def test_plan_once_dispatch_puts_new_orders_in_and_moves_nothing_planned() -> None:
    problem = three_vans_five_orders()
    # A poor first plan: B drives out to 7 and comes back for 3 and 5, A has the rest.
    visits = [("t4", "pickup", 2), ("t4", "dropoff", 7), ("t2", "pickup", 0), ("t2", "dropoff", 5),
              ("t1", "pickup", 0), ("t1", "dropoff", 3)]  # fmt: skip
    poor = Plan(
        routes=[
            Route("B", [Visit(t, k, at, 0, 0, 0) for t, k, at in visits], 0, 0, 0),
            Route("A", [Visit(t, k, at, 0, 0, 0) for t, k, at in
                        [("t3", "pickup", 0), ("t5", "pickup", 0), ("t5", "dropoff", 4),
                         ("t3", "dropoff", 6)]], 0, 0, 0),
        ]
    )  # fmt: skip
    tasks = [*problem.tasks, Task(id="t6", pickup=0, dropoff=1, size=(1,))]
    later = dataclasses.replace(problem, tasks=tasks)
    plan = extend(later, poor)
    assert plan.dropped == []
    assert violations(later, plan) == []
    for before in poor.routes:
        after = plan.route_of(before.vehicle_id)
        assert after is not None
        kept = [(v.task_id, v.kind) for v in after.visits if v.task_id != "t6"]
        assert kept == [(v.task_id, v.kind) for v in before.visits], "nothing planned moves"
    assert plan.vehicle_of("t6") is not None
    assert plan.objective > solve(later, time_limit=LIMIT).objective, "re-planning pays"
    assert plan.reference_objective is not None
    assert plan.reference_objective > plan.objective, "t6 left out would cost its drop penalty"
    unchanged = extend(problem, poor)  # nothing new: the routes as they stand
    assert unchanged.objective == unchanged.reference_objective
    first = extend(problem, None)
    assert first.dropped == []
    assert violations(problem, first) == []


@pytest.mark.parametrize("back_to", [None, 1])
def test_a_plan_timed_and_costed_from_its_routes_is_the_models(back_to: int | None) -> None:
    # When OR-Tools has no time left to hand a solution back, the plan is made from the
    # routes themselves: the same times, ends and cost as the model gives; with the vans'
    # routes ending at a depot (location 1), the way back counts in both.
    problem = dataclasses.replace(three_vans_five_orders(), costs=Costs(balance=1))
    vans = [dataclasses.replace(v, end=back_to) for v in problem.vehicles]
    problem = dataclasses.replace(problem, vehicles=vans)
    plan = solve(problem, time_limit=LIMIT)
    vans = [v for v in problem.vehicles if v.available]
    stops = _stops(problem)
    again = _plan_of(_as_before(plan, vans, stops, problem), vans, stops, problem, [],
                     initial_objective=None, reference_objective=None)  # fmt: skip
    assert again.dropped == []
    assert again.objective == plan.objective
    assert [(r.vehicle_id, r.end_s, r.travel_s) for r in again.routes] == [
        (r.vehicle_id, r.end_s, r.travel_s) for r in plan.routes
    ]
    assert [[(v.task_id, v.kind, v.start_s, v.late_s) for v in r.visits] for r in again.routes] == [
        [(v.task_id, v.kind, v.start_s, v.late_s) for v in r.visits] for r in plan.routes
    ]


def test_a_round_stopped_before_it_starts_says_so() -> None:
    problem = three_vans_five_orders()
    plan = solve(problem, time_limit=LIMIT)
    with pytest.raises(NoSolution):
        solve(problem, time_limit=LIMIT, initial=plan, stop=lambda: True)


def test_a_cheaper_alternative_plan_is_the_warm_start() -> None:
    # A jam around locations 5-7 makes the plan split its orders over two vans; once it is
    # over, the plan made before it is the better start, and is taken.
    free = dataclasses.replace(three_vans_five_orders(), costs=Costs(balance=1))
    times = line_times()
    times[:, 5:] *= 6
    times[5:, :] *= 6
    before = solve(free, time_limit=LIMIT)
    during = solve(dataclasses.replace(free, times=times), time_limit=LIMIT)
    as_is = solve(free, time_limit=LIMIT, initial=during, reference=during).reference_objective
    assert as_is is not None
    assert as_is > before.objective, "the jam's plan is dearer after it"
    after = solve(free, time_limit=LIMIT, initial=during, alternatives=[before])
    assert after.initial_objective == before.objective


def test_balance_spreads_the_work_over_the_vans() -> None:
    # Four drops of ten minutes each along the road: one van driving 0→4 is the least driving;
    # with a balance cost, each van's work past an even share (20 minutes) costs, so two go.
    tasks = [Task(id=f"t{i}", pickup=None, dropoff=i, dropoff_service_s=600, size=(1,))
             for i in range(1, 5)]  # fmt: skip
    vans = [Vehicle(id="A", start=0, capacity=(10,)), Vehicle(id="B", start=0, capacity=(10,))]
    for balance, used in ((0, 1), (1, 2)):
        problem = Problem(times=line_times(), vehicles=vans, tasks=tasks,
                          costs=Costs(balance=balance))  # fmt: skip
        plan = solve(problem, time_limit=LIMIT)
        assert sum(1 for r in plan.routes if r.visits) == used, f"balance {balance}"


def test_the_plan_drivers_follow_is_costed_as_it_stands() -> None:
    first = three_vans_five_orders()
    plan = solve(first, time_limit=LIMIT)
    again = solve(first, time_limit=LIMIT, initial=plan, reference=plan)
    assert again.reference_objective == again.initial_objective == plan.objective
    more = dataclasses.replace(first, tasks=[*first.tasks, Task(id="t6", pickup=1, dropoff=5,
                                                                 size=(2,))])  # fmt: skip
    with_new = solve(more, time_limit=LIMIT, initial=plan, reference=plan)
    assert with_new.reference_objective is not None
    assert with_new.initial_objective is not None
    # As it stands the old plan leaves t6 out (its drop penalty); the warm start has it in.
    drop = first.costs.drop["normal"]
    assert with_new.reference_objective >= plan.objective + drop
    assert with_new.initial_objective < plan.objective + drop
    assert with_new.objective <= with_new.initial_objective


@pytest.mark.parametrize("with_pickup", [False, True])
def test_insertion_counts_the_way_back_to_a_vans_depot(with_pickup: bool) -> None:
    """Van A must end at its depot (0) and is at its stop 1, 50 s from the new stop 2 but 200 s
    from 2 back to the depot (100 s from 1); van B, at 3, ends anywhere, 100 s from 2. Put last
    on A the stop costs 50 + 200 - 100 = 150 s: B's 100 s is cheaper."""
    times = np.array(
        [[0, 100, 200, 300],
         [100, 0, 50, 300],
         [200, 50, 0, 100],
         [300, 300, 100, 0]], dtype=np.int64,
    )  # fmt: skip
    vans = [Vehicle(id="A", start=1, end=0, capacity=(10,)),
            Vehicle(id="B", start=3, capacity=(10,))]  # fmt: skip
    new = Task(id="t2", pickup=2 if with_pickup else None, dropoff=2, size=(1,))
    problem = Problem(times=times, vehicles=vans, tasks=[new])
    plan = extend(problem, Plan([Route("A", [], 0, 0, 0), Route("B", [], 0, 0, 0)]))
    assert plan.vehicle_of("t2") == "B"
    without_depot = dataclasses.replace(problem, vehicles=[dataclasses.replace(vans[0], end=None),
                                                           vans[1]])  # fmt: skip
    assert extend(without_depot, None).vehicle_of("t2") == "A", "50 s: A, had it no depot"
