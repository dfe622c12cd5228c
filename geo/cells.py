"""H3 cells: the only module that imports ``h3`` (v4 API).

>>> cell = cell_of(60.1699, 24.9384, 9)
>>> len(cell), cell in k_ring(cell, 1)
(15, True)
>>> cell in children_of(parent_of(cell, 7), 9)
True
"""

from __future__ import annotations

import itertools
import math

import h3

from geo.distance import haversine_m

DEFAULT_RESOLUTION = 9


def cell_of(lat: float, lon: float, resolution: int = DEFAULT_RESOLUTION) -> str:
    """The cell that contains the position."""
    return str(h3.latlng_to_cell(lat, lon, resolution))


def center_of(cell: str) -> tuple[float, float]:
    """``(lat, lon)`` of the cell's centre."""
    lat, lon = h3.cell_to_latlng(cell)
    return float(lat), float(lon)


def k_ring(cell: str, k: int) -> set[str]:
    """The cell and every cell within ``k`` steps of it."""
    return {str(c) for c in h3.grid_disk(cell, k)}


def parent_of(cell: str, resolution: int) -> str:
    """The coarser cell at ``resolution`` that contains ``cell``."""
    return str(h3.cell_to_parent(cell, resolution))


def children_of(cell: str, resolution: int) -> set[str]:
    """The finer cells at ``resolution`` whose parent is ``cell``."""
    return {str(c) for c in h3.cell_to_children(cell, resolution)}


def cells_within_radius(lat: float, lon: float, radius_m: float, resolution: int) -> set[str]:
    """Cells that together cover every point within ``radius_m`` of the position (a superset).

    Any point at distance ≤ ``radius_m`` lies in a cell whose centre is at most
    ``radius_m + edge`` away. One grid step covers at least ``1.5·edge`` in the worst direction
    (between two neighbour directions; ``√3·edge`` along them), and real cells are up to ~20%
    smaller than the average, so ``ceil((radius_m + edge) / (1.2·edge)) + 1`` steps cover it.
    """
    edge = float(h3.average_hexagon_edge_length(resolution, unit="m"))
    k = math.ceil((radius_m + edge) / (1.2 * edge)) + 1
    return k_ring(cell_of(lat, lon, resolution), k)


def cell_corners(cell: str) -> list[tuple[float, float]]:
    """The cell's corners as ``(lat, lon)``."""
    return [(float(lat), float(lon)) for lat, lon in h3.cell_to_boundary(cell)]


def cells_centred_in(ring: list[tuple[float, float]], resolution: int) -> set[str]:
    """Cells whose centre lies inside the polygon ``[(lat, lon), …]``; none for a flat ring
    (h3 refuses those); ``ValueError`` when h3 cannot fill the ring."""
    try:
        return {str(c) for c in h3.h3shape_to_cells(h3.LatLngPoly(ring), resolution)}
    except h3.H3BaseException as exc:
        if _flat(ring):
            return set()
        raise ValueError(f"h3 cannot fill the ring: {exc!r}") from None


def _flat(ring: list[tuple[float, float]]) -> bool:
    """Whether the ring encloses no area (all its points on one line, or fewer than three)."""
    if len(ring) < 3:
        return True
    (lat0, lon0), rest = ring[0], ring[1:]
    return all(
        abs((a_lat - lat0) * (b_lon - lon0) - (b_lat - lat0) * (a_lon - lon0)) < 1e-18
        for (a_lat, a_lon), (b_lat, b_lon) in itertools.pairwise(rest)
    )


def cells_near_edges(ring: list[tuple[float, float]], resolution: int) -> set[str]:
    """Every cell a polygon edge passes through, and their neighbours (a superset).

    Points are sampled along each edge every half cell edge; a cell the edge crosses between
    two samples is a neighbour of a sampled one.
    """
    step_m = float(h3.average_hexagon_edge_length(resolution, unit="m")) / 2
    touched: set[str] = set()
    for (lat1, lon1), (lat2, lon2) in zip(ring, ring[1:] + ring[:1], strict=True):
        samples = max(1, math.ceil(haversine_m(lat1, lon1, lat2, lon2) / step_m))
        for i in range(samples + 1):
            f = i / samples
            touched.add(cell_of(lat1 + (lat2 - lat1) * f, lon1 + (lon2 - lon1) * f, resolution))
    near: set[str] = set()
    for cell in touched:
        near |= k_ring(cell, 1)
    return near
