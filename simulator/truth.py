"""The ground truth the server never sees: how fast traffic really moves, where and when.

Real speed on an arc is its free-flow speed times a smooth, time-varying congestion field
times the incidents covering it. The congestion field is a few "hot spots" (Gaussian in space)
whose intensity rises and falls over the scenario, on top of a city-wide level below free flow
(where spots overlap the worst one counts: congestion does not compound without limit);
everything is drawn from the scenario's seed, so a run can be repeated exactly. Incidents are
the scenario's; some are reported to the server as traffic events, some stay hidden.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geo.network import RoadNetwork
from geo.traffic import TrafficEvent

EARTH_M = 6_371_008.8
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Incident:
    """A slowdown around a point from ``start_s`` to ``end_s`` (scenario seconds)."""

    id: str
    lat: float
    lon: float
    radius_m: float
    factor: float  # speed multiplier inside, in (0, 1]
    start_s: float
    end_s: float
    reported: bool  # told to the server as a traffic event

    def polygon(self, sides: int = 12) -> list[tuple[float, float]]:
        """The incident's area as a ``[(lon, lat), …]`` ring, as the traffic API takes it."""
        return ring(self.lat, self.lon, self.radius_m, sides)

    def traffic_event(self) -> TrafficEvent:
        """The incident as a navigation map takes it once reported (factor, area, start, end)."""
        return TrafficEvent(id=self.id, factor=self.factor, polygon=self.polygon(),
                            start_s=self.start_s, end_s=self.end_s)  # fmt: skip


def ring(lat: float, lon: float, radius_m: float, sides: int = 12) -> list[tuple[float, float]]:
    """A ``[(lon, lat), …]`` polygon approximating the circle of ``radius_m`` around a point."""
    points = []
    for k in range(sides):
        a = 2 * math.pi * k / sides
        dlat = radius_m * math.sin(a) / EARTH_M
        dlon = radius_m * math.cos(a) / (EARTH_M * math.cos(math.radians(lat)))
        points.append((lon + math.degrees(dlon), lat + math.degrees(dlat)))
    return points


@dataclass(frozen=True, slots=True)
class HotSpot:
    x: float
    y: float
    sigma_m: float
    depth: float  # the largest slowdown at its centre, 0..1
    period_s: float
    phase: float


class GroundTruth:
    """Real speed factors (0 < f ≤ 1) per arc at a scenario time."""

    def __init__(
        self,
        network: RoadNetwork,
        *,
        seed: int,
        level: float = 0.85,
        hot_spots: int = 4,
        incidents: tuple[Incident, ...] = (),
    ) -> None:
        rng = random.Random(seed)
        self.network = network
        self.level = level
        self.lat0 = float(np.mean(network.node_lat))
        self.lon0 = float(np.mean(network.node_lon))
        tail, head = network.tail, network.head
        mid_lat = (network.node_lat[tail] + network.node_lat[head]) / 2
        mid_lon = (network.node_lon[tail] + network.node_lon[head]) / 2
        self.arc_x, self.arc_y = self.to_xy(mid_lat, mid_lon)
        nodes = network.node_count
        spots = []
        for _ in range(hot_spots):
            n = rng.randrange(nodes)
            x, y = self.to_xy(network.node_lat[n : n + 1], network.node_lon[n : n + 1])
            spots.append(
                HotSpot(float(x[0]), float(y[0]), rng.uniform(300, 800), rng.uniform(0.2, 0.45),
                        rng.uniform(1200, 3600), rng.uniform(0, 2 * math.pi))
            )  # fmt: skip
        self.spots = tuple(spots)
        self.incidents = incidents
        self._incident_arcs: list[npt.NDArray[np.bool_]] = []
        for incident in incidents:
            ix, iy = self.to_xy(np.array([incident.lat]), np.array([incident.lon]))
            inside = (self.arc_x - ix[0]) ** 2 + (self.arc_y - iy[0]) ** 2 <= incident.radius_m**2
            self._incident_arcs.append(inside)

    def to_xy(self, lat: FloatArray, lon: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Metres east and north of the network's centre (equirectangular: fine for a city)."""
        x = np.radians(np.asarray(lon) - self.lon0) * EARTH_M * math.cos(math.radians(self.lat0))
        y = np.radians(np.asarray(lat) - self.lat0) * EARTH_M
        return x, y

    def factor(self, arc: int, t_s: float) -> float:
        """The real speed factor on one arc at scenario time ``t_s``."""
        x, y = float(self.arc_x[arc]), float(self.arc_y[arc])
        worst = 0.0
        for s in self.spots:
            intensity = 0.5 * (1 - math.cos(2 * math.pi * t_s / s.period_s + s.phase))
            d2 = (x - s.x) ** 2 + (y - s.y) ** 2
            worst = max(worst, s.depth * intensity * math.exp(-d2 / (2 * s.sigma_m**2)))
        f = self.level * (1 - worst)
        for incident, inside in zip(self.incidents, self._incident_arcs, strict=True):
            if incident.start_s <= t_s < incident.end_s and inside[arc]:
                f *= incident.factor
        return max(f, 0.02)

    def speed_mps(self, arc: int, t_s: float) -> float:
        """Real speed on ``arc`` at ``t_s`` in metres per second."""
        net = self.network
        free = float(net.length_m[arc]) / max(float(net.free_flow_ms[arc]), 1.0) * 1000.0
        return free * self.factor(arc, t_s)
