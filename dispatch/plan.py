"""What the solver returns: routes of visits, with times, and the tasks it could not place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["pickup", "dropoff"]


@dataclass(frozen=True, slots=True)
class Visit:
    task_id: str
    kind: Kind
    location: int
    arrival_s: int  # when the vehicle gets there
    start_s: int  # when service starts (after waiting for the window)
    late_s: int  # seconds after the window closed (0 when on time)


@dataclass(frozen=True, slots=True)
class Route:
    vehicle_id: str
    visits: list[Visit]
    end_s: int  # when the last service ends (or the vehicle reaches its end location)
    travel_s: int
    distance_m: int


@dataclass(frozen=True, slots=True)
class Dropped:
    task_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    routes: list[Route]
    dropped: list[Dropped] = field(default_factory=list)
    objective: int = 0
    engine: str = "ortools"
    initial_objective: int | None = None  # the cost the search started from, when warm-started
    reference_objective: int | None = None  # the reference plan's cost on it, as it stands

    @property
    def vehicles_used(self) -> int:
        return sum(1 for r in self.routes if r.visits)

    @property
    def travel_s(self) -> int:
        return sum(r.travel_s for r in self.routes)

    @property
    def distance_m(self) -> int:
        return sum(r.distance_m for r in self.routes)

    @property
    def late_s(self) -> int:
        return sum(v.late_s for r in self.routes for v in r.visits)

    def route_of(self, vehicle_id: str) -> Route | None:
        return next((r for r in self.routes if r.vehicle_id == vehicle_id), None)

    def vehicle_of(self, task_id: str) -> str | None:
        for route in self.routes:
            if any(v.task_id == task_id for v in route.visits):
                return route.vehicle_id
        return None
