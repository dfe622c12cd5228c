"""Geofences: polygon zones, indexed by H3 cell, and the pure enter / exit / dwell rule.

A :class:`FenceIndex` maps each cell to the fences that cover it, marking whether the cell lies
wholly inside (no test needed) or on the boundary (an exact point-in-polygon test), so checking a
position costs one dictionary look-up however many fences there are, plus an exact test only near
an edge.

:func:`step` is the per-vehicle state change: ``(inside, fix, fences) -> (inside, events)``, where
``inside`` maps fence id → ``[entered_at_ms, dwell_reported]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from geo.cells import cell_corners, cell_of, cells_centred_in, cells_near_edges

Inside = dict[str, list[int]]  # fence id → [entered_at ms, 1 if dwell was reported else 0]


@dataclass(frozen=True, slots=True)
class Fence:
    """A named geofence: a polygon ring and the time inside that counts as dwelling."""

    id: str
    name: str
    ring: tuple[tuple[float, float], ...]  # (lat, lon) corners
    dwell_s: float = 300.0


def point_in_ring(lat: float, lon: float, ring: tuple[tuple[float, float], ...]) -> bool:
    """Exact even-odd test of a point against a polygon ring in degrees (small areas).

    >>> square = ((0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0))
    >>> point_in_ring(0.5, 0.5, square), point_in_ring(1.5, 0.5, square)
    (True, False)
    """
    inside = False
    n = len(ring)
    for i in range(n):
        lat1, lon1 = ring[i]
        lat2, lon2 = ring[(i + 1) % n]
        if (lat1 > lat) != (lat2 > lat):
            crossing = lon1 + (lat - lat1) * (lon2 - lon1) / (lat2 - lat1)
            if lon < crossing:
                inside = not inside
    return inside


def polygon_cells(
    ring: tuple[tuple[float, float], ...], resolution: int
) -> tuple[set[str], set[str]]:
    """Cover a polygon with cells: ``(interior, boundary)``.

    Every point of an *interior* cell is inside; a point in a *boundary* cell needs the exact
    test; a point in any other cell is outside. Near the edges a cell is interior when all its
    corners are inside and no corner of the polygon is inside it (a straight edge that crossed
    the cell would leave corners on both sides), outside when no corner is in and none of the
    polygon's is in it, and boundary otherwise. Away from the edges, a cell is interior when its
    centre is.
    """
    if len(set(ring)) < 3:
        raise ValueError("a polygon needs at least three distinct corners")
    near = cells_near_edges(list(ring), resolution)
    interior: set[str] = set()
    boundary: set[str] = set()
    for cell in near:
        corners = cell_corners(cell)
        corners_in = sum(point_in_ring(lat, lon, ring) for lat, lon in corners)
        holds_a_vertex = any(point_in_ring(lat, lon, tuple(corners)) for lat, lon in ring)
        if holds_a_vertex or 0 < corners_in < len(corners):
            boundary.add(cell)
        elif corners_in == len(corners):
            interior.add(cell)
    interior |= cells_centred_in(list(ring), resolution) - near
    return interior, boundary


@dataclass(slots=True)
class FenceIndex:
    """Fences by H3 cell: interior cells need no exact test, boundary cells one."""

    resolution: int
    fences: dict[str, Fence] = field(default_factory=dict)
    cells: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)  # cell → (id, exact?)

    @classmethod
    def build(cls, fences: Iterable[Fence], resolution: int) -> FenceIndex:
        """Index ``fences`` at ``resolution``."""
        index = cls(resolution)
        for fence in fences:
            index.fences[fence.id] = fence
            interior, boundary = polygon_cells(fence.ring, resolution)
            for cell in interior:
                index.cells.setdefault(cell, []).append((fence.id, False))
            for cell in boundary:
                index.cells.setdefault(cell, []).append((fence.id, True))
        return index

    def containing(self, lat: float, lon: float) -> set[str]:
        """Ids of the fences that contain the position."""
        found = set()
        for fence_id, exact in self.cells.get(cell_of(lat, lon, self.resolution), ()):
            if not exact or point_in_ring(lat, lon, self.fences[fence_id].ring):
                found.add(fence_id)
        return found


def step(
    inside: Inside, lat: float, lon: float, ts: int, index: FenceIndex
) -> tuple[Inside, list[dict[str, object]]]:
    """The vehicle's fence membership after a fix at ``ts``, and the events it causes."""
    now_in = index.containing(lat, lon)
    after: Inside = {}
    events: list[dict[str, object]] = []
    for fence_id in sorted(now_in):
        entered, reported = inside.get(fence_id, [ts, 0])
        if fence_id not in inside:
            events.append({"type": "geofence", "kind": "enter", "fence_id": fence_id, "at": ts})
        dwell_ms = index.fences[fence_id].dwell_s * 1000
        if not reported and ts - entered >= dwell_ms:
            events.append({"type": "geofence", "kind": "dwell", "fence_id": fence_id, "at": ts})
            reported = 1
        after[fence_id] = [entered, reported]
    for fence_id in sorted(set(inside) - now_in):
        events.append({"type": "geofence", "kind": "exit", "fence_id": fence_id, "at": ts})
    return after, events
