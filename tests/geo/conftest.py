"""Road fixtures: a tiny hand-made map, and Andorra (once per session, when it is there)."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_OSM = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6" generator="fleet tests">
  <node id="1" lat="60.000" lon="24.000" version="1"/>
  <node id="2" lat="60.001" lon="24.000" version="1"/>
  <node id="3" lat="60.002" lon="24.000" version="1"/>
  <node id="4" lat="60.001" lon="24.002" version="1"/>
  <node id="5" lat="60.010" lon="24.010" version="1"/>
  <node id="6" lat="60.011" lon="24.010" version="1"/>
  <way id="10" version="1"><nd ref="1"/><nd ref="2"/>
    <tag k="highway" v="residential"/></way>
  <way id="11" version="1"><nd ref="2"/><nd ref="3"/>
    <tag k="highway" v="primary"/><tag k="oneway" v="yes"/><tag k="maxspeed" v="50"/></way>
  <way id="12" version="1"><nd ref="4"/><nd ref="3"/>
    <tag k="highway" v="secondary"/><tag k="oneway" v="-1"/><tag k="maxspeed" v="20 mph"/></way>
  <way id="13" version="1"><nd ref="4"/><nd ref="2"/>
    <tag k="highway" v="tertiary"/></way>
  <way id="14" version="1"><nd ref="5"/><nd ref="6"/>
    <tag k="highway" v="residential"/></way>
  <way id="15" version="1"><nd ref="1"/><nd ref="4"/>
    <tag k="highway" v="service"/><tag k="access" v="private"/></way>
  <way id="16" version="1"><nd ref="2"/><nd ref="4"/>
    <tag k="highway" v="footway"/></way>
</osm>
"""


@pytest.fixture
def tiny_osm(tmp_path: Path) -> Path:
    """Four junctions in a loop (1-2 two-way, 2→3 one-way 50 km/h, 3→4 one-way via oneway=-1
    at 20 mph, 4-2 two-way) plus an island road (5-6), a private service road (1-4) and a
    footway (2-4) that must not be imported."""
    path = tmp_path / "tiny.osm"
    path.write_text(TINY_OSM)
    return path
