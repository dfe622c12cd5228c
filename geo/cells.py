"""H3 cells: the only module that imports ``h3`` (v4 API).

>>> cell = cell_of(60.1699, 24.9384, 9)
>>> len(cell), cell in k_ring(cell, 1)
(15, True)
>>> parent_of(cell, 7) == cell_of(60.1699, 24.9384, 7)
True
"""

from __future__ import annotations

import math

import h3

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


def cells_within_radius(lat: float, lon: float, radius_m: float, resolution: int) -> set[str]:
    """Cells that together cover every point within ``radius_m`` of the position (a superset).

    Any point at distance ≤ ``radius_m`` lies in a cell whose centre is at most
    ``radius_m + edge`` away, and neighbouring centres are about ``√3·edge`` apart, so a disk of
    ``ceil((radius_m + edge) / (√3·edge)) + 1`` steps covers it, pentagon distortion included.
    """
    edge = float(h3.average_hexagon_edge_length(resolution, unit="m"))
    k = math.ceil((radius_m + edge) / (math.sqrt(3) * edge)) + 1
    return k_ring(cell_of(lat, lon, resolution), k)
