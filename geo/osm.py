"""Reading OpenStreetMap extracts: the only module that imports ``osmium`` (pyosmium).

:func:`read_drivable` streams an ``.osm.pbf`` (or ``.osm`` XML) file and returns the directed
arcs of the network a car may drive, between consecutive OSM nodes of each way:

- highway classes motorway … residential, their ``*_link``, ``unclassified``,
  ``living_street``, ``service``;
- ``oneway=yes|1|true`` keeps the way's direction, ``oneway=-1`` reverses it; roundabouts and
  motorways are one-way unless ``oneway=no``;
- ``access`` or ``motor_vehicle`` = ``no`` | ``private`` excludes the way (the most specific
  tag decides: ``access=no`` + ``motor_vehicle=yes`` is drivable);
- the speed is ``maxspeed`` (``50``, ``50 km/h``, ``30 mph``; the first of ``a;b``) or the class
  default of :data:`DEFAULT_SPEED_KMH`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import osmium

from geo.errors import OsmImportError

DEFAULT_SPEED_KMH: dict[str, float] = {
    "motorway": 100.0, "motorway_link": 60.0,
    "trunk": 80.0, "trunk_link": 50.0,
    "primary": 60.0, "primary_link": 45.0,
    "secondary": 50.0, "secondary_link": 40.0,
    "tertiary": 40.0, "tertiary_link": 35.0,
    "unclassified": 35.0, "residential": 30.0,
    "living_street": 10.0, "service": 15.0,
}  # fmt: skip
NO_ACCESS = frozenset({"no", "private"})
_MAXSPEED = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph|knots)?\s*$")


def parse_maxspeed(raw: str | None) -> float | None:
    """A ``maxspeed`` tag in km/h, or ``None`` when it is absent or not a number.

    >>> parse_maxspeed("50"), parse_maxspeed("30 mph"), parse_maxspeed("signals")
    (50.0, 48.28032, None)
    >>> parse_maxspeed("60;80"), parse_maxspeed("0")
    (60.0, None)
    """
    if not raw:
        return None
    match = _MAXSPEED.match(raw.split(";")[0])
    if match is None:
        return None
    value = float(match.group(1))
    unit = match.group(2)
    if unit == "mph":
        value *= 1.609344
    elif unit == "knots":
        value *= 1.852
    return value if value > 0 else None


def car_allowed(tags: dict[str, str]) -> bool:
    """Whether a car may use the way: the most specific access tag present decides
    (``motorcar``, then ``motor_vehicle``, then ``vehicle``, then ``access``).

    >>> car_allowed({"access": "private"}), car_allowed({"access": "no", "motor_vehicle": "yes"})
    (False, True)
    """
    for key in ("motorcar", "motor_vehicle", "vehicle", "access"):
        if key in tags:
            return tags[key] not in NO_ACCESS
    return True


def direction(tags: dict[str, str]) -> int:
    """``1`` one-way forward, ``-1`` one-way backward, ``0`` both ways."""
    oneway = tags.get("oneway", "").lower()
    if oneway in ("yes", "1", "true"):
        return 1
    if oneway == "-1":
        return -1
    if oneway == "no":
        return 0
    if tags.get("junction") in ("roundabout", "circular") or tags.get("highway") == "motorway":
        return 1
    return 0


@dataclass(frozen=True, slots=True)
class RawArcs:
    """Directed arcs between OSM nodes, before the largest-component rule."""

    node_lat: npt.NDArray[np.float64]
    node_lon: npt.NDArray[np.float64]
    tail: npt.NDArray[np.int64]
    head: npt.NDArray[np.int64]
    speed_kmh: npt.NDArray[np.float32]
    ways: int


def read_drivable(path: Path, *, progress: Callable[[str], None] = print) -> RawArcs:
    """The drivable arcs of the extract at ``path``."""
    index: dict[int, int] = {}
    lats: list[float] = []
    lons: list[float] = []
    tail: list[int] = []
    head: list[int] = []
    speeds: list[float] = []
    ways = 0
    try:
        processor = (
            osmium.FileProcessor(str(path))
            .with_locations()
            .with_filter(osmium.filter.KeyFilter("highway"))
        )
        for way in processor:
            if not isinstance(way, osmium.osm.Way):
                continue
            tags = dict(way.tags)
            kind = tags.get("highway", "")
            if kind not in DEFAULT_SPEED_KMH:
                continue
            if not car_allowed(tags):
                continue
            ids: list[int] = []
            for node in way.nodes:
                if not node.location.valid():
                    continue
                at = index.get(node.ref)
                if at is None:
                    at = index[node.ref] = len(lats)
                    lats.append(node.location.lat)
                    lons.append(node.location.lon)
                ids.append(at)
            if len(ids) < 2:
                continue
            ways += 1
            speed = parse_maxspeed(tags.get("maxspeed")) or DEFAULT_SPEED_KMH[kind]
            way_dir = direction(tags)
            for a, b in itertools.pairwise(ids):
                if a == b:
                    continue
                if way_dir >= 0:
                    tail.append(a)
                    head.append(b)
                    speeds.append(speed)
                if way_dir <= 0:
                    tail.append(b)
                    head.append(a)
                    speeds.append(speed)
            if ways % 20_000 == 0:
                progress(f"  read {ways:,} drivable ways, {len(lats):,} nodes")
    except RuntimeError as exc:  # libosmium reports bad input as RuntimeError
        raise OsmImportError(f"cannot read {path}: {exc}") from None
    if not tail:
        raise OsmImportError(f"{path} holds no drivable road")
    return RawArcs(
        node_lat=np.asarray(lats, dtype=np.float64),
        node_lon=np.asarray(lons, dtype=np.float64),
        tail=np.asarray(tail, dtype=np.int64),
        head=np.asarray(head, dtype=np.int64),
        speed_kmh=np.asarray(speeds, dtype=np.float32),
        ways=ways,
    )
