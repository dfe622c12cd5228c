"""The road network ready for use: network, metric frame, engine, snapper and traffic together.

``Roads.open(extract, cache_dir)`` loads (or imports) the network; ``route`` and ``matrix_s``
answer between positions snapped to it, counting the partial arcs at both ends; ``add_event`` /
``end_event`` / ``refresh`` re-weight it for traffic.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from geo.engine import CLOSED, TravelTimeEngine
from geo.errors import GeoError, NoRoute, OutsideServiceArea
from geo.geometry import LocalFrame
from geo.network import RoadNetwork, cache_path, load_or_import
from geo.polyline import encode, geojson_line
from geo.snap import Snapped, SnappedPoint, Snapper
from geo.traffic import Traffic, TrafficEvent

LatLon = tuple[float, float]
FIX_RADIUS_M = 25.0  # a GPS fix may be on any road this close (noise ~5 m, carriageways 10-20 m)
AT_JUNCTION_M = 1.0  # a snapped point this close to a junction is at it (see Roads.ends)
LEG_CACHE = 5_000  # road-path legs kept (each some tens of points)
LEG_STATES = 4  # sets of weights whose legs are kept (the traffic now and just before)
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
NONE: IntArray = np.zeros(0, dtype=np.int64)
# A drawn leg by its ends: its points, the junctions it passes, the arcs at its ends.
Legs = dict[tuple[LatLon, LatLon], tuple[list[LatLon], IntArray, IntArray]]


def _digest(weights: IntArray) -> bytes:
    return hashlib.blake2b(weights.tobytes(), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Route:
    """A route between two snapped positions under the weights it was computed with."""

    time_s: float
    distance_m: float
    nodes: list[int]
    points: list[LatLon]  # from the snapped start to the snapped end

    @property
    def polyline(self) -> str:
        """The points as a Google encoded polyline, precision 6."""
        return encode(self.points)

    def geojson(self) -> dict[str, Any]:
        """The points as a GeoJSON LineString (``[lon, lat]`` coordinates)."""
        return geojson_line(self.points)


def reverse_arcs(network: RoadNetwork) -> npt.NDArray[np.int64]:
    """For each arc, the arc joining the same nodes the other way, or -1 on a one-way road."""
    n = network.node_count
    key = network.tail.astype(np.int64) * n + network.head
    back = network.head.astype(np.int64) * n + network.tail
    order = np.argsort(key, kind="stable")
    at = np.minimum(np.searchsorted(key[order], back), key.shape[0] - 1)
    return np.where(key[order][at] == back, order[at], -1).astype(np.int64)


def same_arc_pairs(a: IntArray, b: IntArray) -> tuple[IntArray, IntArray]:
    """Every ``(i, j)`` with ``a[i] == b[j]``, without an ``len(a) x len(b)`` comparison.

    >>> [x.tolist() for x in same_arc_pairs(np.array([5, 7, 5]), np.array([5, 9, 5]))]
    [[0, 0, 2, 2], [0, 2, 0, 2]]
    """
    order = np.argsort(b, kind="stable")
    lo = np.searchsorted(b[order], a, side="left")
    count = np.searchsorted(b[order], a, side="right") - lo
    i = np.repeat(np.arange(a.shape[0]), count)
    within = np.arange(i.shape[0]) - np.repeat(np.cumsum(count) - count, count)
    return i.astype(np.int64), order[np.repeat(lo, count) + within].astype(np.int64)


def _arc_fraction(points: Sequence[SnappedPoint] | Snapped) -> tuple[IntArray, FloatArray]:
    if isinstance(points, Snapped):
        return points.arc.astype(np.int64), points.fraction.astype(np.float64)
    arc = np.fromiter((p.arc for p in points), dtype=np.int64, count=len(points))
    fraction = np.fromiter((p.fraction for p in points), dtype=np.float64, count=len(points))
    return arc, fraction


class Roads:
    """One network with everything that answers on it: its metric frame, the travel-time
    engine on the current traffic weights, the snapper and the set of traffic events.

    Queries may run in several threads (paths are drawn in worker threads; the cache of drawn
    legs takes a lock), but a traffic change re-customises the engine in place: not while
    queries run in other threads.
    """

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
        # Legs of drawn paths by their ends, with the junctions and end arcs they run on (none
        # for a straight leg), under the weights in use: a re-planned route mostly keeps its
        # stops, so most of its path is drawn already. The legs of the last few sets of
        # weights are kept too: when a jam ends, the weights are those from before it again.
        self._legs: Legs = {}
        self._legs_weights = self.engine.weights_ms  # (replaced, never changed in place)
        self._legs_by_weights: dict[bytes, Legs] = {_digest(self._legs_weights): self._legs}
        self._legs_lock = threading.Lock()  # paths are drawn in worker threads

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
        """Drop a traffic event (unknown ids are ignored) and re-weight: the weights are those
        of the remaining events, exactly."""
        self.traffic.remove(event_id)
        self.refresh(now_s)

    def refresh(self, now_s: float) -> None:
        """Re-weight for the events active at ``now_s`` (starts and ends take effect)."""
        self.engine.customize(self.traffic.weights_ms(now_s))

    # -- queries -------------------------------------------------------------------------------

    def snap(self, lat: float, lon: float) -> SnappedPoint:
        """Snap one position; :class:`~geo.errors.OutsideServiceArea` when too far from roads."""
        return self.snapper.snap_one(lat, lon)

    def snap_many(self, lat: npt.ArrayLike, lon: npt.ArrayLike) -> Snapped:
        """Snap a batch; positions too far from roads are flagged in ``inside``, not raised."""
        return self.snapper.snap(
            np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
        )

    def ends(
        self, arc: IntArray, fraction: FloatArray, *, leaving: bool
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        """The two junctions by which snapped points are left (``leaving``) or reached, as
        ``(node, ms, metres)`` arrays of shape ``(n, 2)``: column 0 along the point's own arc,
        column 1 along the opposite arc of a two-way road. ``ms`` is ``inf`` where that way is
        unusable (a one-way road, or a closed arc). A point within :data:`AT_JUNCTION_M` of a
        junction is at it, one-way road or not: a van standing where one one-way street meets
        the next can be snapped to either, and must not be sent round the block."""
        net, w = self.network, self.engine.weights_ms
        twin = self.twin[arc]
        own_open = w[arc] < CLOSED
        twin_open = (twin >= 0) & (w[np.maximum(twin, 0)] < CLOSED)
        own_w = np.where(own_open, w[arc], 0).astype(np.float64)
        back_w = np.where(twin_open, w[np.maximum(twin, 0)], own_w).astype(np.float64)
        length, rest = net.length_m[arc], 1.0 - fraction
        if leaving:  # ahead to the head, or back (along the twin) to the tail
            nodes = np.column_stack([net.head[arc], net.tail[arc]])
            ms = np.column_stack([own_w * rest, back_w * fraction])
            metres = np.column_stack([length * rest, length * fraction])
            at_back = length * fraction <= AT_JUNCTION_M
        else:  # from the tail along the arc, or from the head along the twin
            nodes = np.column_stack([net.tail[arc], net.head[arc]])
            ms = np.column_stack([own_w * fraction, back_w * rest])
            metres = np.column_stack([length * fraction, length * rest])
            at_back = length * rest <= AT_JUNCTION_M
        back_open = twin_open | (own_open & at_back)
        ms[~np.column_stack([own_open, back_open])] = np.inf
        return nodes.astype(np.int64), ms, metres

    def _single_ends(self, p: SnappedPoint, *, leaving: bool) -> list[tuple[int, float, float]]:
        nodes, ms, metres = self.ends(
            np.array([p.arc], dtype=np.int64), np.array([p.fraction]), leaving=leaving
        )
        return [
            (int(nodes[0, k]), float(ms[0, k]), float(metres[0, k]))
            for k in range(2)
            if np.isfinite(ms[0, k])
        ]

    def departures(self, p: SnappedPoint) -> list[tuple[int, float, float]]:
        """Ways to leave a snapped point: ``(node, ms to reach it, metres to reach it)`` — ahead
        along its arc, and back along the opposite arc when the road is two-way."""
        return self._single_ends(p, leaving=True)

    def arrivals(self, p: SnappedPoint) -> list[tuple[int, float, float]]:
        """Ways to reach a snapped point: ``(node, ms from it, metres from it)``."""
        return self._single_ends(p, leaving=False)

    def matrix_s(
        self,
        origins: Sequence[SnappedPoint] | Snapped,
        destinations: Sequence[SnappedPoint] | Snapped,
    ) -> npt.NDArray[np.float64]:
        """Travel times in seconds between snapped points; ``inf`` where there is no path.

        Each point is anchored at the junction it reaches (or is reached from) soonest along
        its road, with that partial arc added, so one many-to-many call serves the whole matrix;
        on a two-way road this may be slower than :meth:`route_between`, which tries both
        directions, by at most the time to drive the arc at each end (arcs join consecutive
        OSM nodes: seconds). Never faster than the exact route. Vectorised: a batch
        :class:`~geo.snap.Snapped` (or a sequence of :class:`~geo.snap.SnappedPoint`) each side.
        """
        o_arc, o_frac = _arc_fraction(origins)
        d_arc, d_frac = _arc_fraction(destinations)
        rows_o, rows_d = np.arange(o_arc.shape[0]), np.arange(d_arc.shape[0])
        o_nodes, o_ms, _ = self.ends(o_arc, o_frac, leaving=True)
        d_nodes, d_ms, _ = self.ends(d_arc, d_frac, leaving=False)
        o_pick, d_pick = np.argmin(o_ms, axis=1), np.argmin(d_ms, axis=1)
        core = self.engine.matrix_raw(o_nodes[rows_o, o_pick], d_nodes[rows_d, d_pick])
        o_s, d_s = o_ms[rows_o, o_pick] * 0.001, d_ms[rows_d, d_pick] * 0.001
        total = core.astype(np.float64)  # in place from here: 1M-entry temporaries cost ms
        if core.max(initial=0) >= CLOSED:
            total[core >= CLOSED] = np.inf
        total *= 0.001
        total += o_s[:, None]
        total += d_s[None, :]
        # Same arc with the destination ahead of the origin: drive along the arc.
        i, j = same_arc_pairs(o_arc, d_arc)
        gap = d_frac[j] - o_frac[i]
        w = self.engine.weights_ms[o_arc[i]]
        ok = (gap >= 0) & (w < CLOSED)
        i, j = i[ok], j[ok]
        total[i, j] = np.minimum(total[i, j], gap[ok] * w[ok] * 0.001)
        return total

    def from_fixes_s(
        self,
        fixes: Sequence[LatLon],
        destinations: Sequence[SnappedPoint] | Snapped,
        *,
        radius_m: float = FIX_RADIUS_M,
    ) -> npt.NDArray[np.float64]:
        """Travel times in seconds from vehicles' GPS fixes to each destination (a row per
        fix): from each, the fastest from any road within ``radius_m`` of it
        (:meth:`~geo.snap.Snapper.near`). Snapped to the nearest road only, a fix a few metres
        off (GPS noise) that lands on the other carriageway of a dual road, or on a one-way
        street beside the vehicle's own, sends it round the block: minutes where it is seconds
        away. A vehicle on its way is far likelier on the road that leads there. One matrix
        call for all; :class:`~geo.errors.OutsideServiceArea` when a fix is too far from any
        road."""
        n_dest = len(destinations.arc) if isinstance(destinations, Snapped) else len(destinations)
        if not fixes:
            return np.zeros((0, n_dest))
        lat = np.array([f[0] for f in fixes], dtype=np.float64)
        lon = np.array([f[1] for f in fixes], dtype=np.float64)
        near, row = self.snapper.near(lat, lon, radius_m)
        starts = np.searchsorted(row, np.arange(len(fixes)))  # each fix's first (the nearest)
        if not near.inside[starts].all():
            i = int(np.argmin(near.inside[starts]))
            limit = self.snapper.max_distance_m
            raise OutsideServiceArea(
                fixes[i][0], fixes[i][1], float(near.distance_m[starts[i]]), limit
            )
        times = self.matrix_s(near, destinations)
        fastest: npt.NDArray[np.float64] = np.minimum.reduceat(times, starts, axis=0)
        return fastest

    def path_through(self, points: Sequence[LatLon]) -> list[LatLon]:
        """The road path from the first point through the others in turn (a straight segment
        for a leg that has no route, say a point outside the service area)."""
        with self._legs_lock:
            if self._legs_weights is not self.engine.weights_ms:  # the traffic changed
                self._switch_legs()
            legs = self._legs
        path: list[LatLon] = list(points[:1])
        snapped: Snapped | None = None  # every point at once, when a leg is not in the cache
        for i, (a, b) in enumerate(itertools.pairwise(points)):
            cached = legs.get((a, b))
            if cached is None:
                if snapped is None:
                    snapped = self.snap_many([p[0] for p in points], [p[1] for p in points])
                cached = ([a, b], NONE, NONE)
                if snapped.inside[i] and snapped.inside[i + 1]:
                    with contextlib.suppress(GeoError):
                        start, end = snapped.point(i), snapped.point(i + 1)
                        route = self.route_between(start, end)
                        ends = self.twin[[start.arc, end.arc]]
                        cached = (
                            route.points,
                            np.asarray(route.nodes, dtype=np.int64),
                            np.concatenate([[start.arc, end.arc], ends[ends >= 0]]),
                        )
                if len(legs) >= LEG_CACHE:
                    with contextlib.suppress(StopIteration, KeyError, RuntimeError):  # (threads)
                        del legs[next(iter(legs))]  # the oldest
                legs[a, b] = cached
            path += cached[0]
        return path

    def _switch_legs(self) -> None:
        """The legs for the weights now in use: those drawn under these very weights before,
        if they are among the last ``LEG_STATES``; else, when no arc got faster (a slowdown or
        a closure began), the current legs that touch no changed arc (at a junction or at
        their ends): such a leg is still the fastest, its time the same and every other
        path's the same or longer. When an arc got faster, none."""
        old, new = self._legs_weights, self.engine.weights_ms
        self._legs_weights = new
        digest = _digest(new)
        known = self._legs_by_weights.pop(digest, None)
        if known is not None:
            self._legs = known
        elif old.shape == new.shape and not bool(np.any(new < old)):
            changed = new != old
            near = np.zeros(self.network.node_count, dtype=bool)
            near[self.network.tail[changed]] = True
            near[self.network.head[changed]] = True
            self._legs = {
                key: leg
                for key, leg in list(self._legs.items())  # (a copy: other threads add legs)
                if not (near[leg[1]].any() or changed[leg[2]].any())
            }
        else:
            self._legs = {}
        self._legs_by_weights[digest] = self._legs  # the most recent last
        while len(self._legs_by_weights) > LEG_STATES:
            del self._legs_by_weights[next(iter(self._legs_by_weights))]

    def distance_to_path_m(self, lat: float, lon: float, path: Sequence[LatLon]) -> float:
        """Metres from a position to the nearest point of a path (``inf`` for an empty one)."""
        if not path:
            return float("inf")
        lats, lons = np.array([p[0] for p in path]), np.array([p[1] for p in path])
        x, y = self.frame.to_xy(lats, lons)
        (px,), (py,) = self.frame.to_xy(np.array([lat]), np.array([lon]))
        if len(x) == 1:
            return float(np.hypot(x[0] - px, y[0] - py))
        dx, dy = np.diff(x), np.diff(y)
        length2 = np.maximum(dx * dx + dy * dy, 1e-12)
        along = np.clip(((px - x[:-1]) * dx + (py - y[:-1]) * dy) / length2, 0.0, 1.0)
        return float(np.hypot(x[:-1] + along * dx - px, y[:-1] + along * dy - py).min())

    def route(self, origin: LatLon, destination: LatLon) -> Route:
        """The fastest route between two ``(lat, lon)`` positions, snapped to the network first
        (:class:`~geo.errors.OutsideServiceArea` when one is too far from any road)."""
        return self.route_between(self.snap(*origin), self.snap(*destination))

    def route_between(self, a: SnappedPoint, b: SnappedPoint) -> Route:
        """The fastest route between two snapped points: the rest of ``a``'s arc, the path
        between junctions, and the start of ``b``'s arc, trying both directions of a two-way
        road at each end; :class:`~geo.errors.NoRoute` when none is open."""
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
            raise NoRoute(
                f"no route from ({a.lat:.6f}, {a.lon:.6f}) to ({b.lat:.6f}, {b.lon:.6f}) "
                "under current traffic"
            )
        ms, metres, nodes = best
        points = [(a.lat, a.lon)]
        points += [(float(net.node_lat[n]), float(net.node_lon[n])) for n in nodes]
        points.append((b.lat, b.lon))
        return Route(ms / 1000.0, metres, nodes, points)
