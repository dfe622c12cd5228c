"""Metric geometry: the only module that imports ``pyproj`` and ``shapely``.

Positions come in as WGS84 degrees; every length, buffer and distance is computed in metres —
on the ellipsoid (``pyproj.Geod``) or in a local azimuthal-equidistant projection centred on the
network (:class:`LocalFrame`), never in degrees.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod, Transformer
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

_GEOD = Geod(ellps="WGS84")
FloatArray = npt.NDArray[np.float64]


def geodesic_lengths_m(
    lat1: FloatArray, lon1: FloatArray, lat2: FloatArray, lon2: FloatArray
) -> FloatArray:
    """Ellipsoidal distances in metres between paired positions (vectorised)."""
    _, _, dist = _GEOD.inv(lon1, lat1, lon2, lat2)
    return np.asarray(dist, dtype=np.float64)


class LocalFrame:
    """A metric frame (x east, y north, metres) centred on a point: an azimuthal equidistant
    projection, accurate to well under a metre across a city or a small country."""

    def __init__(self, lat0: float, lon0: float) -> None:
        self.lat0, self.lon0 = lat0, lon0
        proj = f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m +no_defs"
        self._forward = Transformer.from_crs("EPSG:4326", proj, always_xy=True)
        self._inverse = Transformer.from_crs(proj, "EPSG:4326", always_xy=True)

    def to_xy(self, lat: FloatArray, lon: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Degrees to ``(x, y)`` metres in this frame (vectorised)."""
        x, y = self._forward.transform(lon, lat)
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def to_latlon(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``(x, y)`` metres in this frame back to ``(lat, lon)`` degrees (vectorised)."""
        lon, lat = self._inverse.transform(x, y)
        return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)

    def area_to_xy(self, area: BaseGeometry) -> BaseGeometry:
        """A shapely geometry in (lon, lat) degrees, moved into this frame."""

        def move(coords: FloatArray) -> FloatArray:
            x, y = self._forward.transform(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(area, move)


def polygon(ring_lonlat: Sequence[tuple[float, float]]) -> BaseGeometry:
    """A shapely polygon from ``[(lon, lat), …]``; raises ``ValueError`` if it is not valid."""
    shape = shapely.Polygon(ring_lonlat)
    if shape.is_empty or not shape.is_valid or shape.area == 0:
        raise ValueError("the polygon is empty, self-intersecting or flat")
    return shape


def line(points_lonlat: Sequence[tuple[float, float]]) -> BaseGeometry:
    """A shapely line from ``[(lon, lat), …]``; raises ``ValueError`` if it has no length."""
    shape = shapely.LineString(points_lonlat)
    if shape.is_empty or shape.length == 0:
        raise ValueError("the line needs two distinct points")
    return shape


class SegmentIndex:
    """The straight segments of a network in a :class:`LocalFrame`, for area queries."""

    def __init__(self, x1: FloatArray, y1: FloatArray, x2: FloatArray, y2: FloatArray) -> None:
        coords = np.stack([np.column_stack([x1, y1]), np.column_stack([x2, y2])], axis=1)
        self._segments = shapely.linestrings(coords)
        self._tree = STRtree(self._segments)

    def intersecting(self, area_xy: BaseGeometry) -> npt.NDArray[np.int64]:
        """Indices of the segments that intersect ``area_xy`` (in the same frame)."""
        hits = self._tree.query(area_xy, predicate="intersects")
        return np.unique(np.asarray(hits, dtype=np.int64))
