"""Scenarios: what happens in a simulated run, drawn from a seed and nothing else.

A scenario names its fleet size, how many orders arrive and over how long, the order mix
(express and cold-chain shares), the incidents (some reported to the server as traffic events,
some hidden), breakdowns, GPS quality and failure rates. :func:`generate` turns it into concrete
events on a road network; the same scenario and seed always give the same events.

Orders are picked up at a few "shops" (hubs) and delivered within the area, as same-city
express delivery works; arrivals are a Poisson stream (uniform arrival times, sorted, for an
exact count).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from dataclasses import dataclass

from geo.distance import haversine_m
from geo.network import RoadNetwork
from simulator.truth import GroundTruth, Incident

FAILURE_REASONS = ("customer_absent", "refused", "address_wrong", "other")


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    name: str
    duration_s: float
    vehicles: int
    orders: int
    arrivals_until: float = 0.7  # orders arrive during this share of the duration
    incidents: int = 0
    reported: int = 0  # how many of the incidents are reported to the server
    breakdowns: int = 0
    # a van due to break down does so only once it has a parcel on board (which another van
    # then collects from it); otherwise at its time, whatever it carries
    breakdown_with_parcel: bool = False
    hubs: int = 4
    express_share: float = 0.2
    cold_share: float = 0.1
    cold_vehicles_share: float = 0.2
    failure_rate: float = 0.03  # share of first drop-off attempts that fail, reasons alike
    failure_reasons: tuple[tuple[str, float], ...] = ()  # (reason, share): instead of the above
    # An order held after a wrong address (the server's FLEET_HOLD_ON): the dispatcher calls
    # the customer and sends it out again this long after the alert (the address was right).
    dispatcher_call_s: float = 180.0
    gps_sigma_m: float = 5.0
    outlier_rate: float = 0.003  # per ping: a fix hundreds of metres off
    dropouts_per_hour: float = 2.0  # per vehicle: connectivity lost for 10-40 s
    pickup_service_s: float = 30.0
    dropoff_service_s: float = 60.0
    express_window_s: float = 900.0
    normal_window_s: float = 900.0
    normal_lead_s: float = 300.0  # normal windows open up to this long after the order
    capacity: int = 12  # parcels per vehicle
    congestion: float = 0.85  # the city-wide real speed level below free flow
    area_m: float | None = None  # everything within this radius of one point (None: anywhere)
    seed: int = 7

    def __post_init__(self) -> None:
        for reason, share in self.failure_reasons:
            if reason not in FAILURE_REASONS:
                raise ValueError(
                    f"unknown failure reason {reason!r}: one of {', '.join(FAILURE_REASONS)}"
                )
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"the share failing as {reason} must be between 0 and 1")
        if sum(share for _, share in self.failure_reasons) > 1.0:
            raise ValueError("the failure shares add up to more than 1")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("the failure rate must be between 0 and 1")
        if not self.gps_sigma_m >= 0.0:
            raise ValueError("the GPS noise must be 0 m or more")

    def with_seed(self, seed: int) -> Scenario:
        return dataclasses.replace(self, seed=seed)


SCENARIOS: dict[str, Scenario] = {
    "smoke": Scenario(
        name="smoke", duration_s=40, vehicles=3, orders=5, arrivals_until=0.15, incidents=1,
        reported=1, hubs=2, pickup_service_s=3, dropoff_service_s=3, express_window_s=120,
        normal_window_s=120, normal_lead_s=0, dropouts_per_hour=0, failure_rate=0.2,
        area_m=150, congestion=0.9,
    ),
    "rush": Scenario(
        name="rush", duration_s=1800, vehicles=25, orders=150, incidents=3, reported=2,
        breakdowns=1,
    ),
    "demo": Scenario(
        name="demo", duration_s=8 * 3600, vehicles=25, orders=8 * 240, arrivals_until=0.97,
        incidents=12, reported=8, breakdowns=4,
    ),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class PlannedOrder:
    id: str
    at_s: float
    pickup: tuple[float, float]
    dropoff: tuple[float, float]
    window_start_s: float
    window_end_s: float
    express: bool
    cold: bool
    parcels: int
    failure: str | None  # the reason this delivery attempt will fail, or None


@dataclass(frozen=True, slots=True)
class PlannedVehicle:
    id: str
    start: tuple[float, float]
    cold: bool
    breakdown_s: float | None  # when it breaks down, if it does


@dataclass(frozen=True, slots=True)
class Events:
    scenario: Scenario
    vehicles: tuple[PlannedVehicle, ...]
    orders: tuple[PlannedOrder, ...]
    incidents: tuple[Incident, ...]


def _places(network: RoadNetwork, rng: random.Random, area_m: float | None) -> list[int]:
    """The nodes positions are drawn from: all, or those within ``area_m`` of a random one."""
    if area_m is None:
        return list(range(network.node_count))
    c = rng.randrange(network.node_count)
    lat0, lon0 = float(network.node_lat[c]), float(network.node_lon[c])
    return [
        n for n in range(network.node_count)
        if haversine_m(lat0, lon0, float(network.node_lat[n]), float(network.node_lon[n])) <= area_m
    ]  # fmt: skip


def _node(network: RoadNetwork, rng: random.Random, places: list[int]) -> tuple[float, float]:
    n = places[rng.randrange(len(places))]
    return float(network.node_lat[n]), float(network.node_lon[n])


def generate(scenario: Scenario, network: RoadNetwork) -> Events:
    """The scenario's concrete events on ``network`` (positions are network nodes)."""
    rng = random.Random(scenario.seed)
    s = scenario
    places = _places(network, rng, s.area_m)
    hubs = [_node(network, rng, places) for _ in range(s.hubs)]
    n_cold = max(1, round(s.vehicles * s.cold_vehicles_share)) if s.cold_share > 0 else 0
    breakdown_at = {
        i: rng.uniform(0.2, 0.6) * s.duration_s
        for i in rng.sample(range(s.vehicles), min(s.breakdowns, s.vehicles))
    }
    vehicles = tuple(
        PlannedVehicle(f"sim-{i + 1:03d}", _node(network, rng, places), i < n_cold, down)
        for i in range(s.vehicles)
        for down in [breakdown_at.get(i)]
    )
    arrivals = sorted(rng.uniform(0, s.arrivals_until * s.duration_s) for _ in range(s.orders))
    orders = []
    for k, at in enumerate(arrivals):
        express = rng.random() < s.express_share
        cold = rng.random() < s.cold_share
        pickup = hubs[rng.randrange(len(hubs))]
        dropoff = _node(network, rng, places)
        shortest = min(150.0, (s.area_m or 300.0) / 2)
        while haversine_m(*pickup, *dropoff) < shortest:
            dropoff = _node(network, rng, places)
        if express:
            start, end = at, at + s.express_window_s
        else:
            start = at + rng.uniform(0, s.normal_lead_s)
            end = start + s.normal_window_s
        failure = _failure(s, rng)
        orders.append(
            PlannedOrder(f"o-{k + 1:04d}", at, pickup, dropoff, start, end, express, cold,
                         rng.randint(1, 3), failure)
        )  # fmt: skip
    incidents = []
    for k in range(s.incidents):
        lat, lon = _node(network, rng, places)
        start = rng.uniform(0.1, 0.5) * s.duration_s
        incidents.append(
            Incident(f"incident-{k + 1}", lat, lon, rng.uniform(150, 300), rng.uniform(0.15, 0.35),
                     start, start + rng.uniform(0.25, 0.5) * s.duration_s, k < s.reported)
        )  # fmt: skip
    return Events(s, vehicles, tuple(orders), tuple(incidents))


def _failure(s: Scenario, rng: random.Random) -> str | None:
    """Why this drop-off's first attempt will fail, or None. With the reasons alike, the draws
    are those scenarios have always made, so a seed gives the same events as before."""
    if not s.failure_reasons:
        if rng.random() < s.failure_rate:
            return FAILURE_REASONS[rng.randrange(len(FAILURE_REASONS))]
        return None
    draw, below = rng.random(), 0.0
    for reason, share in s.failure_reasons:
        below += share
        if draw < below:
            return reason
    return None


def ground_truth(events: Events, network: RoadNetwork) -> GroundTruth:
    """The real speeds of ``events``' run on ``network`` (the same for every arm of a run)."""
    s = events.scenario
    return GroundTruth(network, seed=s.seed, level=s.congestion, incidents=events.incidents)


def fingerprint(events: Events) -> str:
    """A short digest of everything generated: equal for equal scenario, seed and network."""
    text = repr((events.vehicles, events.orders, events.incidents))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
