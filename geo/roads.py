"""The road network ready for use: network, metric frame, engine, snapper and traffic together.

``Roads.open(extract, cache_dir)`` loads (or imports) the network; ``route`` and ``matrix_s``
answer between positions snapped to it, counting the partial arcs at both ends; ``add_event`` /
``end_event`` / ``refresh`` re-weight it for traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from geo.engine import CLOSED, TravelTimeEngine
from geo.errors import NoRoute
from geo.geometry import LocalFrame
from geo.network import RoadNetwork, cache_path, load_or_import
from geo.polyline import encode, geojson_line
from geo.snap import SnappedPoint, Snapper
from geo.traffic import Traffic, TrafficEvent

LatLon = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Route:
    time_s: float
    distance_m: float
    nodes: list[int]
    points: list[LatLon]  # from the snapped start to the snapped end

    @property
    def polyline(self) -> str:
        return encode(self.points)

    def geojson(self) -> dict[str, Any]:
        return geojson_line(self.points)


def reverse_arcs(network: RoadNetwork) -> npt.NDArray[np.int64]:
    """For each arc, the arc joining the same nodes the other way, or -1 on a one-way road."""
    forward = {
        (t, h): i
        for i, (t, h) in enumerate(zip(network.tail.tolist(), network.head.tolist(), strict=True))
    }
    return np.array(
        [
            forward.get((h, t), -1)
            for t, h in zip(network.tail.tolist(), network.head.tolist(), strict=True)
        ],
        dtype=np.int64,
    )


class Roads:
    def __init__(
        self,
        network: RoadNetwork,
        *,
        topology_dir: Path | None = None,
        max_snap_m: float = 500.0,
    ) -> None:
        self.network = network
        min_lon, min_lat, max_lon, max_lat = network.bbox()
        self.frame = LocalFrame((min_lat + max_lat) / 2, (min_lon + max_lon) / 2)
        self.engine = TravelTimeEngine(network, topology_dir=topology_dir)
        self.snapper = Snapper(network, self.frame, max_distance_m=max_snap_m)
        self.traffic = Traffic(network, self.frame)
        self.twin = reverse_arcs(network)

    @classmethod
    def open(
        cls,
        osm_path: Path,
        cache_dir: Path,
        *,
        max_snap_m: float = 500.0,
        progress: Callable[[str], None] = print,
    ) -> Roads:
        """Load (or import and cache) the extract's network and its CCH topology."""
        network = load_or_import(osm_path, cache_dir, progress=progress)
        topology = cache_path(cache_dir, network.source_sha256).with_suffix(".cch")
        return cls(network, topology_dir=topology, max_snap_m=max_snap_m)

    # -- traffic -------------------------------------------------------------------------------

    def add_event(self, event: TrafficEvent, now_s: float) -> int:
        """Add a traffic event and re-weight; the number of arcs it touches."""
        touched = self.traffic.add(event)
        self.refresh(now_s)
        return touched

    def end_event(self, event_id: str, now_s: float) -> None:
        self.traffic.remove(event_id)
        self.refresh(now_s)

    def refresh(self, now_s: float) -> None:
        """Re-weight for the events active at ``now_s`` (starts and ends take effect)."""
        self.engine.customize(self.traffic.weights_ms(now_s))

    # -- queries -------------------------------------------------------------------------------

    def snap(self, lat: float, lon: float) -> SnappedPoint:
        return self.snapper.snap_one(lat, lon)

    def departures(self, p: SnappedPoint) -> list[tuple[int, float, float]]:
        """Ways to leave a snapped point: ``(node, ms to reach it, metres to reach it)`` — ahead
        along its arc, and back along the opposite arc when the road is two-way."""
        net, w = self.network, self.engine.weights_ms
        length = float(net.length_m[p.arc])
        options = [(int(net.head[p.arc]), w[p.arc] * (1 - p.fraction), length * (1 - p.fraction))]
        twin = int(self.twin[p.arc])
        if twin >= 0:
            options.append((int(net.tail[p.arc]), w[twin] * p.fraction, length * p.fraction))
        return [o for o in options if o[1] < CLOSED]

    def arrivals(self, p: SnappedPoint) -> list[tuple[int, float, float]]:
        """Ways to reach a snapped point: ``(node, ms from it, metres from it)``."""
        net, w = self.network, self.engine.weights_ms
        length = float(net.length_m[p.arc])
        options = [(int(net.tail[p.arc]), w[p.arc] * p.fraction, length * p.fraction)]
        twin = int(self.twin[p.arc])
        if twin >= 0:
            options.append(
                (int(net.head[p.arc]), w[twin] * (1 - p.fraction), length * (1 - p.fraction))
            )
        return [o for o in options if o[1] < CLOSED]

    def matrix_s(
        self, origins: Sequence[SnappedPoint], destinations: Sequence[SnappedPoint]
    ) -> npt.NDArray[np.float64]:
        """Travel times in seconds between snapped points; ``inf`` where there is no path.

        Each point is anchored at the junction it reaches (or is reached from) soonest along
        its road, with that partial arc added, so one many-to-many call serves the whole matrix;
        on a two-way road this may differ from :meth:`route`, which tries both directions, by at
        most the time to drive that one arc.
        """
        o_anchor = [min(self.departures(p), key=lambda o: o[1], default=None) for p in origins]
        d_anchor = [min(self.arrivals(p), key=lambda o: o[1], default=None) for p in destinations]
        o_node = np.array([a[0] if a else 0 for a in o_anchor], dtype=np.int64)
        d_node = np.array([a[0] if a else 0 for a in d_anchor], dtype=np.int64)
        core = self.engine.matrix_raw(o_node, d_node)
        total = core.astype(np.float64)
        total += np.array([a[1] if a else 0.0 for a in o_anchor])[:, None]
        total += np.array([a[1] if a else 0.0 for a in d_anchor])[None, :]
        total *= 0.001
        total[core >= CLOSED] = np.inf
        total[[a is None for a in o_anchor], :] = np.inf
        total[:, [a is None for a in d_anchor]] = np.inf
        # Same arc with the destination ahead of the origin: drive along the arc.
        columns: dict[int, list[int]] = {}
        for j, q in enumerate(destinations):
            columns.setdefault(q.arc, []).append(j)
        for i, p in enumerate(origins):
            for j in columns.get(p.arc, ()):
                gap = destinations[j].fraction - p.fraction
                if gap >= 0 and self.engine.weights_ms[p.arc] < CLOSED:
                    total[i, j] = min(
                        total[i, j], gap * float(self.engine.weights_ms[p.arc]) / 1000
                    )
        return total

    def route(self, origin: LatLon, destination: LatLon) -> Route:
        """The fastest route between two positions (snapped to the network), trying both
        directions of a two-way road at each end."""
        a, b = self.snap(*origin), self.snap(*destination)
        net, w = self.network, self.engine.weights_ms
        best: tuple[float, float, list[int]] | None = None
        if a.arc == b.arc and b.fraction >= a.fraction and w[a.arc] < CLOSED:
            gap = b.fraction - a.fraction
            best = (gap * w[a.arc], gap * float(net.length_m[a.arc]), [])
        for start, start_ms, start_m in self.departures(a):
            for end, end_ms, end_m in self.arrivals(b):
                try:
                    path = self.engine.path(start, end)
                except NoRoute:
                    continue
                total = start_ms + path.time_s * 1000 + end_ms
                if best is None or total < best[0]:
                    best = (total, start_m + path.distance_m + end_m, path.nodes)
        if best is None:
            raise NoRoute(f"no route from {origin} to {destination} under current traffic")
        ms, metres, nodes = best
        points = [(a.lat, a.lon)]
        points += [(float(net.node_lat[n]), float(net.node_lon[n])) for n in nodes]
        points.append((b.lat, b.lon))
        return Route(ms / 1000.0, metres, nodes, points)
