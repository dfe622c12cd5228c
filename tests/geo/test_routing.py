"""Travel times: exactly Dijkstra's, traffic that re-weights exactly the touched arcs and
restores exactly, routes between snapped points, and geometry on the wire."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.sparse.csgraph import dijkstra

from bench.routing import dijkstra_graph
from geo.errors import NoRoute, OutsideServiceArea, TrafficEventError
from geo.network import import_osm
from geo.polyline import decode, encode, geojson_line
from geo.roads import Roads
from geo.traffic import TrafficEvent, square_around

NODE = {1: (60.000, 24.000), 2: (60.001, 24.000), 3: (60.002, 24.000), 4: (60.001, 24.002)}


@pytest.fixture
def tiny(tiny_osm: Path) -> Roads:
    network, _ = import_osm(tiny_osm, progress=lambda _: None)
    return Roads(network)


def index_of(roads: Roads, osm_id: int) -> int:
    lat, lon = NODE[osm_id]
    net = roads.network
    return int(
        np.flatnonzero((abs(net.node_lat - lat) < 1e-9) & (abs(net.node_lon - lon) < 1e-9))[0]
    )


def time_s(roads: Roads, a: int, b: int) -> float:
    return float(
        roads.engine.matrix_s(np.array([index_of(roads, a)]), np.array([index_of(roads, b)]))[0, 0]
    )


def test_one_ways_force_the_long_way_round(tiny: Roads) -> None:
    # 2 → 3 is direct; 3 → 2 must go 3 → 4 → 2.
    path = tiny.engine.path(index_of(tiny, 3), index_of(tiny, 2))
    assert [index_of(tiny, n) for n in (3, 4, 2)] == path.nodes
    assert time_s(tiny, 2, 3) < time_s(tiny, 3, 2)


def test_a_closure_across_the_only_road_and_its_end(tiny: Roads) -> None:
    before = time_s(tiny, 3, 2)
    around_4 = square_around(tiny.frame, *NODE[4], half_side_m=20)
    tiny.add_event(TrafficEvent(id="works", factor=1.0, closed=True, polygon=around_4), now_s=0)
    assert time_s(tiny, 3, 2) == float("inf"), "3's only way out (3 → 4) is closed"
    with pytest.raises(NoRoute):
        tiny.engine.path(index_of(tiny, 3), index_of(tiny, 2))
    assert time_s(tiny, 2, 3) < float("inf"), "elsewhere traffic flows"
    tiny.end_event("works", now_s=10)
    assert time_s(tiny, 3, 2) == before, "ending the closure restores the exact time"


def test_drawn_paths_follow_the_traffic_in_use(tiny: Roads) -> None:
    three, two = NODE[3], NODE[2]
    around = tiny.path_through([three, two])
    assert tiny.distance_to_path_m(*NODE[4], around) < 1, "3 → 2 goes round by 4"
    assert tiny.path_through([three, two]) == around, "drawn again: the same legs"
    generation = tiny.engine.generation
    tiny.refresh(now_s=5)
    assert tiny.engine.generation == generation, "re-weighting to the same weights is no change"
    around_4 = square_around(tiny.frame, *NODE[4], half_side_m=20)
    tiny.add_event(TrafficEvent(id="works", factor=1.0, closed=True, polygon=around_4), now_s=0)
    assert tiny.path_through([three, two]) == [three, three, two], "no route: a straight line"
    tiny.end_event("works", now_s=10)
    assert tiny.path_through([three, two]) == around


def test_a_slowdown_draws_again_only_the_legs_it_touches(tiny: Roads) -> None:
    three, two, one = NODE[3], NODE[2], NODE[1]
    via_4, to_1 = tiny.path_through([three, two]), tiny.path_through([two, one])
    drawn = {ends: tiny._legs[ends][0] for ends in ((three, two), (two, one))}
    around_4 = square_around(tiny.frame, *NODE[4], half_side_m=20)
    tiny.add_event(TrafficEvent(id="at-4", factor=0.5, polygon=around_4), now_s=0)
    assert tiny.path_through([three, two]) == via_4, "still the only way"
    assert tiny.path_through([two, one]) == to_1
    assert tiny._legs[three, two][0] is not drawn[three, two], "drawn again: it runs by 4"
    assert tiny._legs[two, one][0] is drawn[two, one], "kept: 2 → 1 is nowhere near 4"
    tiny.end_event("at-4", now_s=10)  # the weights from before it: the legs drawn then
    assert tiny.path_through([three, two]) == via_4
    assert tiny._legs[three, two][0] is drawn[three, two]


def test_when_roads_get_faster_every_leg_is_drawn_again(tiny: Roads) -> None:
    around_4 = square_around(tiny.frame, *NODE[4], half_side_m=20)
    tiny.traffic.add(TrafficEvent(id="slow", factor=0.5, polygon=around_4))
    tiny.traffic.add(TrafficEvent(id="slower", factor=0.25, polygon=around_4))
    tiny.refresh(now_s=0)
    to_1 = tiny.path_through([NODE[2], NODE[1]])
    drawn = tiny._legs[NODE[2], NODE[1]][0]
    tiny.end_event("slower", now_s=10)  # faster than before, weights not seen yet: any leg
    assert tiny.path_through([NODE[2], NODE[1]]) == to_1  # might now be faster another way
    assert tiny._legs[NODE[2], NODE[1]][0] is not drawn


def test_slowdowns_combine_slowest_wins_and_respect_their_times(tiny: Roads) -> None:
    free = time_s(tiny, 2, 3)
    mid = (60.0015, 24.000)
    area = square_around(tiny.frame, *mid, half_side_m=15)
    tiny.add_event(TrafficEvent(id="half", factor=0.5, polygon=area), now_s=0)
    assert time_s(tiny, 2, 3) == pytest.approx(2 * free, abs=0.002)
    tiny.add_event(TrafficEvent(id="quarter", factor=0.25, polygon=area, start_s=100), now_s=0)
    assert time_s(tiny, 2, 3) == pytest.approx(2 * free, abs=0.002), "not started yet"
    tiny.refresh(now_s=150)
    assert time_s(tiny, 2, 3) == pytest.approx(4 * free, abs=0.002), "the slowest wins"
    tiny.end_event("quarter", now_s=200)
    tiny.end_event("half", now_s=200)
    assert time_s(tiny, 2, 3) == free


def test_only_the_arcs_the_area_touches_change(tiny: Roads) -> None:
    area = square_around(tiny.frame, 60.0015, 24.000, half_side_m=15)
    event = TrafficEvent(id="e", factor=0.5, polygon=area)
    touched = set(tiny.traffic.arcs_of(event).tolist())
    before = tiny.engine.weights_ms.copy()
    tiny.add_event(event, now_s=0)
    changed = set(np.flatnonzero(tiny.engine.weights_ms != before).tolist())
    assert (
        changed
        == touched
        == {
            i
            for i, (t, h) in enumerate(zip(tiny.network.tail, tiny.network.head, strict=True))
            if {int(t), int(h)} == {index_of(tiny, 2), index_of(tiny, 3)}
        }
    )


def test_a_buffered_line_event(tiny: Roads) -> None:
    line = [(24.000, 60.0005), (24.000, 60.0008)]  # along the 1-2 road, [(lon, lat)]
    touched = tiny.add_event(TrafficEvent(id="l", factor=0.5, line=line, buffer_m=5), now_s=0)
    assert touched == 2, "both directions of the 1-2 road"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"factor": 0.0},
        {"factor": 1.5},
        {"factor": 0.5, "line": [(24.0, 60.0), (24.0, 60.001)]},
        {"factor": 0.5, "start_s": 10, "end_s": 5},
    ],
)
def test_malformed_events_are_refused(kwargs: dict) -> None:
    if "line" not in kwargs:
        kwargs = {"polygon": [(24.0, 60.0), (24.001, 60.0), (24.001, 60.001)], **kwargs}
    with pytest.raises(TrafficEventError):
        TrafficEvent(id="x", **kwargs)


def test_routes_between_snapped_positions(tiny: Roads) -> None:
    # Halfway along 1-2 to halfway along 2-3: half of each arc.
    route = tiny.route((60.0005, 24.00001), (60.0015, 24.00001))
    assert route.distance_m == pytest.approx(111.2, abs=1)
    assert route.points[0] == pytest.approx((60.0005, 24.0), abs=1e-6)
    assert decode(route.polyline) == [(round(a, 6), round(b, 6)) for a, b in route.points]
    assert route.time_s == pytest.approx(55.6 / (30 / 3.6) + 55.6 / (50 / 3.6), abs=0.05)
    start = tiny.snap(60.0005, 24.00001)
    matrix = tiny.matrix_s([start], [tiny.snap(60.0015, 24.00001)])
    # The matrix anchors each point at one junction: never faster than the exact route, and
    # slower by at most the time to drive the start's arc.
    one_arc = tiny.engine.weights_ms[start.arc] / 1000
    assert route.time_s - 0.002 <= matrix[0, 0] <= route.time_s + one_arc + 0.002


def test_positions_far_from_roads_are_outside_the_service_area(tiny: Roads) -> None:
    with pytest.raises(OutsideServiceArea, match="outside the service area"):
        tiny.snap(60.05, 24.0)  # 5 km north
    batch = tiny.snapper.snap(np.array([60.0005, 60.05]), np.array([24.0, 24.0]))
    assert batch.inside.tolist() == [True, False]
    assert batch.distance_m[0] == pytest.approx(0, abs=0.5)


def test_engine_equals_dijkstra_on_andorra(andorra: Roads) -> None:
    rng = np.random.default_rng(7)
    sources = rng.integers(0, andorra.network.node_count, 100)
    targets = rng.integers(0, andorra.network.node_count, 100)
    engine = andorra.engine.matrix_ms(sources, targets)
    reference = dijkstra(
        dijkstra_graph(andorra.network, andorra.engine.weights_ms), indices=sources
    )
    sample = reference[:, targets]
    finite = np.isfinite(sample)
    assert finite.all(), "the network is strongly connected"
    assert np.array_equal(sample.astype(np.int64), engine)


def test_snapping_andorra_is_close_and_exact(andorra: Roads) -> None:
    net = andorra.network
    rng = np.random.default_rng(3)
    arcs = rng.integers(0, net.arc_count, 500)
    t = rng.uniform(0.1, 0.9, 500)
    lat = net.node_lat[net.tail[arcs]] * (1 - t) + net.node_lat[net.head[arcs]] * t
    lon = net.node_lon[net.tail[arcs]] * (1 - t) + net.node_lon[net.head[arcs]] * t
    snapped = andorra.snapper.snap(lat, lon)
    assert snapped.inside.all()
    assert np.percentile(snapped.distance_m, 99) < 0.5, "points on a road snap onto it"


def test_geojson_is_lon_lat() -> None:
    assert geojson_line([(60.1, 24.9), (60.2, 25.0)]) == {
        "type": "LineString",
        "coordinates": [[24.9, 60.1], [25.0, 60.2]],
    }


@given(st.lists(st.tuples(st.floats(-90, 90), st.floats(-180, 180)), max_size=50))
def test_polyline_round_trip(points: list[tuple[float, float]]) -> None:
    decoded = decode(encode(points))
    assert len(decoded) == len(points)
    for (lat, lon), (dlat, dlon) in zip(points, decoded, strict=True):
        assert abs(lat - dlat) <= 5.1e-7
        assert abs(lon - dlon) <= 5.1e-7
