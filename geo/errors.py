"""The exception tree of ``geo``::

GeoError                    base of everything geo raises on purpose
├── OsmImportError          the extract cannot be read or holds no drivable road
├── OutsideServiceArea      a position is farther than the limit from any road
├── NoRoute                 no path between two points (closure, one-way trap)
└── TrafficEventError       a traffic event is malformed (factor, geometry, times)
"""

from __future__ import annotations


class GeoError(Exception):
    """Base class of the errors ``geo`` raises on purpose."""


class OsmImportError(GeoError):
    """The extract cannot be read or holds no drivable road."""


class OutsideServiceArea(GeoError):
    """A position is farther than the allowed distance from any drivable road."""

    def __init__(self, lat: float, lon: float, distance_m: float, limit_m: float) -> None:
        super().__init__(
            f"({lat:.6f}, {lon:.6f}) is outside the service area: the nearest road is "
            f"{distance_m:,.0f} m away (the limit is {limit_m:,.0f} m)"
        )
        self.lat, self.lon, self.distance_m, self.limit_m = lat, lon, distance_m, limit_m


class NoRoute(GeoError):
    """No path joins the two points under the current traffic."""


class TrafficEventError(GeoError):
    """A traffic event is malformed."""
