"""Importing OSM data: what is drivable, which way, how fast, and the largest component."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geo.engine import topology_matches
from geo.errors import OsmImportError
from geo.network import RoadNetwork, import_osm, load_or_import
from geo.osm import car_allowed, direction, parse_maxspeed
from geo.roads import Roads

TINY_NODES = {1: (60.000, 24.000), 2: (60.001, 24.000), 3: (60.002, 24.000), 4: (60.001, 24.002)}


def _pairs(network: RoadNetwork) -> list[tuple[int, int]]:
    """The network's arcs as pairs of tiny-map OSM node ids, in arc order."""
    by_place = {(round(a, 6), round(b, 6)): osm_id for osm_id, (a, b) in TINY_NODES.items()}
    places = zip(network.node_lat.tolist(), network.node_lon.tolist(), strict=True)
    ids = [by_place[(round(a, 6), round(b, 6))] for a, b in places]
    return [(ids[t], ids[h]) for t, h in zip(network.tail, network.head, strict=True)]


def test_tiny_map_one_ways_access_and_the_largest_component(tiny_osm: Path) -> None:
    lines: list[str] = []
    network, report = import_osm(tiny_osm, progress=lines.append)
    assert set(_pairs(network)) == {
        (1, 2), (2, 1),  # residential, both ways
        (2, 3),  # oneway=yes
        (3, 4),  # oneway=-1 on a way drawn 4 → 3
        (4, 2), (2, 4),  # tertiary, both ways; the footway 2-4 added nothing
    }  # fmt: skip
    assert (report.nodes_read, report.nodes_kept) == (6, 4), "the island 5-6 is dropped"
    assert (report.arcs_read, report.arcs_kept) == (8, 6)
    assert any("dropped 2 nodes" in line for line in lines)


def test_tiny_map_speeds(tiny_osm: Path) -> None:
    network, _ = import_osm(tiny_osm, progress=lambda _: None)
    speed = dict(zip(_pairs(network), network.speed_kmh.tolist(), strict=True))
    assert speed[(2, 3)] == 50.0
    assert speed[(3, 4)] == pytest.approx(20 * 1.609344, abs=1e-4)
    assert speed[(1, 2)] == 30.0  # residential default
    assert speed[(4, 2)] == 40.0  # tertiary default
    # 111 m at 50 km/h is 8.0 s
    arc = _pairs(network).index((2, 3))
    assert network.length_m[arc] == pytest.approx(111.2, abs=0.5)
    assert network.free_flow_ms[arc] == pytest.approx(8006, abs=40)


@pytest.mark.parametrize(
    ("raw", "kmh"),
    [("50", 50.0), ("50 km/h", 50.0), ("30 mph", 48.28032), ("30mph", 48.28032),
     ("60;80", 60.0), ("none", None), ("signals", None), ("", None), (None, None), ("0", None)],
)  # fmt: skip
def test_maxspeed_forms(raw: str | None, kmh: float | None) -> None:
    assert parse_maxspeed(raw) == (pytest.approx(kmh) if kmh else None)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"oneway": "yes"}, 1), ({"oneway": "1"}, 1), ({"oneway": "true"}, 1),
        ({"oneway": "-1"}, -1), ({}, 0), ({"junction": "roundabout"}, 1),
        ({"highway": "motorway"}, 1), ({"highway": "motorway", "oneway": "no"}, 0),
    ],
)  # fmt: skip
def test_direction(tags: dict[str, str], expected: int) -> None:
    assert direction(tags) == expected


def test_the_cache_is_reused_and_keyed_by_content(tiny_osm: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = load_or_import(tiny_osm, cache, progress=lambda _: None)
    messages: list[str] = []
    again = load_or_import(tiny_osm, cache, progress=messages.append)
    assert messages == [], "a cache hit imports nothing"
    assert np.array_equal(first.free_flow_ms, again.free_flow_ms)
    tiny_osm.write_text(tiny_osm.read_text().replace('v="50"', 'v="70"'))
    changed = load_or_import(tiny_osm, cache, progress=messages.append)
    assert any("reading" in m for m in messages), "a changed file is imported again"
    assert 70.0 in changed.speed_kmh.tolist()
    assert len(list(cache.glob("*.npz"))) == 2


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.osm"
    empty.write_text("<?xml version='1.0'?><osm version='0.6'></osm>")
    with pytest.raises(OsmImportError, match="no drivable road"):
        import_osm(empty, progress=lambda _: None)
    garbage = tmp_path / "garbage.osm.pbf"
    garbage.write_bytes(b"this is not a pbf file")
    with pytest.raises(OsmImportError, match="cannot read"):
        import_osm(garbage, progress=lambda _: None)


def test_a_damaged_cache_is_rebuilt_not_trusted(tiny_osm: Path, tmp_path: Path) -> None:
    """RoutingKit crashes the process on a truncated topology file: it must never see one."""
    first = Roads.open(tiny_osm, tmp_path, progress=lambda _: None)
    (topology,) = tmp_path.glob("*.cch")
    (network_file,) = tmp_path.glob("*.npz")
    head = topology / "head"
    head.write_bytes(head.read_bytes()[:-4])
    network_file.write_bytes(network_file.read_bytes()[:100])
    messages: list[str] = []
    again = Roads.open(tiny_osm, tmp_path, progress=messages.append)
    assert any("unreadable" in m for m in messages)
    assert np.array_equal(again.engine.matrix_ms(np.arange(4), np.arange(4)),
                          first.engine.matrix_ms(np.arange(4), np.arange(4)))  # fmt: skip
    assert topology_matches(topology, again.network), "the topology was written again"


@pytest.mark.parametrize(
    ("tags", "allowed"),
    [
        ({}, True), ({"access": "no"}, False), ({"access": "private"}, False),
        ({"motor_vehicle": "no"}, False), ({"motor_vehicle": "private"}, False),
        ({"access": "destination"}, True), ({"access": "no", "motor_vehicle": "yes"}, True),
        ({"access": "yes", "motor_vehicle": "no"}, False), ({"vehicle": "no"}, False),
    ],
)  # fmt: skip
def test_access(tags: dict[str, str], allowed: bool) -> None:
    assert car_allowed(tags) is allowed
