"""Travel between snapped positions: partial arcs, batches, closures under a point, and the
vectorised helpers behind them."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.sparse.csgraph import dijkstra

from bench.routing import dijkstra_graph
from geo.errors import NoRoute
from geo.network import import_osm
from geo.roads import Roads, reverse_arcs, same_arc_pairs
from geo.snap import SnappedPoint
from geo.traffic import TrafficEvent, square_around

GEO_MODULES = ["cells", "distance", "network", "osm", "polyline", "roads"]


@pytest.fixture
def tiny(tiny_osm: Path) -> Roads:
    network, _ = import_osm(tiny_osm, progress=lambda _: None)
    return Roads(network)


@pytest.mark.parametrize("name", GEO_MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(f"geo.{name}"))
    assert result.failed == 0


def exact_s(roads: Roads, a: SnappedPoint, b: SnappedPoint, by_node: np.ndarray) -> float:
    """The snapped-to-snapped time by brute force: every way out of ``a`` times every way into
    ``b``, joined by scipy's Dijkstra (``by_node`` rows are Dijkstra from each way out)."""
    best = np.inf
    w = roads.engine.weights_ms
    if a.arc == b.arc and b.fraction >= a.fraction:
        best = (b.fraction - a.fraction) * w[a.arc]
    for k, (_, out_ms, _) in enumerate(roads.departures(a)):
        for node, in_ms, _ in roads.arrivals(b):
            best = min(best, out_ms + by_node[k, node] + in_ms)
    return float(best) / 1000


def test_routes_between_snapped_points_are_exact_on_andorra(andorra: Roads) -> None:
    rng = np.random.default_rng(11)
    net = andorra.network
    pick = rng.integers(0, net.node_count, 40)
    lat = net.node_lat[pick] + rng.normal(0, 0.0003, 40)
    lon = net.node_lon[pick] + rng.normal(0, 0.0004, 40)
    batch = andorra.snap_many(lat, lon)
    assert batch.inside.all()
    points = [andorra.snap(float(a), float(b)) for a, b in zip(lat, lon, strict=True)]
    matrix = andorra.matrix_s(batch, batch)
    assert np.array_equal(matrix, andorra.matrix_s(points, points)), "batch = list of points"
    graph = dijkstra_graph(net, andorra.engine.weights_ms)
    for a, b in zip(points[:20], points[20:], strict=True):
        by_node = dijkstra(graph, indices=[node for node, _, _ in andorra.departures(a)])
        route = andorra.route_between(a, b)
        assert route.time_s == pytest.approx(exact_s(andorra, a, b, by_node), abs=1e-6)
        i, j = points.index(a), points.index(b)
        w = andorra.engine.weights_ms
        ends = (
            w[a.arc] + w[max(andorra.twin[a.arc], 0)] + w[b.arc] + w[max(andorra.twin[b.arc], 0)]
        ) / 1000
        assert route.time_s - 1e-6 <= matrix[i, j] <= route.time_s + ends + 1e-6
        assert route.points[0] == (a.lat, a.lon)
        assert route.points[-1] == (b.lat, b.lon)


def test_a_point_on_a_closed_road_is_cut_off_without_nan(tiny: Roads) -> None:
    on_1_2 = tiny.snap(60.0005, 24.00001)
    on_2_3 = tiny.snap(60.0015, 24.00001)
    around = square_around(tiny.frame, 60.0005, 24.0, half_side_m=10)
    tiny.add_event(TrafficEvent(id="c", factor=1.0, closed=True, polygon=around), now_s=0)
    matrix = tiny.matrix_s([on_1_2, on_2_3], [on_1_2, on_2_3])
    assert not np.isnan(matrix).any()
    assert np.isinf(matrix[0, 1]), "nobody drives out along a closed road"
    assert np.isinf(matrix[1, 0]), "nor in"
    assert matrix[1, 1] == 0.0
    with pytest.raises(NoRoute):
        tiny.route_between(on_1_2, on_2_3)
    tiny.end_event("c", now_s=1)
    assert np.isfinite(tiny.matrix_s([on_1_2], [on_2_3])).all()


def test_empty_batches(tiny: Roads) -> None:
    one = [tiny.snap(60.0005, 24.0)]
    assert tiny.matrix_s([], one).shape == (0, 1)
    assert tiny.matrix_s(one, []).shape == (1, 0)


def test_twins_pair_the_two_directions_of_a_road(tiny: Roads) -> None:
    net = tiny.network
    twin = reverse_arcs(net)
    for arc, other in enumerate(twin.tolist()):
        if other >= 0:
            assert (net.tail[other], net.head[other]) == (net.head[arc], net.tail[arc])
            assert twin[other] == arc
    assert (twin == -1).sum() == 2, "the two one-way arcs 2→3 and 3→4"


def test_a_path_knows_its_arcs(andorra: Roads) -> None:
    path = andorra.engine.path(0, andorra.network.node_count - 1)
    arcs = np.array(path.arcs)
    assert andorra.network.tail[arcs].tolist() == path.nodes[:-1]
    assert andorra.network.head[arcs].tolist() == path.nodes[1:]
    assert andorra.engine.weights_ms[arcs].sum() == round(path.time_s * 1000)
    assert path.distance_m == pytest.approx(andorra.network.length_m[arcs].sum())


@given(
    st.lists(st.integers(0, 6), max_size=30),
    st.lists(st.integers(0, 6), max_size=30),
)
def test_same_arc_pairs_finds_every_pair(a: list[int], b: list[int]) -> None:
    i, j = same_arc_pairs(np.array(a, dtype=np.int64), np.array(b, dtype=np.int64))
    found = sorted(zip(i.tolist(), j.tolist(), strict=True))
    assert found == [(x, y) for x in range(len(a)) for y in range(len(b)) if a[x] == b[y]]


def test_a_path_through_points_and_the_distance_to_it(tiny: Roads) -> None:
    # Along the road north from 60.0000 to 60.0015 (about 167 m), at longitude 24.0.
    a, b = (60.0001, 24.0), (60.0014, 24.0)
    path = tiny.path_through([a, b])
    assert path[0] == a
    assert tiny.distance_to_path_m(60.0008, 24.0, path) < 1
    east = tiny.distance_to_path_m(60.0008, 24.001, path)  # 0.001° of longitude at 60° N
    assert east == pytest.approx(55.8, abs=1.0)
    assert tiny.distance_to_path_m(60.0030, 24.0, path) == pytest.approx(178, abs=5), "past the end"
    assert tiny.distance_to_path_m(60.0, 24.0, []) == float("inf")


def test_a_fix_between_two_roads_leaves_by_the_faster_one(tiny: Roads) -> None:
    # 11 m east of the one-way 2→3 (north) and 17 m north of the two-way 4-2: snapped to the
    # nearest road only, the van would have to go 3→4→2 to get back south to 1-2.
    fix = (60.00115, 24.0002)
    south = [tiny.snap(60.0005, 24.0)]
    nearest = tiny.snap(*fix)
    assert tiny.twin[nearest.arc] == -1, "the nearest road is the one-way one"
    round_the_block = float(tiny.matrix_s([nearest], south)[0, 0])
    near, rows = tiny.snapper.near(np.array([fix[0]]), np.array([fix[1]]), radius_m=25.0)
    assert list(rows) == [0] * len(near.arc)
    first, _ = tiny.snapper.near(np.array([fix[0]]), np.array([fix[1]]), 25.0, limit=1)
    assert list(first.arc) == [nearest.arc]
    assert len(near.arc) >= 2, "the one-way road and the two-way one (both ways)"
    assert near.distance_m[0] == pytest.approx(nearest.distance_m)
    assert list(near.distance_m) == sorted(near.distance_m)
    assert near.distance_m.max() <= 25.0
    on_1_2 = (60.0004, 24.00001)  # on 1-2 already, far from the other roads
    both = tiny.from_fixes_s([fix, on_1_2], [*south, nearest])
    assert both.shape == (2, 2)
    assert both[0, 0] == float(tiny.matrix_s(near, south).min())
    assert both[0, 0] < round_the_block / 2
    near_1_2, _ = tiny.snapper.near(np.array([on_1_2[0]]), np.array([on_1_2[1]]), radius_m=25.0)
    alone = tiny.matrix_s(near_1_2, [*south, nearest])
    assert list(both[1]) == list(alone.min(axis=0)), "each fix its own candidates"
    alone = tiny.from_fixes_s([fix], south, radius_m=0.0)
    assert float(alone[0, 0]) == round_the_block
    assert tiny.from_fixes_s([], south).shape == (0, 1)


def test_a_point_at_a_junction_of_one_way_roads_is_not_sent_round_the_block(tiny: Roads) -> None:
    # Junction 3 ends the one-way 2→3 and starts the one-way 3→4. A van standing on it can be
    # snapped to either; from "the start of 3→4" to "the end of 2→3" is no distance at all,
    # not 3→4→2→3 round the block.
    net = tiny.network
    j3 = int(np.argmin(np.abs(net.node_lat - 60.002)))
    into = int(np.flatnonzero(net.head == j3)[0])  # 2→3
    out = int(np.flatnonzero(net.tail == j3)[0])  # 3→4
    assert tiny.twin[into] == tiny.twin[out] == -1, "both one-way"
    lat, lon = float(net.node_lat[j3]), float(net.node_lon[j3])
    end_of_into = SnappedPoint(into, float(net.length_m[into]), 1.0, 0.0, lat, lon)
    start_of_out = SnappedPoint(out, 0.0, 0.0, 0.0, lat, lon)
    route = tiny.route_between(start_of_out, end_of_into)
    assert route.distance_m == 0.0
    assert route.time_s == 0.0
    assert tiny.matrix_s([start_of_out], [end_of_into])[0, 0] == 0.0
    # A metre and more from the junction, a one-way road still runs one way only.
    off = SnappedPoint(out, 2.0, 2.0 / float(net.length_m[out]), 0.0, lat, lon)
    assert tiny.route_between(off, end_of_into).distance_m > float(net.length_m[out])
