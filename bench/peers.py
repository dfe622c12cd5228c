"""The peers of ``fleet bench dispatch``: PyVRP and VROOM, each standing alone, on the same
integer matrices as our solver (Euclidean distance times 1000, rounded), at the same time limit.

Both get the hierarchical objective as their own cost (a fixed cost per vehicle of 10,000 times
the scale, then distance); VROOM's cost is travel time, which is the distance here. Their routes
come back as plans and go through the same independent checker as ours.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from dispatch.plan import Dropped, Plan, Route, Visit
from dispatch.problem import Problem
from dispatch.solomon import SCALE


class Peer(Protocol):
    def __call__(self, problem: Problem, *, time_limit: float, seed: int = 0) -> Plan: ...


def plan_from_sequences(problem: Problem, sequences: list[list[int]]) -> Plan:
    """A plan from one list of task indices per used vehicle (times recomputed, so the checker
    sees what the routes really do); tasks in no sequence are reported dropped."""
    routes = []
    served: set[str] = set()
    for vehicle, seq in zip(problem.vehicles, sequences, strict=False):
        clock, here, visits, distance = vehicle.shift[0], vehicle.start, [], 0
        for k in seq:
            task = problem.tasks[k]
            arrival = clock + int(problem.times[here, task.dropoff])
            start = max(arrival, task.dropoff_window[0])
            visits.append(Visit(task.id, "dropoff", task.dropoff, arrival, start,
                                max(0, start - task.dropoff_window[1])))  # fmt: skip
            distance += (
                int(problem.distances[here, task.dropoff]) if problem.distances is not None else 0
            )
            clock, here = start + task.dropoff_service_s, task.dropoff
            served.add(task.id)
        end = vehicle.end if vehicle.end is not None else here
        distance += int(problem.distances[here, end]) if problem.distances is not None else 0
        clock += int(problem.times[here, end])
        if visits:
            routes.append(Route(vehicle.id, visits, clock, clock - vehicle.shift[0], distance))
    dropped = [Dropped(t.id, "not served") for t in problem.tasks if t.id not in served]
    return Plan(routes=routes, dropped=dropped, objective=sum(r.distance_m for r in routes))


def pyvrp_solve(problem: Problem, *, time_limit: float, seed: int = 0) -> Plan:
    """PyVRP (iterated local search), fixed vehicle cost then distance."""
    from pyvrp import Model
    from pyvrp.stop import MaxRuntime

    assert problem.distances is not None
    model = Model()
    horizon = problem.vehicles[0].shift[1]
    depot = model.add_depot(model.add_location(0, 0), tw_early=0, tw_late=horizon)
    model.add_vehicle_type(
        num_available=len(problem.vehicles), capacity=problem.vehicles[0].capacity[0],
        start_depot=depot, end_depot=depot, fixed_cost=problem.costs.per_vehicle,
        tw_early=0, tw_late=horizon,
    )  # fmt: skip
    clients = []
    for task in problem.tasks:
        clients.append(
            model.add_client(
                model.add_location(0, 0), delivery=task.size[0],
                service_duration=task.dropoff_service_s,
                tw_early=task.dropoff_window[0], tw_late=task.dropoff_window[1],
            )
        )  # fmt: skip
    index = [0] + [t.dropoff for t in problem.tasks]
    locations = model.locations
    for a, i in enumerate(index):
        for b, j in enumerate(index):
            if a != b:
                d = int(problem.distances[i, j])
                model.add_edge(
                    locations[a], locations[b], distance=d, duration=int(problem.times[i, j])
                )
    result = model.solve(stop=MaxRuntime(time_limit), seed=seed, display=False, collect_stats=False)
    sequences = [[a.idx for a in route if a.is_client()] for route in result.best.routes()]
    return plan_from_sequences(problem, sequences)


def vroom_solve(problem: Problem, *, time_limit: float, seed: int = 0) -> Plan:
    """VROOM (exploration level 5, one thread), fixed vehicle cost then travel time."""
    import numpy as np
    import vroom

    del seed  # VROOM is deterministic
    index = [0] + [t.dropoff for t in problem.tasks]
    matrix = np.asarray(problem.times)[np.ix_(index, index)].astype(np.uint32)
    instance = vroom.Input()
    instance.set_durations_matrix(profile="car", matrix_input=matrix)
    horizon = problem.vehicles[0].shift[1]
    fixed = min(problem.costs.per_vehicle, 2**31 - 1)
    for k, vehicle in enumerate(problem.vehicles):
        instance.add_vehicle(
            vroom.Vehicle(k + 1, start=0, end=0, capacity=list(vehicle.capacity),
                          time_window=vroom.TimeWindow(0, horizon),
                          costs=vroom.VehicleCosts(fixed=fixed, per_hour=3600))
        )  # fmt: skip
    for k, task in enumerate(problem.tasks):
        instance.add_job(
            vroom.Job(k + 1, location=k + 1, default_service=task.dropoff_service_s,
                      delivery=list(task.size),
                      time_windows=[vroom.TimeWindow(*task.dropoff_window)])
        )  # fmt: skip
    solution = instance.solve(
        exploration_level=5, nb_threads=1, timeout=dt.timedelta(seconds=time_limit)
    )
    routes = solution.routes
    sequences: dict[int, list[int]] = {}
    for _, row in routes.iterrows():
        if row["type"] == "job":
            sequences.setdefault(int(row["vehicle_id"]), []).append(int(row["id"]) - 1)
    ordered = [sequences.get(k + 1, []) for k in range(len(problem.vehicles))]
    return plan_from_sequences(problem, ordered)


PEERS: dict[str, Peer] = {"pyvrp": pyvrp_solve, "vroom": vroom_solve}
__all__ = ["PEERS", "SCALE", "plan_from_sequences"]
