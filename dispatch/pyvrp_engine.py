"""PyVRP as a second engine: the only module that imports ``pyvrp``.

For the problems it can express the same way we do — every order a drop-off from the shared
start (no pickups, no goods on board, no pins or locks, no skills), hard windows, one start and
end for every vehicle — PyVRP's iterated local search runs in a worker process on the second
core while OR-Tools runs here, and :func:`dispatch.solver.solve` keeps the cheaper plan. Its
limit is spent in stages that look for a smaller fleet (see :func:`solve_here`): with a
vehicle costing more than any distance, that is where the cost is. PyVRP
holds the GIL while it searches, so a thread would not run beside OR-Tools: hence the process
(started once, on first use, and reused).
"""

from __future__ import annotations

import atexit
import multiprocessing
import time
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from dispatch.plan import Dropped, Plan, Route, Visit
from dispatch.problem import Problem

_pool: ProcessPoolExecutor | None = None


def fits(problem: Problem) -> bool:
    """Whether PyVRP sees this problem exactly as we do."""
    if not problem.hard_windows or problem.locked or not problem.vehicles or not problem.tasks:
        return False
    if problem.distances is None or len(problem.dimensions) != 1:
        return False
    first = problem.vehicles[0]
    same_fleet = all(
        v.start == first.start and v.end == first.end and v.shift == first.shift
        and v.capacity == first.capacity and v.available and not v.skills
        for v in problem.vehicles
    )  # fmt: skip
    return (
        same_fleet
        and first.end == first.start
        and all(t.pickup is None and t.on_board is None and t.assigned is None and not t.skills
                for t in problem.tasks)
    )  # fmt: skip


def plan_from_sequences(problem: Problem, sequences: list[list[int]]) -> Plan:
    """A plan from one list of task indices per vehicle (times recomputed from the problem, so
    a checker sees what the routes really do); tasks in no sequence are reported dropped."""
    routes = []
    served: set[str] = set()
    dist = problem.distances if problem.distances is not None else problem.times * 0
    for vehicle, seq in zip(problem.vehicles, sequences, strict=False):
        clock, here, visits, distance, travel = vehicle.shift[0], vehicle.start, [], 0, 0
        for k in seq:
            task = problem.tasks[k]
            travel += int(problem.times[here, task.dropoff])
            arrival = clock + int(problem.times[here, task.dropoff])
            start = max(arrival, task.dropoff_window[0])
            visits.append(Visit(task.id, "dropoff", task.dropoff, arrival, start,
                                max(0, start - task.dropoff_window[1])))  # fmt: skip
            distance += int(dist[here, task.dropoff])
            clock, here = start + task.dropoff_service_s, task.dropoff
            served.add(task.id)
        end = vehicle.end if vehicle.end is not None else here
        distance += int(dist[here, end])
        clock += int(problem.times[here, end])
        travel += int(problem.times[here, end])
        if visits:
            routes.append(Route(vehicle.id, visits, clock, travel, distance))
    dropped = [Dropped(t.id, "not served") for t in problem.tasks if t.id not in served]
    plan = Plan(routes=routes, dropped=dropped, engine="pyvrp")
    return Plan(routes=routes, dropped=dropped, objective=cost(problem, plan), engine="pyvrp")


def cost(problem: Problem, plan: Plan) -> int:
    """The problem's own objective for a plan (vehicles, distance, time, lateness, drops),
    so plans from different engines compare on one scale."""
    c = problem.costs
    tasks = {t.id: t for t in problem.tasks}
    total = c.per_vehicle * plan.vehicles_used
    total += c.per_metre * plan.distance_m + c.per_second * plan.travel_s
    total += c.lateness_per_second * plan.late_s
    total += sum(c.drop[tasks[d.task_id].priority] for d in plan.dropped if d.task_id in tasks)
    return int(total)


def solve_here(
    problem: Problem, time_limit: float, seed: int = 0, *, reduce_fleet: bool = True
) -> Plan:
    """PyVRP in this process: fixed vehicle cost, then distance; hard windows.

    With ``reduce_fleet``, the limit is spent in stages, because a vehicle costs more than any
    distance and a search with the whole fleet at hand rarely empties one: a first search
    (a quarter of the limit) finds a fleet size; then, while a third of the limit is left,
    the search is run again with one vehicle fewer until its first feasible plan (as in
    PyVRP's own ``minimise_fleet``); the rest of the limit improves the distance of the
    smallest feasible fleet, starting from its plan (or, when the first search found nothing
    feasible, goes on from the best it found)."""
    from pyvrp import Model, Solution
    from pyvrp import solve as pyvrp_solve
    from pyvrp.exceptions import PenaltyBoundWarning
    from pyvrp.stop import FirstFeasible, MaxRuntime, MultipleCriteria

    assert problem.distances is not None
    started = time.perf_counter()
    v0 = problem.vehicles[0]
    assert v0.end is not None
    model = Model()
    depot = model.add_depot(model.add_location(0, 0), tw_early=v0.shift[0], tw_late=v0.shift[1])
    model.add_vehicle_type(
        num_available=len(problem.vehicles), capacity=v0.capacity[0], start_depot=depot,
        end_depot=depot, fixed_cost=problem.costs.per_vehicle, tw_early=v0.shift[0],
        tw_late=v0.shift[1],
    )  # fmt: skip
    for task in problem.tasks:
        model.add_client(
            model.add_location(0, 0), delivery=task.size[0],
            service_duration=task.dropoff_service_s,
            tw_early=task.dropoff_window[0], tw_late=task.dropoff_window[1],
        )  # fmt: skip
    index = [v0.start] + [t.dropoff for t in problem.tasks]
    locations = model.locations
    for a, i in enumerate(index):
        for b, j in enumerate(index):
            if a != b:
                model.add_edge(locations[a], locations[b], distance=int(problem.distances[i, j]),
                               duration=int(problem.times[i, j]))  # fmt: skip
    data = model.data()

    def left() -> float:
        return time_limit - (time.perf_counter() - started)

    def search(fleet: int, stop: Any, initial: list[list[int]] | None = None) -> Any:
        sized = data.replace(vehicle_types=[data.vehicle_type(0).replace(num_available=fleet)])
        start = Solution(sized, initial) if initial is not None else None
        return pyvrp_solve(sized, stop, seed, collect_stats=False, display=False,
                           initial_solution=start).best  # fmt: skip

    def clients(solution: Any) -> list[list[int]]:
        # A client activity's ``idx`` is the client's index, i.e. the task's.
        return [[a.idx for a in route if a.is_client()] for route in solution.routes()]

    def rank(solution: Any) -> tuple[bool, int, int]:
        return not solution.is_feasible(), solution.num_routes(), solution.distance()

    fleet = len(problem.vehicles)
    best = search(fleet, MaxRuntime(max(0.0, left() / 4 if reduce_fleet else left())))
    if reduce_fleet:
        with warnings.catch_warnings():  # PyVRP warns when a fleet is too small: expected here
            warnings.simplefilter("ignore", PenaltyBoundWarning)
            if best.is_feasible():
                fleet = best.num_routes()
            while best.is_feasible() and fleet > 1 and left() > time_limit / 3:
                fewer = search(
                    fleet - 1,
                    MultipleCriteria([FirstFeasible(), MaxRuntime(left() - time_limit / 6)]),
                )
                if not fewer.is_feasible():
                    break
                best, fleet = fewer, fewer.num_routes()
        if left() > 0:  # the rest of the limit: improve the smallest fleet's (or any) plan
            best = min(best, search(fleet, MaxRuntime(left()), clients(best)), key=rank)
    sequences = clients(best)
    return plan_from_sequences(problem, sequences)


def start(problem: Problem, time_limit: float, seed: int = 0) -> Future[Plan]:
    """Solve in the worker process; the future's result is the plan."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        atexit.register(_pool.shutdown, wait=False, cancel_futures=True)
    return _pool.submit(solve_here, problem, time_limit, seed)
