"""Solomon / Gehring & Homberger VRPTW instances as :class:`~dispatch.problem.Problem`.

Convention (``../shared/data/vrp/SOURCES.md``): Euclidean distances at full precision, travel
time = distance, service times and windows as in the file, the depot's window is the horizon.
Integer scaling is one named step: every distance and time is multiplied by :data:`SCALE` and
rounded, so a reported distance is ``plan.distance_m / SCALE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dispatch.problem import Costs, Problem, Task, Vehicle

SCALE = 1000


def scaled(value: float) -> int:
    """The integer the solver sees for a distance or time of the instance.

    >>> scaled(12.3456789)
    12346
    """
    return round(value * SCALE)


@dataclass(frozen=True, slots=True)
class Instance:
    name: str
    vehicles: int
    capacity: int
    xy: np.ndarray  # (n, 2), row 0 the depot
    demand: list[int]
    ready: list[int]
    due: list[int]
    service: list[int]


def parse(path: Path) -> Instance:
    lines = [line.split() for line in path.read_text().splitlines()]
    rows = [r for r in lines if r]
    vehicles_at = next(i for i, r in enumerate(rows) if r[0] == "VEHICLE")
    vehicles, capacity = int(rows[vehicles_at + 2][0]), int(rows[vehicles_at + 2][1])
    data = [r for r in rows if r[0].isdigit() and len(r) == 7]
    table = np.array(data, dtype=np.float64)
    return Instance(
        name=rows[0][0],
        vehicles=vehicles,
        capacity=capacity,
        xy=table[:, 1:3],
        demand=table[:, 3].astype(int).tolist(),
        ready=table[:, 4].astype(int).tolist(),
        due=table[:, 5].astype(int).tolist(),
        service=table[:, 6].astype(int).tolist(),
    )


def to_problem(instance: Instance, *, vehicle_cost: int = 10_000 * SCALE) -> Problem:
    """Hard windows, distance as the cost, a fixed cost per vehicle (fewest vehicles first)."""
    diff = instance.xy[:, None, :] - instance.xy[None, :, :]
    exact = np.sqrt((diff**2).sum(axis=2))
    matrix = np.rint(exact * SCALE).astype(np.int64)
    horizon = scaled(instance.due[0])
    vehicles = [
        Vehicle(id=f"v{i}", start=0, end=0, capacity=(instance.capacity,), shift=(0, horizon))
        for i in range(instance.vehicles)
    ]
    tasks = [
        Task(
            id=f"c{i}",
            pickup=None,
            dropoff=i,
            dropoff_window=(scaled(instance.ready[i]), scaled(instance.due[i])),
            dropoff_service_s=scaled(instance.service[i]),
            size=(instance.demand[i],),
        )
        for i in range(1, len(instance.demand))
    ]
    return Problem(
        times=matrix,
        distances=matrix,
        vehicles=vehicles,
        tasks=tasks,
        dimensions=("demand",),
        costs=Costs(
            per_second=0,
            per_metre=1,
            per_vehicle=vehicle_cost,
            lateness_per_second=0,
            # Leaving a customer out must cost more than any vehicle: serve everyone.
            drop={"normal": 100 * vehicle_cost, "express": 100 * vehicle_cost},
        ),
        hard_windows=True,
        horizon=horizon,
    )
