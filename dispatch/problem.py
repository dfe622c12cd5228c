"""The routing problem, plain data in: locations are indices into the travel-time matrix.

Times are whole seconds from a common origin (the planning clock); sizes are whole units per
capacity dimension (kg, parcels, …, in the order the problem names them). Every type validates
itself, so a bad problem fails where it is built, with a sentence naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from dispatch.errors import ProblemError
from dispatch.plan import Kind

Priority = Literal["normal", "express"]
Window = tuple[int, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Vehicle:
    id: str
    start: int  # location where the vehicle is now
    end: int | None = None  # location to finish at; None: wherever the last stop is
    capacity: tuple[int, ...]
    skills: frozenset[str] = frozenset()
    shift: Window = (0, 24 * 3600)
    available: bool = True  # False (maintenance, broken down, off shift): never planned

    def __post_init__(self) -> None:
        if self.shift[1] < self.shift[0]:
            raise ProblemError(f"vehicle {self.id}: the shift ends before it starts")
        if any(c < 0 for c in self.capacity):
            raise ProblemError(f"vehicle {self.id}: a capacity is negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """One order: a pickup then a drop-off on the same vehicle; or, without a pickup, a drop-off
    of goods the vehicle leaves with (loaded at its start, e.g. the depot) — those already on
    board name their vehicle in ``on_board`` and are pinned to it."""

    id: str
    pickup: int | None  # location; None: the goods leave with the vehicle
    dropoff: int
    pickup_window: Window = (0, 24 * 3600)
    dropoff_window: Window = (0, 24 * 3600)
    pickup_service_s: int = 0
    dropoff_service_s: int = 0
    size: tuple[int, ...]
    skills: frozenset[str] = frozenset()
    priority: Priority = "normal"
    on_board: str | None = None  # vehicle id: picked up, pinned to that vehicle
    assigned: str | None = None  # vehicle id: kept on that vehicle while it is available

    def __post_init__(self) -> None:
        if self.pickup is not None and self.on_board is not None:
            raise ProblemError(f"task {self.id}: goods on board need no pickup")
        for name, (a, b) in (("pickup", self.pickup_window), ("dropoff", self.dropoff_window)):
            if b < a:
                raise ProblemError(f"task {self.id}: the {name} window ends before it starts")
        if any(s < 0 for s in self.size):
            raise ProblemError(f"task {self.id}: a size is negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class Costs:
    """What the objective weighs. All integers (the solver's currency is whole units)."""

    per_second: int = 1  # driving time
    per_metre: int = 0  # driving distance (needs a distance matrix)
    per_vehicle: int = 0  # fixed cost of using a vehicle
    lateness_per_second: int = 10  # soft windows: each second after a window closes
    drop: dict[str, int] = field(
        default_factory=lambda: {"normal": 1_000_000, "express": 5_000_000}
    )
    balance: int = 0  # per second of a route's work past an even share: evens out workloads


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    times: npt.NDArray[np.int64]  # seconds between locations, square
    vehicles: Sequence[Vehicle]
    tasks: Sequence[Task]
    distances: npt.NDArray[np.int64] | None = None  # metres, same shape
    dimensions: tuple[str, ...] = ("parcels",)
    costs: Costs = field(default_factory=Costs)
    hard_windows: bool = False  # True: a window can never be missed (benchmarks)
    # vehicle id → the tasks of the stops it drives to next, in that order, kept first on its
    # route (a task named twice: its pickup, then its drop-off); see :meth:`locked_stops`
    locked: dict[str, tuple[str, ...]] = field(default_factory=dict)
    horizon: int = 2 * 24 * 3600

    def __post_init__(self) -> None:
        n = self.times.shape[0]
        if self.times.ndim != 2 or self.times.shape[1] != n:
            raise ProblemError("the time matrix must be square")
        if self.distances is not None and self.distances.shape != self.times.shape:
            raise ProblemError("the distance matrix must have the time matrix's shape")
        ids = [v.id for v in self.vehicles]
        if len(set(ids)) != len(ids):
            raise ProblemError("vehicle ids must be unique")
        if len({t.id for t in self.tasks}) != len(self.tasks):
            raise ProblemError("task ids must be unique")
        for v in self.vehicles:
            if len(v.capacity) != len(self.dimensions):
                raise ProblemError(f"vehicle {v.id}: one capacity per dimension is needed")
            if not (0 <= v.start < n and (v.end is None or 0 <= v.end < n)):
                raise ProblemError(f"vehicle {v.id}: a location is outside the matrix")
        for t in self.tasks:
            if len(t.size) != len(self.dimensions):
                raise ProblemError(f"task {t.id}: one size per dimension is needed")
            if not (0 <= t.dropoff < n and (t.pickup is None or 0 <= t.pickup < n)):
                raise ProblemError(f"task {t.id}: a location is outside the matrix")
            if t.on_board is not None and t.on_board not in ids:
                raise ProblemError(f"task {t.id}: on board of an unknown vehicle {t.on_board}")
            if t.assigned is not None and t.assigned not in ids:
                raise ProblemError(f"task {t.id}: assigned to an unknown vehicle {t.assigned}")
        by_id = {t.id: t for t in self.tasks}
        owner: dict[str, str] = {}
        for vehicle_id, task_ids in self.locked.items():
            for task_id in task_ids:
                if vehicle_id not in ids or task_id not in by_id:
                    raise ProblemError(f"locked stop {vehicle_id} → {task_id} names an unknown id")
                if owner.setdefault(task_id, vehicle_id) != vehicle_id:
                    raise ProblemError(f"task {task_id} is locked on two vehicles")
            for task_id in set(task_ids):
                most = 2 if by_id[task_id].pickup is not None else 1
                if task_ids.count(task_id) > most:
                    raise ProblemError(f"task {task_id} is locked more often than it has stops")

    def keepable_locks(self) -> dict[str, tuple[str, ...]]:
        """:attr:`locked` cut before the first stop that can no longer be reached from the one
        before it (a road closed since: a promise the roads do not allow is not kept)."""
        tasks = {t.id: t for t in self.tasks}
        starts = {v.id: v.start for v in self.vehicles}
        kept: dict[str, tuple[str, ...]] = {}
        for vehicle_id, stops in self.locked_stops().items():
            here, n = starts[vehicle_id], 0
            for task_id, kind in stops:
                task = tasks[task_id]
                there = task.dropoff if kind == "dropoff" or task.pickup is None else task.pickup
                if self.times[here, there] >= self.horizon:
                    break
                here, n = there, n + 1
            if n:
                kept[vehicle_id] = self.locked[vehicle_id][:n]
        return kept

    def locked_stops(self) -> dict[str, list[tuple[str, Kind]]]:
        """Each vehicle's locked stops in order, as ``(task id, kind)``: a task's first mention
        is its pickup when it still has one, else its drop-off; a second, its drop-off.

        >>> tasks = [Task(id="a", pickup=1, dropoff=2, size=(1,)),
        ...          Task(id="b", pickup=None, dropoff=3, size=(1,))]
        >>> van = Vehicle(id="v", start=0, capacity=(9,))
        >>> p = Problem(times=np.zeros((4, 4), dtype=np.int64), vehicles=[van], tasks=tasks,
        ...             locked={"v": ("a", "b", "a")})
        >>> p.locked_stops()["v"]
        [('a', 'pickup'), ('b', 'dropoff'), ('a', 'dropoff')]
        """
        has_pickup = {t.id for t in self.tasks if t.pickup is not None}
        out: dict[str, list[tuple[str, Kind]]] = {}
        for vehicle_id, task_ids in self.locked.items():
            seen: set[str] = set()
            stops: list[tuple[str, Kind]] = []
            for task_id in task_ids:
                first = task_id not in seen and task_id in has_pickup
                stops.append((task_id, "pickup" if first else "dropoff"))
                seen.add(task_id)
            out[vehicle_id] = stops
        return out
