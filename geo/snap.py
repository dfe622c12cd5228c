"""Snapping positions to the nearest drivable arc, vectorised for batches.

Arcs are straight segments between OSM nodes. Each is sampled every ``sample_m`` metres in the
network's :class:`~geo.geometry.LocalFrame`; a KD-tree over the samples gives each query point
its ``k`` nearest samples, and the exact point-to-segment distance on those candidate arcs picks
the winner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from geo.errors import OutsideServiceArea
from geo.geometry import LocalFrame
from geo.network import RoadNetwork

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Snapped:
    """Where a batch of positions meets the road network (arrays of the batch's length)."""

    arc: IntArray  # the nearest arc
    offset_m: FloatArray  # distance from the arc's tail to the projected point
    fraction: FloatArray  # offset / arc length, in [0, 1]
    distance_m: FloatArray  # from the position to the road
    lat: FloatArray  # the projected point
    lon: FloatArray
    inside: npt.NDArray[np.bool_]  # distance_m <= the service-area limit

    def point(self, i: int) -> SnappedPoint:
        """The ``i``-th of the batch on its own."""
        return SnappedPoint(
            arc=int(self.arc[i]),
            offset_m=float(self.offset_m[i]),
            fraction=float(self.fraction[i]),
            distance_m=float(self.distance_m[i]),
            lat=float(self.lat[i]),
            lon=float(self.lon[i]),
        )


@dataclass(frozen=True, slots=True)
class SnappedPoint:
    """Where one position meets the road network (see :class:`Snapped` for the fields)."""

    arc: int
    offset_m: float
    fraction: float
    distance_m: float
    lat: float
    lon: float


class Snapper:
    """Nearest-arc search over one network: a KD-tree of points sampled along the arcs, then
    the exact distance to the candidate arcs. ``max_distance_m`` bounds the service area."""

    def __init__(
        self,
        network: RoadNetwork,
        frame: LocalFrame,
        *,
        max_distance_m: float = 500.0,
        sample_m: float = 20.0,
        candidates: int = 12,
    ) -> None:
        self.network = network
        self.frame = frame
        self.max_distance_m = max_distance_m
        self.k = candidates
        x, y = frame.to_xy(network.node_lat, network.node_lon)
        self.ax, self.ay = x[network.tail], y[network.tail]
        self.bx, self.by = x[network.head], y[network.head]
        seg_len = np.hypot(self.bx - self.ax, self.by - self.ay)
        per_arc = np.maximum(1, np.ceil(seg_len / sample_m).astype(np.int64))
        owner = np.repeat(np.arange(network.arc_count), per_arc)
        starts = np.cumsum(per_arc) - per_arc
        step = (np.arange(owner.shape[0]) - np.repeat(starts, per_arc) + 0.5) / np.repeat(
            per_arc, per_arc
        )
        sx = self.ax[owner] + (self.bx - self.ax)[owner] * step
        sy = self.ay[owner] + (self.by - self.ay)[owner] * step
        self._owner = owner
        self._tree = cKDTree(np.column_stack([sx, sy]))

    def _candidates(
        self, lat: FloatArray, lon: FloatArray
    ) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """For each position, its candidate arcs (``k`` nearest samples' owners, an arc may
        come more than once) with the projection on each: ``(arcs, t, qx, qy, distance)``,
        each of shape ``(n, k)``."""
        px, py = self.frame.to_xy(
            np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
        )
        k = min(self.k, self._owner.shape[0])
        _, idx = self._tree.query(np.column_stack([px, py]), k=k)
        idx = idx.reshape(px.shape[0], k)
        arcs = self._owner[idx]  # (n, k)
        ax, ay, bx, by = self.ax[arcs], self.ay[arcs], self.bx[arcs], self.by[arcs]
        dx, dy = bx - ax, by - ay
        length2 = np.maximum(dx * dx + dy * dy, 1e-12)
        t = np.clip(((px[:, None] - ax) * dx + (py[:, None] - ay) * dy) / length2, 0.0, 1.0)
        qx, qy = ax + t * dx, ay + t * dy
        return arcs, t, qx, qy, np.hypot(px[:, None] - qx, py[:, None] - qy)

    def _snapped(
        self, arc: IntArray, fraction: FloatArray, qx: FloatArray, qy: FloatArray,
        distance: FloatArray,
    ) -> Snapped:  # fmt: skip
        out_lat, out_lon = self.frame.to_latlon(qx, qy)
        return Snapped(
            arc=arc.astype(np.int64),
            offset_m=fraction * self.network.length_m[arc],
            fraction=fraction,
            distance_m=distance,
            lat=out_lat,
            lon=out_lon,
            inside=distance <= self.max_distance_m,
        )

    def snap(self, lat: FloatArray, lon: FloatArray) -> Snapped:
        """Snap a batch; positions beyond the limit are flagged in ``inside``, not raised."""
        arcs, t, qx, qy, dist = self._candidates(lat, lon)
        best = np.argmin(dist, axis=1)
        rows = np.arange(arcs.shape[0])
        return self._snapped(
            arcs[rows, best], t[rows, best], qx[rows, best], qy[rows, best], dist[rows, best]
        )

    def near(
        self, lat: FloatArray, lon: FloatArray, radius_m: float, limit: int = 6
    ) -> tuple[Snapped, IntArray]:
        """Each position snapped onto every arc within ``radius_m`` of it (at most ``limit``
        each, nearest first; the nearest always, whatever its distance), all in one batch, and
        for each of the batch the index of its position: a GPS fix between two roads (the two
        carriageways of a dual road, a one-way street beside a two-way one) could be on any of
        them. Among the candidates of :meth:`snap` only (``candidates`` samples)."""
        found = self._candidates(lat, lon)
        order = np.argsort(found[4], axis=1, kind="stable")
        arcs = np.take_along_axis(found[0], order, axis=1)
        t, qx, qy, dist = (np.take_along_axis(a, order, axis=1) for a in found[1:])
        n, k = arcs.shape
        repeated = np.zeros((n, k), dtype=np.bool_)
        for j in range(1, k):  # an arc met again further down its row (k is about 12)
            repeated[:, j] = (arcs[:, :j] == arcs[:, j : j + 1]).any(axis=1)
        keep = ~repeated & ((dist <= radius_m) | (np.arange(k) == 0))
        keep &= np.cumsum(keep, axis=1) <= limit
        rows = np.nonzero(keep)[0]
        return self._snapped(arcs[keep], t[keep], qx[keep], qy[keep], dist[keep]), rows

    def snap_one(self, lat: float, lon: float) -> SnappedPoint:
        """Snap one position; :class:`~geo.errors.OutsideServiceArea` beyond the limit."""
        s = self.snap(np.array([lat]), np.array([lon]))
        if not s.inside[0]:
            raise OutsideServiceArea(lat, lon, float(s.distance_m[0]), self.max_distance_m)
        return s.point(0)
