"""Driving a leg of a route on the road graph at the ground truth's speeds."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from geo.distance import bearing_deg, haversine_m
from geo.roads import Roads
from simulator.truth import GroundTruth


@dataclass(frozen=True, slots=True)
class Segment:
    arc: int
    lat0: float
    lon0: float
    lat1: float
    lon1: float
    length_m: float


class ArcLookup:
    """The arc id from one node to the next (the network's arcs sorted by (tail, head))."""

    def __init__(self, roads: Roads) -> None:
        net = roads.network
        self.n = np.int64(net.node_count)
        keys = net.tail.astype(np.int64) * self.n + net.head.astype(np.int64)
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]

    def arc(self, tail: int, head: int) -> int:
        key = np.int64(tail) * self.n + np.int64(head)
        i = int(np.searchsorted(self.keys, key))
        if i >= len(self.keys) or self.keys[i] != key:
            raise KeyError((tail, head))
        return int(self.order[i])


class Drive:
    """One leg, from where the vehicle is to its next stop, and how far along it the vehicle is."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments
        self.index = 0
        self.along_m = 0.0  # into the current segment
        self.driven_m = 0.0

    @classmethod
    def plan(
        cls, roads: Roads, lookup: ArcLookup, start: tuple[float, float], to: tuple[float, float]
    ) -> Drive:
        """The fastest leg on ``roads``' weights (free flow and the incidents reported, as a
        navigation app, and the route the server draws, know them); a
        :class:`~geo.errors.GeoError` when either end is off the network or no route exists."""
        a, b = roads.snap(*start), roads.snap(*to)
        route = roads.route_between(a, b)
        pts = route.points
        arcs = []
        nodes = route.nodes
        if not nodes:
            arcs = [a.arc]
        else:
            arcs.append(a.arc)
            arcs += [lookup.arc(u, v) for u, v in itertools.pairwise(nodes)]
            arcs.append(b.arc)
        segments = [
            Segment(arc, p[0], p[1], q[0], q[1], haversine_m(p[0], p[1], q[0], q[1]))
            for arc, (p, q) in zip(arcs, itertools.pairwise(pts), strict=True)
        ]
        return cls(segments)

    @property
    def done(self) -> bool:
        return self.index >= len(self.segments)

    @property
    def remaining_m(self) -> float:
        if self.done:
            return 0.0
        rest = sum(s.length_m for s in self.segments[self.index :])
        return rest - self.along_m

    def advance(self, dt_s: float, t_s: float, truth: GroundTruth) -> None:
        """Drive for ``dt_s`` seconds starting at scenario time ``t_s``."""
        left = dt_s
        while left > 0 and not self.done:
            seg = self.segments[self.index]
            speed = truth.speed_mps(seg.arc, t_s + (dt_s - left))
            need = (seg.length_m - self.along_m) / speed
            if need <= left:
                left -= need
                self.driven_m += seg.length_m - self.along_m
                self.index += 1
                self.along_m = 0.0
            else:
                self.along_m += speed * left
                self.driven_m += speed * left
                left = 0.0

    def position(self) -> tuple[float, float, float]:
        """(lat, lon, heading in degrees) right now."""
        if not self.segments:
            raise ValueError("an empty leg has no position")
        seg = self.segments[min(self.index, len(self.segments) - 1)]
        if self.done:
            return seg.lat1, seg.lon1, bearing_deg(seg.lat0, seg.lon0, seg.lat1, seg.lon1)
        f = self.along_m / seg.length_m if seg.length_m > 0 else 1.0
        lat = seg.lat0 + (seg.lat1 - seg.lat0) * f
        lon = seg.lon0 + (seg.lon1 - seg.lon0) * f
        return lat, lon, bearing_deg(seg.lat0, seg.lon0, seg.lat1, seg.lon1)
