"""The peers of ``fleet bench dispatch``: PyVRP and VROOM, each standing alone, on the same
integer matrices as our solver (Euclidean distance times 1000, rounded), at the same time limit.

Both get the hierarchical objective as their own cost (a fixed cost per vehicle of 10,000 times
the scale, then distance); VROOM's cost is travel time, which is the distance here. Their routes
come back as plans and go through the same independent checker as ours.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from dispatch.plan import Plan
from dispatch.problem import Problem
from dispatch.pyvrp_engine import plan_from_sequences, solve_here


class Peer(Protocol):
    def __call__(self, problem: Problem, *, time_limit: float, seed: int = 0) -> Plan: ...


def pyvrp_solve(problem: Problem, *, time_limit: float, seed: int = 0) -> Plan:
    """PyVRP alone (iterated local search), fixed vehicle cost then distance."""
    return solve_here(problem, time_limit, seed, reduce_fleet=False)  # PyVRP as it comes


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
