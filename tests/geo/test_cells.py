"""H3 helpers: round trips and coverage, as properties."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from geo.cells import (
    cell_of,
    cells_centred_in,
    cells_near_edges,
    cells_within_radius,
    center_of,
    children_of,
    k_ring,
    parent_of,
)
from geo.distance import haversine_m

lats = st.floats(-80, 80)
lons = st.floats(-179.9, 179.9)
resolutions = st.integers(0, 15)


@given(lats, lons, resolutions)
def test_a_cell_contains_its_own_centre(lat: float, lon: float, res: int) -> None:
    cell = cell_of(lat, lon, res)
    assert cell_of(*center_of(cell), res) == cell


@given(lats, lons, st.integers(1, 15), st.data())
def test_the_parent_contains_the_child(
    lat: float, lon: float, res: int, data: st.DataObject
) -> None:
    coarser = data.draw(st.integers(max(0, res - 3), res - 1))
    child = cell_of(lat, lon, res)
    assert child in children_of(parent_of(child, coarser), res)


@given(lats, lons, st.integers(0, 3))
def test_k_ring_size(lat: float, lon: float, k: int) -> None:
    ring = k_ring(cell_of(lat, lon, 9), k)
    assert len(ring) <= 1 + 3 * k * (k + 1)
    assert cell_of(lat, lon, 9) in ring


@given(
    st.floats(-70, 70),
    lons,
    st.floats(0, 2 * math.pi),
    st.floats(0, 1),
    st.sampled_from([100.0, 500.0, 2000.0]),
    st.sampled_from([7, 8, 9, 10]),
)
def test_radius_candidates_cover_every_point_within_the_radius(
    lat: float, lon: float, bearing: float, share: float, radius: float, res: int
) -> None:
    distance = share * radius * 0.999
    dlat = distance * math.cos(bearing) / 111_195.0
    dlon = distance * math.sin(bearing) / (111_195.0 * math.cos(math.radians(lat)))
    other = (lat + dlat, lon + dlon)
    if haversine_m(lat, lon, *other) <= radius:
        assert cell_of(*other, res) in cells_within_radius(lat, lon, radius, res)


@given(
    st.floats(-60, 60),
    st.floats(-170, 170),
    st.lists(st.tuples(st.floats(-0.02, 0.02), st.floats(-0.02, 0.02)), min_size=3, max_size=3),
    st.floats(0, 1),
    st.floats(0, 1),
    st.sampled_from([8, 9]),
)
def test_centred_and_edge_cells_cover_every_point_of_a_polygon(
    lat: float,
    lon: float,
    offsets: list[tuple[float, float]],
    u: float,
    v: float,
    res: int,
) -> None:
    ring = [(lat + dlat, lon + dlon) for dlat, dlon in offsets]
    if u + v > 1:  # fold into the triangle
        u, v = 1 - u, 1 - v
    (a_lat, a_lon), (b_lat, b_lon), (c_lat, c_lon) = ring
    inside = (
        a_lat + u * (b_lat - a_lat) + v * (c_lat - a_lat),
        a_lon + u * (b_lon - a_lon) + v * (c_lon - a_lon),
    )
    cover = cells_centred_in(ring, res) | cells_near_edges(ring, res)
    assert cell_of(*inside, res) in cover
