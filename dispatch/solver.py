"""OR-Tools routing: the only module that imports ``ortools``.

``solve(problem, *, time_limit, seed, initial)`` builds a pickup-and-delivery model with time
windows (soft with a lateness cost, or hard), capacities per dimension, skills, shifts, vehicles
starting where they are, goods on board pinned to their vehicle, locked next stops (in order), drop
penalties by priority and an optional workload balance, and reads the best plan found back as
a :class:`~dispatch.plan.Plan`. The first plan: with ``initial``, that plan's routes (those of
its stops that still exist, each vehicle's locked stops moved to the front, the tasks it lacks
put in by our cheapest insertion), or, when that is cheaper, the same with the orders it now
serves late taken out and put back (what mends a plan after a traffic shock); without, on soft
windows, our insertion from empty routes, and on hard windows OR-Tools' parallel cheapest insertion
(path-cheapest-arc finds nothing on tight windows). Then, on soft windows, rounds of ruin and
re-insertion while they pay, then guided local search until the time limit, which covers the
whole solve. ``stop`` ends the search early with the best plan so far. The search is
single-threaded and draws no random numbers (``seed`` is accepted for the API's sake and
recorded); how far it gets depends on the time it has.

``extend(problem, previous)`` is dispatch without re-optimisation: the previous plan's routes
as they stand, with new tasks put in by the same cheapest insertion and no search.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from dispatch import pyvrp_engine
from dispatch.errors import NoSolution
from dispatch.plan import Dropped, Kind, Plan, Route, Visit
from dispatch.problem import Costs, Problem, Task, Vehicle


@dataclass(frozen=True, slots=True)
class Stop:
    task: Task
    kind: Kind
    location: int
    window: tuple[int, int]
    service_s: int
    demand: tuple[int, ...]


def _stops(problem: Problem) -> list[Stop]:
    stops = []
    for t in problem.tasks:
        if t.pickup is not None:
            stops.append(Stop(t, "pickup", t.pickup, t.pickup_window, t.pickup_service_s, t.size))
        minus = tuple(-s for s in t.size)
        stops.append(Stop(t, "dropoff", t.dropoff, t.dropoff_window, t.dropoff_service_s, minus))
    return stops


def _why_dropped(task: Task, vehicles: list[Vehicle]) -> str:
    able = [v for v in vehicles if task.skills <= v.skills]
    if not able:
        return f"no available vehicle has the skills {sorted(task.skills)}"
    if not any(all(s <= c for s, c in zip(task.size, v.capacity, strict=True)) for v in able):
        return "larger than any suitable vehicle's capacity"
    return "no route could serve it in time at a cost below its drop penalty"


def solve(
    problem: Problem,
    *,
    time_limit: float,
    seed: int = 0,
    initial: Plan | None = None,
    reference: Plan | None = None,
    second_engine: bool = True,
    stop: Callable[[], bool] | None = None,
    alternatives: Sequence[Plan] = (),
) -> Plan:
    """The best plan found within ``time_limit`` seconds. When the problem is one PyVRP
    expresses exactly (:func:`dispatch.pyvrp_engine.fits`) and there is no warm start, PyVRP
    searches on the second core at the same time and the cheaper plan wins. ``reference``
    (say, the plan the drivers follow) is costed on this problem as it stands, with no new
    orders put in: ``Plan.reference_objective``, for deciding whether the new plan is worth
    a change. ``stop``, polled through the search, ends it early (with the best plan found so
    far) once it returns True: how a long improvement round gives way to a new event.
    ``alternatives``: other plans to warm-start from when one is cheaper than ``initial`` on
    this problem and lacks at most ``ALTERNATIVE_MISSING`` of its tasks (say, the plan made
    before a traffic jam, once it is over)."""
    second = None
    if second_engine and initial is None and pyvrp_engine.fits(problem):
        second = pyvrp_engine.start(problem, time_limit, seed)
    plan = _solve_ortools(
        problem, time_limit=time_limit, initial=initial, reference=reference, stop=stop,
        alternatives=alternatives,
    )  # fmt: skip
    if second is None:
        return plan
    try:
        other = second.result(timeout=time_limit + 60)
    except Exception:  # the second engine is a bonus: if it fails, OR-Tools' plan stands
        return plan
    if pyvrp_engine.cost(problem, other) < pyvrp_engine.cost(problem, plan):
        return other
    return plan


def _servable(problem: Problem) -> tuple[list[Vehicle], list[Stop], list[Dropped]]:
    """The available vehicles, the stops they may serve and the tasks none can: goods on
    board a vehicle that is not available."""
    vehicles = [v for v in problem.vehicles if v.available]
    ids = {v.id for v in vehicles}
    stranded = {t.id for t in problem.tasks if t.on_board and t.on_board not in ids}
    stops = [s for s in _stops(problem) if s.task.id not in stranded]
    dropped = [Dropped(tid, "its vehicle is not available") for tid in sorted(stranded)]
    return vehicles, stops, dropped


def extend(problem: Problem, previous: Plan | None) -> Plan:
    """Plan-once dispatching: ``previous``'s routes as they stand (the stops that still exist;
    locked ones first), with the tasks they lack put in where each adds the least cost
    (:func:`insert_missing`). No planned stop changes vehicle or order: each order is planned
    once, when it comes. What dispatch without re-optimisation does (the simulator's baseline).
    ``Plan.reference_objective``: the routes as they stood, before the insertions."""
    vehicles, stops, dropped = _servable(problem)
    if previous is None:
        routes: list[list[int]] = [[] for _ in vehicles]
    else:
        routes = _as_before(previous, vehicles, stops, problem)
    # The routes as they stand, costed: the reference for whether anything changed.
    reference = _plan_of([r[:] for r in routes], vehicles, stops, problem, list(dropped),
                         initial_objective=None, reference_objective=None)  # fmt: skip
    insert_missing(routes, vehicles, stops, problem)
    return _plan_of(
        routes, vehicles, stops, problem, dropped,
        initial_objective=None, reference_objective=reference.objective,
    )  # fmt: skip


MIN_SEARCH_MS = 50  # a search from a first plan needs this long to hand it back at all


def _solve_ortools(
    problem: Problem,
    *,
    time_limit: float,
    initial: Plan | None,
    reference: Plan | None,
    stop: Callable[[], bool] | None = None,
    alternatives: Sequence[Plan] = (),
) -> Plan:
    started = time.perf_counter()
    # A cold start on soft windows begins from our insertion: it prices lateness, the
    # lateness it causes down the route and the workload balance as the objective does, and
    # on live dispatch problems it beats OR-Tools' parallel cheapest insertion followed by
    # seconds of local search (slow there: the balance's soft bounds cost it some 40 times
    # the neighbours per second). Hard windows (the benchmark sets) keep OR-Tools' own.
    ours = initial is None and not problem.hard_windows
    if ours:
        initial = Plan(routes=[])
    vehicles, stops, dropped = _servable(problem)
    if not vehicles:
        rest = [t.id for t in problem.tasks if t.id not in {d.task_id for d in dropped}]
        return Plan(
            routes=[], dropped=dropped + [Dropped(t, "no vehicle is available") for t in rest]
        )
    v_count = len(vehicles)
    # Model nodes: one start and one end per vehicle, then one per stop.
    end_dummy = problem.times.shape[0]  # "end anywhere": free to reach
    locations = [v.start for v in vehicles] + [
        v.end if v.end is not None else end_dummy for v in vehicles
    ] + [s.location for s in stops]  # fmt: skip
    size = len(locations)
    times = np.zeros((problem.times.shape[0] + 1,) * 2, dtype=np.int64)
    times[:-1, :-1] = problem.times
    loc = np.array(locations)
    travel = times[np.ix_(loc, loc)]
    service = np.zeros(size, dtype=np.int64)
    service[2 * v_count :] = [s.service_s for s in stops]
    time_transit = (travel + service[:, None]).tolist()
    if problem.distances is not None:
        dist = np.zeros_like(times)
        dist[:-1, :-1] = problem.distances
        distance = dist[np.ix_(loc, loc)]
    else:
        distance = np.zeros_like(travel)
    arc_cost = (travel * problem.costs.per_second + distance * problem.costs.per_metre).tolist()

    manager = pywrapcp.RoutingIndexManager(
        size, v_count, list(range(v_count)), list(range(v_count, 2 * v_count))
    )
    routing = pywrapcp.RoutingModel(manager)
    node_of = [manager.NodeToIndex(n) for n in range(size)]
    cost_cb = routing.RegisterTransitMatrix(arc_cost)
    routing.SetArcCostEvaluatorOfAllVehicles(cost_cb)
    if problem.costs.per_vehicle:
        routing.SetFixedCostOfAllVehicles(problem.costs.per_vehicle)

    time_cb = routing.RegisterTransitMatrix(time_transit)
    routing.AddDimension(time_cb, problem.horizon, problem.horizon, False, "time")
    time_dim = routing.GetDimensionOrDie("time")
    if problem.costs.balance:
        # Each route's work (driving and service, not waiting) past an even share costs
        # ``balance`` per second. On a dimension of its own, with no slack: OR-Tools' span
        # costs on the time dimension (global or per vehicle) make its local search some
        # 25 times slower and leave it stuck on a plan with one long route.
        routing.AddDimension(time_cb, 0, problem.horizon, True, "work")
        work_dim = routing.GetDimensionOrDie("work")
        share = _even_share(problem, stops, v_count)
        for i in range(v_count):
            work_dim.SetCumulVarSoftUpperBound(routing.End(i), share, problem.costs.balance)
    for i, v in enumerate(vehicles):
        time_dim.CumulVar(routing.Start(i)).SetRange(v.shift[0], v.shift[1])
        if problem.hard_windows:
            time_dim.CumulVar(routing.End(i)).SetRange(v.shift[0], v.shift[1])
        else:
            time_dim.CumulVar(routing.End(i)).SetRange(v.shift[0], problem.horizon)
            time_dim.SetCumulVarSoftUpperBound(
                routing.End(i), v.shift[1], problem.costs.lateness_per_second
            )
        routing.AddVariableMinimizedByFinalizer(time_dim.CumulVar(routing.Start(i)))
        routing.AddVariableMinimizedByFinalizer(time_dim.CumulVar(routing.End(i)))

    for d, _ in enumerate(problem.dimensions):
        demand = [0] * size
        for k, s in enumerate(stops):
            demand[2 * v_count + k] = s.demand[d]
        demand_cb = routing.RegisterUnaryTransitVector(demand)
        capacities = [v.capacity[d] for v in vehicles]
        routing.AddDimensionWithVehicleCapacity(demand_cb, 0, capacities, False, f"load{d}")
        load = routing.GetDimensionOrDie(f"load{d}")
        # The load leaving the start is free: at least what is on board already, and whatever
        # the drop-offs without a pickup need (no load may go below zero).
        for i, v in enumerate(vehicles):
            on_board = sum(t.size[d] for t in problem.tasks if t.on_board == v.id)
            load.CumulVar(routing.Start(i)).SetRange(min(on_board, v.capacity[d]), v.capacity[d])

    index_of_vehicle = {v.id: i for i, v in enumerate(vehicles)}
    solver = routing.solver()
    pickup_index: dict[str, int] = {}
    for k, s in enumerate(stops):
        index = node_of[2 * v_count + k]
        a, b = s.window
        cumul = time_dim.CumulVar(index)
        if problem.hard_windows:
            cumul.SetRange(a, b)
        else:
            cumul.SetRange(a, problem.horizon)
            time_dim.SetCumulVarSoftUpperBound(index, b, problem.costs.lateness_per_second)
        able = [i for i, v in enumerate(vehicles) if s.task.skills <= v.skills]
        pin = s.task.on_board
        if pin is None and s.task.assigned in index_of_vehicle:
            pin = s.task.assigned  # kept where it is (no re-assignment), never dropped
        if pin is not None:
            able = [index_of_vehicle[pin]]
        else:
            routing.AddDisjunction([index], problem.costs.drop[s.task.priority])
            able = [-1, *able]  # -1: left out (the disjunction's penalty applies)
        if len(able) < v_count + (pin is None):
            routing.VehicleVar(index).SetValues(able)
        if s.kind == "pickup":
            pickup_index[s.task.id] = index
        elif s.task.id in pickup_index:
            p = pickup_index[s.task.id]
            routing.AddPickupAndDelivery(p, index)
            solver.Add(routing.VehicleVar(p) == routing.VehicleVar(index))
            solver.Add(time_dim.CumulVar(p) <= time_dim.CumulVar(index))
    node_of_stop = {(s.task.id, s.kind): node_of[2 * v_count + k] for k, s in enumerate(stops)}
    for vehicle_id, locked in problem.locked_stops().items():
        chain = [node_of_stop[x] for x in locked if x in node_of_stop]
        if vehicle_id in index_of_vehicle and chain:
            here = routing.Start(index_of_vehicle[vehicle_id])
            for node in chain:  # the locked stops, in their order, first on the route
                routing.NextVar(here).SetValues([node])
                here = node

    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = (
        routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    )
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    params.time_limit.FromMilliseconds(max(1, int(time_limit * 1000)))
    if stop is not None:
        routing.AddSearchMonitor(routing.solver().CustomLimit(stop))

    def stopped() -> bool:
        return stop is not None and stop()

    def model(routes: list[list[int]]) -> list[list[int]]:  # indices into stops → model indices
        return [[node_of[2 * v_count + k] for k in route] for route in routes]

    assignment = None
    initial_objective: int | None = None
    reference_objective: int | None = None
    if reference is not None and reference is not initial:
        as_is = routing.ReadAssignmentFromRoutes(
            model(_as_before(reference, vehicles, stops, problem)), True
        )
        if as_is is not None:
            reference_objective = int(as_is.ObjectiveValue())
    if initial is not None:
        plain = _as_before(initial, vehicles, stops, problem)
        filled = [route[:] for route in plain]
        insert_missing(filled, vehicles, stops, problem)
        routes = model(filled)
        same_as_reference = False
        if reference is initial:
            same_as_reference = plain == filled  # nothing was put in
            if not same_as_reference:  # read before the warm start: OR-Tools reuses its buffer
                as_is = routing.ReadAssignmentFromRoutes(model(plain), True)
                if as_is is not None:
                    reference_objective = int(as_is.ObjectiveValue())
        start = routing.ReadAssignmentFromRoutes(routes, True)
        chosen = filled
        if start is not None:
            initial_objective = int(start.ObjectiveValue())
            if same_as_reference:
                reference_objective = initial_objective
        repaired = _late_reinserted(filled, vehicles, stops, problem)
        if repaired is not None:  # start from whichever is cheaper
            other = routing.ReadAssignmentFromRoutes(model(repaired), True)
            if other is not None and (
                initial_objective is None or other.ObjectiveValue() < initial_objective
            ):
                start, initial_objective = other, int(other.ObjectiveValue())
                chosen = repaired
            elif start is not None:  # read again: OR-Tools reuses its buffer
                start = routing.ReadAssignmentFromRoutes(routes, True)
        if start is not None and initial_objective is not None:
            other_routes = _cheaper_alternative(
                alternatives, initial_objective, vehicles, stops, problem
            )
            if other_routes is not None:
                other = routing.ReadAssignmentFromRoutes(model(other_routes), True)
                if other is not None and other.ObjectiveValue() < initial_objective:
                    start, initial_objective = other, int(other.ObjectiveValue())
                    chosen = other_routes
                else:  # read again: OR-Tools reuses its buffer
                    start = routing.ReadAssignmentFromRoutes(model(chosen), True)
            # The time limit covers the whole solve, as OR-Tools' own does: building the
            # first plan, re-insertion rounds, then the local search in what is left.
            deadline = started + time_limit

            better = chosen
            if not problem.hard_windows:  # (it prices lateness; hard windows forbid it)
                better = _reinserted_while_it_pays(
                    chosen, vehicles, stops, problem, deadline=deadline, stop=stop
                )
            if better is not chosen:
                start = routing.ReadAssignmentFromRoutes(model(better), True)
                if start is None or start.ObjectiveValue() >= initial_objective:
                    better = chosen  # (never seen) the model prices it otherwise
                    start = routing.ReadAssignmentFromRoutes(model(chosen), True)
            if start is not None:
                left = deadline - time.perf_counter()
                params.time_limit.FromMilliseconds(max(MIN_SEARCH_MS, int(left * 1000)))
                assignment = routing.SolveFromAssignmentWithParameters(start, params)
            if assignment is None and not stopped():  # too little time to hand it back
                return _plan_of(
                    better, vehicles, stops, problem, dropped,
                    initial_objective=initial_objective, reference_objective=reference_objective,
                )  # fmt: skip
    if assignment is None and stopped():  # (OR-Tools would hand back a plan serving nothing)
        raise NoSolution("stopped before a plan was found")
    if assignment is None:
        if ours:  # our first plan could not be read: OR-Tools builds one, in the time left
            left = time_limit - (time.perf_counter() - started)
            params.time_limit.FromMilliseconds(max(MIN_SEARCH_MS, int(left * 1000)))
        assignment = routing.SolveWithParameters(params)
    if assignment is None:
        raise NoSolution(f"no plan found within {time_limit:g} s")

    plan_routes: list[Route] = []
    served: set[str] = set()
    for i, v in enumerate(vehicles):
        visits: list[Visit] = []
        index = routing.Start(i)
        travel_s = distance_m = 0
        prev_node = manager.IndexToNode(index)
        while not routing.IsEnd(index):
            index = assignment.Value(routing.NextVar(index))
            node = manager.IndexToNode(index)
            travel_s += int(travel[prev_node, node])
            distance_m += int(distance[prev_node, node])
            prev_node = node
            if node >= 2 * v_count:
                s = stops[node - 2 * v_count]
                start_s = assignment.Min(time_dim.CumulVar(index))
                arrival = start_s  # waiting shows as start ≥ window start
                visits.append(Visit(s.task.id, s.kind, s.location, int(arrival), int(start_s),
                                    max(0, int(start_s) - s.window[1])))  # fmt: skip
                served.add(s.task.id)
        end_s = int(assignment.Min(time_dim.CumulVar(routing.End(i))))
        plan_routes.append(Route(v.id, visits, end_s, travel_s, distance_m))
    stranded = {d.task_id for d in dropped}
    for t in problem.tasks:
        if t.id not in served and t.id not in stranded:
            dropped.append(Dropped(t.id, _why_dropped(t, vehicles)))
    return Plan(
        routes=plan_routes,
        dropped=dropped,
        objective=int(assignment.ObjectiveValue()),
        initial_objective=initial_objective,
        reference_objective=reference_objective,
    )


def _plan_of(
    routes: list[list[int]],
    vehicles: list[Vehicle],
    stops: list[Stop],
    problem: Problem,
    dropped: list[Dropped],
    *,
    initial_objective: int | None,
    reference_objective: int | None,
) -> Plan:
    """The plan ``routes`` make, timed and costed as the model does (:class:`_Timeline`,
    :func:`_route_cost`), for when OR-Tools could not hand a solution back in the time left."""
    t, costs = problem.times, problem.costs
    share = _even_share(problem, stops, len(vehicles))
    objective = 0.0
    plan_routes = []
    served: set[str] = set()
    for vehicle, route in zip(vehicles, routes, strict=True):
        line = _Timeline(t, vehicle, route, stops)
        begin = line.depart - [0, *(stops[k].service_s for k in route)]
        visits = [
            Visit(stops[k].task.id, stops[k].kind, stops[k].location, int(begin[q + 1]),
                  int(begin[q + 1]), int(line.late_now[q + 1]))
            for q, k in enumerate(route)
        ]  # fmt: skip
        served |= {v.task_id for v in visits}
        hops = list(itertools.pairwise(line.seq.tolist()))
        if vehicle.end is not None:  # and back to where its route ends
            hops.append((int(line.seq[-1]), vehicle.end))
        distance = (
            sum(int(problem.distances[a, b]) for a, b in hops)
            if problem.distances is not None
            else 0
        )
        back = int(t[line.seq[-1], vehicle.end]) if vehicle.end is not None else 0
        plan_routes.append(Route(vehicle.id, visits, int(line.depart[-1]) + back,
                                 sum(int(t[a, b]) for a, b in hops), distance))  # fmt: skip
        objective += _route_cost(t, vehicle, route, stops, costs, share)
    skipped = {d.task_id for d in dropped}
    for task in problem.tasks:
        if task.id not in served and task.id not in skipped:
            dropped.append(Dropped(task.id, _why_dropped(task, vehicles)))
    # the model's penalty is per stop left out (each has its own disjunction)
    objective += sum(costs.drop[s.task.priority] for s in stops if s.task.id not in served)
    return Plan(
        routes=plan_routes,
        dropped=dropped,
        objective=round(objective),
        initial_objective=initial_objective,
        reference_objective=reference_objective,
    )


def _even_share(problem: Problem, stops: list[Stop], vehicles: int) -> int:
    """Seconds of work per vehicle if the work were spread evenly: every stop's service and
    the direct drive from each pickup to its drop-off (the drive there is not counted)."""
    work = sum(s.service_s for s in stops)
    work += sum(
        int(problem.times[t.pickup, t.dropoff]) for t in problem.tasks if t.pickup is not None
    )
    return max(1, work // max(1, vehicles))


def _as_before(
    initial: Plan, vehicles: list[Vehicle], stops: list[Stop], problem: Problem
) -> list[list[int]]:
    """The previous plan as indices into ``stops`` per vehicle: the stops that still exist,
    the locked ones first on their vehicle."""
    where = {(s.task.id, s.kind): k for k, s in enumerate(stops)}
    routes = []
    for v in vehicles:
        route = initial.route_of(v.id)
        visits = route.visits if route is not None else []
        routes.append([where[(x.task_id, x.kind)] for x in visits if (x.task_id, x.kind) in where])
    _respect_locks(routes, vehicles, where, problem)
    return routes


LATE_REINSERTED = 40  # at most this many late tasks are taken out and put back


def _late_reinserted(
    routes: list[list[int]], vehicles: list[Vehicle], stops: list[Stop], problem: Problem
) -> list[list[int]] | None:
    """``routes`` (indices into ``stops``) with the tasks now late taken out (the latest
    first, at most ``LATE_REINSERTED``; never a locked stop) and put back by
    cheapest insertion, or None when nothing is late. After a traffic shock the warm start
    is late all over, and a short local search from it mends little: re-inserting the late
    orders, with the lateness they cause priced, mends most of it in a fraction of a second."""
    kept = _locked_tasks(problem)
    late: list[tuple[float, str]] = []
    for vehicle, route in zip(vehicles, routes, strict=True):
        if route:
            over = _Timeline(problem.times, vehicle, route, stops).over[1:]
            late += [(float(over[q]), stops[k].task.id) for q, k in enumerate(route)
                     if over[q] > 0 and stops[k].task.id not in kept]  # fmt: skip
    if not late:
        return None
    out = {tid for _, tid in sorted(late, reverse=True)[:LATE_REINSERTED]}
    repaired = [[k for k in route if stops[k].task.id not in out] for route in routes]
    insert_missing(repaired, vehicles, stops, problem)
    return repaired


def _respect_locks(
    routes: list[list[int]],
    vehicles: list[Vehicle],
    where: dict[tuple[str, Kind], int],
    problem: Problem,
) -> None:
    """Put each vehicle's locked stops, in their order, at the front of its route. A warm
    start that breaks a lock cannot be read at all (and the round would fall back to a cold
    solve), which happens when the plan being improved reordered a route the driver has since
    started on. A locked pickup brings its drop-off along when the route lacks it."""
    index_of = {v.id: i for i, v in enumerate(vehicles)}
    for vehicle_id, locked in problem.locked_stops().items():
        front = [where[x] for x in locked if x in where]
        if vehicle_id not in index_of or not front:
            continue
        route = routes[index_of[vehicle_id]]
        if route[: len(front)] == front:
            continue
        drops = [
            where[tid, "dropoff"] for tid, kind in locked
            if kind == "pickup" and (tid, "dropoff") in where
            and where[tid, "dropoff"] not in front and where[tid, "dropoff"] not in route
        ]  # fmt: skip
        moved = set(front) | set(drops)
        for other in routes:
            other[:] = [k for k in other if k not in moved]
        route[:0] = front + drops


def _locked_tasks(problem: Problem) -> set[str]:
    """The tasks of every locked stop: never taken out of a route to be put back elsewhere."""
    return {task_id for task_ids in problem.locked.values() for task_id in task_ids}


ALTERNATIVE_MISSING = 10  # an alternative warm start lacking more tasks is not tried


def _cheaper_alternative(
    alternatives: Sequence[Plan],
    objective: int,
    vehicles: list[Vehicle],
    stops: list[Stop],
    problem: Problem,
) -> list[list[int]] | None:
    """The cheapest of ``alternatives`` laid out on this problem (tasks it lacks put in, at
    most ``ALTERNATIVE_MISSING`` of them), when it costs less than ``objective``."""
    t, costs = problem.times, problem.costs
    share = _even_share(problem, stops, len(vehicles))
    tasks = {s.task.id for s in stops}
    best: tuple[float, list[list[int]]] | None = None
    for plan in alternatives:
        routes = _as_before(plan, vehicles, stops, problem)
        if len(tasks - {stops[k].task.id for r in routes for k in r}) > ALTERNATIVE_MISSING:
            continue
        insert_missing(routes, vehicles, stops, problem)
        missing = tasks - {stops[k].task.id for r in routes for k in r}
        cost = sum(
            _route_cost(t, v, r, stops, costs, share) for v, r in zip(vehicles, routes, strict=True)
        ) + sum(costs.drop[s.task.priority] for s in stops if s.task.id in missing)
        if cost < objective and (best is None or cost < best[0]):
            best = (cost, routes)
    return None if best is None else best[1]


REMOVED = (20, 10, 40)  # tasks taken out per re-insertion round, in turn


def _reinserted_while_it_pays(
    routes: list[list[int]],
    vehicles: list[Vehicle],
    stops: list[Stop],
    problem: Problem,
    *,
    deadline: float,
    stop: Callable[[], bool] | None = None,
) -> list[list[int]]:
    """Rounds of ruin and re-insertion from ``routes``: the tasks whose removal saves the most
    are taken out and put back by cheapest insertion, kept when the routes that changed cost
    less than before (priced as the model does, :func:`_route_cost`) and every task is still
    in; until a turn of ``REMOVED`` sizes in a row gains nothing, ``stop()``, or the next round
    would end past ``deadline`` (``time.perf_counter()``; a round is taken to last as long as
    the last one). After a traffic shock or new orders this mends in tenths of a second what
    OR-Tools' local search, slow at this size with the balance cost, mends little of in
    seconds. Returns ``routes`` itself when no round paid."""
    t, costs = problem.times, problem.costs
    share = _even_share(problem, stops, len(vehicles))
    priced = [
        _route_cost(t, v, r, stops, costs, share) for v, r in zip(vehicles, routes, strict=True)
    ]
    served = sum(len(r) for r in routes)
    savings: dict[tuple[str, tuple[int, ...]], list[tuple[float, str]]] = {}
    misses = turn = 0
    last = 0.0  # how long the last round took
    while misses < len(REMOVED) and time.perf_counter() + last < deadline:
        if stop is not None and stop():
            break
        began = time.perf_counter()
        count = REMOVED[turn % len(REMOVED)]
        turn += 1
        tried = _worst_reinserted(routes, vehicles, stops, problem, count, share, savings)
        changed = [i for i, (a, b) in enumerate(zip(routes, tried, strict=True)) if a != b]
        repriced = {i: _route_cost(t, vehicles[i], tried[i], stops, costs, share) for i in changed}
        if sum(len(r) for r in tried) == served and sum(repriced.values()) < sum(
            priced[i] for i in changed
        ):
            routes, misses = tried, 0
            for i, cost in repriced.items():
                priced[i] = cost
        else:
            misses += 1
        last = time.perf_counter() - began
    return routes


def _route_cost(
    t: Ints, vehicle: Vehicle, route: list[int], stops: list[Stop], costs: Costs, share: float
) -> float:
    """A route's driving (back to its end location too, when it has one), lateness and work
    past the even share, as the objective prices them (the soft shift end and distances
    aside)."""
    if not route:
        return 0.0
    line = _Timeline(t, vehicle, route, stops)
    back = float(t[line.seq[-1], vehicle.end]) if vehicle.end is not None else 0.0
    work = line.work + back
    driving = work - sum(stops[k].service_s for k in route)
    return (
        costs.per_second * driving
        + costs.lateness_per_second * float(line.late_now.sum())
        + costs.balance * max(0.0, work - share)
    )


def _worst_reinserted(
    routes: list[list[int]],
    vehicles: list[Vehicle],
    stops: list[Stop],
    problem: Problem,
    count: int,
    share: float,
    savings: dict[tuple[str, tuple[int, ...]], list[tuple[float, str]]],
) -> list[list[int]]:
    """``routes`` with the ``count`` tasks whose removal saves the most taken out (never a
    locked stop's) and put back by cheapest insertion. ``savings`` remembers
    each route's, by vehicle and stops, from one call to the next."""
    t, costs = problem.times, problem.costs
    kept = _locked_tasks(problem)
    saving: list[tuple[float, str]] = []
    for vehicle, route in zip(vehicles, routes, strict=True):
        key = (vehicle.id, tuple(route))
        if key not in savings:  # a route's savings, until it changes
            whole = _route_cost(t, vehicle, route, stops, costs, share)
            savings[key] = [
                (whole - _route_cost(t, vehicle, [k for k in route if stops[k].task.id != task],
                                     stops, costs, share), task)
                for task in dict.fromkeys(stops[k].task.id for k in route) if task not in kept
            ]  # fmt: skip
        saving += savings[key]
    out = {task_id for _, task_id in sorted(saving, reverse=True)[:count]}
    tried = [[k for k in route if stops[k].task.id not in out] for route in routes]
    insert_missing(tried, vehicles, stops, problem)
    return tried


NEAREST_VEHICLES = 10  # insertion tries the vehicles whose routes pass closest to the order


def insert_missing(
    routes: list[list[int]], vehicles: list[Vehicle], stops: list[Stop], problem: Problem
) -> None:
    """Put every task missing from ``routes`` (lists of indices into ``stops``, one per
    vehicle) where it adds the least cost (:meth:`_Timeline.best_gaps`), within capacity,
    skills, pins and locked stops (never before one); express first, then by window end. A warm
    start then holds every new order, so the local search improves a complete plan instead of
    searching for insertions."""
    t = problem.times
    ids = {v.id for v in vehicles}
    by_task: dict[str, dict[str, int]] = {}
    for k, s in enumerate(stops):
        by_task.setdefault(s.task.id, {})[s.kind] = k
    present: dict[str, set[str]] = {}
    for route in routes:
        for k in route:
            present.setdefault(stops[k].task.id, set()).add(stops[k].kind)
    # A task only half in the routes (its pickup done elsewhere, say) is taken out and re-placed.
    half = {tid for tid, kinds in present.items() if kinds != set(by_task[tid])}
    for route in routes:
        route[:] = [k for k in route if stops[k].task.id not in half]
    missing = [tid for tid in by_task if tid not in present or tid in half]
    missing.sort(key=lambda tid: (stops[by_task[tid]["dropoff"]].task.priority != "express",
                                  stops[by_task[tid]["dropoff"]].window[1]))  # fmt: skip
    locked = {v: len(task_ids) for v, task_ids in problem.locked.items()}
    share = _even_share(problem, stops, len(vehicles))
    lines: dict[int, _Timeline] = {}  # per vehicle, until its route changes
    for tid in missing:
        kinds = by_task[tid]
        task = stops[kinds["dropoff"]].task
        pin = task.on_board or (task.assigned if task.assigned in ids else None)
        best: tuple[float, int, int, int] | None = None  # cost, vehicle, pickup gap, drop gap
        allowed = [
            vi for vi, v in enumerate(vehicles)
            if (pin is None or v.id == pin) and task.skills <= v.skills
        ]  # fmt: skip
        for vi in allowed:
            if vi not in lines:
                lines[vi] = _Timeline(t, vehicles[vi], routes[vi], stops)
        anchor = stops[kinds.get("pickup", kinds["dropoff"])].location
        if len(allowed) > NEAREST_VEHICLES:  # only the vehicles passing closest are tried
            allowed.sort(key=lambda vi: int(t[lines[vi].seq, anchor].min()))
            allowed = allowed[:NEAREST_VEHICLES]
        for vi in allowed:
            first = min(locked.get(vehicles[vi].id, 0), len(routes[vi]))  # never before a lock
            found = lines[vi].best_gaps(kinds, task, first, problem.costs, share)
            if found is not None and (best is None or found[0] < best[0]):
                best = (found[0], vi, found[1], found[2])
        if best is None:
            continue  # the solver decides (it may leave the task out, with a reason)
        _, vi, i, j = best
        routes[vi].insert(j, kinds["dropoff"])
        if "pickup" in kinds:
            routes[vi].insert(i, kinds["pickup"])
        del lines[vi]


PICKUP_CANDIDATES = 16  # pickup gaps tried with every drop-off gap (the cheapest alone)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


class _Timeline:
    """One route as it stands, for pricing insertions: when the vehicle arrives at, starts
    and leaves each position (0: where it is now), how late each stop is, what it carries.

    Gap ``g`` is between positions ``g`` and ``g + 1`` (the last gap: after the last stop,
    whose way on is free, or, for a vehicle whose route ends somewhere, the way back there)."""

    def __init__(self, t: Ints, vehicle: Vehicle, route: list[int], stops: list[Stop]) -> None:
        self.t, self.stops = t, stops
        self.end = vehicle.end
        self.seq = seq = np.array(
            [vehicle.start] + [stops[k].location for k in route], dtype=np.int64
        )
        n = self.n = len(seq)
        after = np.append(seq[1:], -1)
        self.inner = inner = after >= 0
        self.nxt = nxt = np.maximum(after, 0)
        window = np.array([(0, 0)] + [stops[k].window for k in route], dtype=np.float64)
        service = [0] + [stops[k].service_s for k in route]
        arrival, begin, depart = np.zeros(n), np.zeros(n), np.zeros(n)
        clock = float(vehicle.shift[0])
        begin[0] = arrival[0] = depart[0] = clock
        hops = t[seq[:-1], seq[1:]].tolist()
        for g in range(1, n):
            arrival[g] = clock = clock + hops[g - 1]
            begin[g] = clock = max(clock, window[g, 0])
            depart[g] = clock = clock + service[g]
        self.depart = depart
        self.work = float(sum(hops) + sum(service))  # as the balance counts it: no waiting
        self.waited = waited = np.cumsum(begin - arrival)  # waiting up to and incl. each position
        self.over = over = begin - window[:, 1]  # > 0: late by that much
        over[0] = -np.inf
        self.late_now = np.maximum(0.0, over)
        self.arrival_next = np.where(inner, depart + t[seq, nxt], 0.0)  # at g + 1, per gap g
        self.later = np.arange(n)[None, :] > np.arange(n)[:, None]  # [g, k]: k is after gap g
        # The delay after each gap that the stops after it absorb with none getting later.
        room = waited + np.maximum(0.0, -over)
        self.tolerance = np.append(np.minimum.accumulate(room[::-1])[::-1][1:], np.inf) - waited
        # The load carried over each gap, per dimension: goods without a pickup leave the start.
        dims = len(vehicle.capacity)
        sizes = np.array([stops[k].demand for k in route], dtype=np.int64).reshape(len(route), dims)
        start_load = -sizes[[stops[k].task.pickup is None for k in route]].sum(axis=0)
        self.loads = np.vstack([start_load, start_load + np.cumsum(sizes, axis=0)])
        self.capacity = np.array(vehicle.capacity, dtype=np.int64)

    def pushed(self, gap: Ints, delay: Floats) -> Floats:
        """Start delay at every position (last axis) from ``delay`` on arriving after ``gap``:
        each stop's waiting for its window absorbs some."""
        absorbed = self.waited[None, :] - self.waited[gap][..., None]
        shift: Floats = np.maximum(0.0, delay[..., None] - absorbed)
        return np.where(self.later[gap], shift, 0.0)

    def added_late(self, shift: Floats) -> Floats:
        extra: Floats = np.maximum(0.0, self.over + shift) - self.late_now
        return extra

    def knock_on(self, gap: Ints, delay: Floats) -> Floats:
        """The lateness ``delay`` on arriving after ``gap`` adds to the stops after it (any
        shape); worked out only where it exceeds what they absorb."""
        total = np.zeros(np.shape(delay))
        hit = delay > self.tolerance[gap]
        if hit.any():
            total[hit] = self.added_late(self.pushed(gap[hit], delay[hit])).sum(axis=-1)
        return total

    def visit(self, leave: Floats, frm: Ints, x: int, s: Stop) -> tuple[Floats, Floats]:
        """(departure from, lateness at) a new stop ``s`` at ``x`` reached from ``frm``."""
        start = np.maximum(leave + self.t[frm, x], s.window[0])
        return start + s.service_s, np.maximum(0.0, start - s.window[1])

    def onward(self, gap: Ints, leave: Floats, x: int) -> Floats:
        """Arrival delay at the position after ``gap`` when leaving ``x`` at ``leave``."""
        delay: Floats = np.where(
            self.inner[gap], leave + self.t[x, self.nxt[gap]] - self.arrival_next[gap], 0.0
        )
        return delay

    def detour(self, x: int) -> Ints:
        """Added driving for a stop at ``x`` in each gap."""
        t, seq, nxt = self.t, self.seq, self.nxt
        extra: Ints = t[seq, x] + np.where(self.inner, t[x, nxt] - t[seq, nxt], 0)
        if self.end is not None:  # put last, the way back starts from it
            extra[-1] += t[x, self.end] - t[seq[-1], self.end]
        return extra

    def unbalance(self, added: Floats, costs: Costs, share: float) -> Floats:
        """What ``added`` seconds of work (driving and service) here add to the balance cost:
        each second past the even ``share`` costs ``costs.balance``."""
        over = max(0.0, self.work - share)
        cost: Floats = costs.balance * (np.maximum(0.0, self.work + added - share) - over)
        return cost

    def best_gaps(
        self, kinds: dict[str, int], task: Task, first: int, costs: Costs, share: float
    ) -> tuple[float, int, int] | None:
        """The cheapest (cost, pickup gap, drop-off gap) for ``task`` here, or None.

        The cost is the added driving, the lateness of every stop (the new ones' own, and what
        the delay they cause does to the stops after them) and the added work past the even
        share (``Costs.balance``), as the objective counts them. Without the last two, long
        routes soak up every order: the middle of a route is cheap to reach, and neither the
        stops it pushes late nor its growing workload were counted."""
        t, seq, depart, loads, capacity = self.t, self.seq, self.depart, self.loads, self.capacity
        size = np.array(task.size, dtype=np.int64)
        drop = self.stops[kinds["dropoff"]]
        d = drop.location
        gaps = np.arange(self.n)
        d_detour = self.detour(d)
        if "pickup" not in kinds:
            # Loaded at the start: carried over every gap up to the drop-off's.
            feasible = np.all(np.maximum.accumulate(loads, axis=0) + size <= capacity, axis=1)
            feasible[:first] = False
            if not feasible.any():
                return None
            leave, d_late = self.visit(depart, seq, d, drop)
            later_late = self.knock_on(gaps, self.onward(gaps, leave, d))
            price = costs.per_second * d_detour + costs.lateness_per_second * (d_late + later_late)
            price += self.unbalance((d_detour + drop.service_s).astype(np.float64), costs, share)
            j = int(np.argmin(np.where(feasible, price, np.inf)))
            return float(price[j]), j, j

        pick = self.stops[kinds["pickup"]]
        p = pick.location
        p_detour = self.detour(p)
        p_leave, p_late = self.visit(depart, seq, p, pick)
        p_shift = self.pushed(gaps, self.onward(gaps, p_leave, p))  # [i, k]
        p_knock = self.added_late(p_shift)  # [i, k]
        # Pickup gaps worth pairing: room for the goods there, the cheapest on their own.
        room = np.all(loads + size <= capacity, axis=1)
        room[:first] = False
        if not room.any():
            return None
        alone = costs.per_second * p_detour + costs.lateness_per_second * (
            p_late + p_knock.sum(axis=1)
        )
        rows = np.flatnonzero(room)
        if len(rows) > PICKUP_CANDIDATES:
            rows = rows[np.argsort(alone[rows], kind="stable")[:PICKUP_CANDIDATES]]
        # Drop-off at a later gap j: the stops between are pushed by the pickup only; the
        # drop-off leaves when stop j does (pushed), and everything after j feels both.
        between = np.cumsum(p_knock[rows], axis=1)  # [r, j]: knock-on lateness up to j
        leave_j = depart[None, :] + p_shift[rows]  # [r, j]
        grid = np.broadcast_to(gaps, leave_j.shape)
        d_leave, d_late = self.visit(leave_j, np.broadcast_to(seq, leave_j.shape), d, drop)
        after_j = self.knock_on(grid, self.onward(grid, d_leave, d))
        drive = (p_detour[rows][:, None] + d_detour[None, :]).astype(np.float64)
        total = costs.per_second * drive
        total += costs.lateness_per_second * (p_late[rows][:, None] + between + d_late + after_j)
        # Pickup and drop-off in the same gap: straight from one to the other.
        same_leave, same_late = self.visit(p_leave[rows], np.full(len(rows), p), d, drop)
        same_knock = self.knock_on(rows, self.onward(rows, same_leave, d))
        inner, nxt = self.inner[rows], self.nxt[rows]
        same = t[seq[rows], p] + t[p, d] + np.where(inner, t[d, nxt] - t[seq[rows], nxt], 0)
        if self.end is not None:  # both put last: the way back starts from the drop-off
            same = same + np.where(rows == self.n - 1, t[d, self.end] - t[seq[-1], self.end], 0)
        total[np.arange(len(rows)), rows] = costs.per_second * same + (
            costs.lateness_per_second * (p_late[rows] + same_late + same_knock)
        )
        drive[np.arange(len(rows)), rows] = same
        total += self.unbalance(drive + (pick.service_s + drop.service_s), costs, share)
        total[gaps[None, :] < rows[:, None]] = np.inf  # the drop-off never before the pickup
        for q, i in enumerate(rows):
            # Carried from gap i through gap j: the largest load on the way must leave room.
            peak = np.maximum.accumulate(loads[i:], axis=0)
            total[q, i:][~np.all(peak + size <= capacity, axis=1)] = np.inf
        if not np.isfinite(total).any():
            return None
        row, dj = np.unravel_index(int(np.argmin(total)), total.shape)
        return float(total[row, dj]), int(rows[row]), int(dj)
