"""Pure geography for the fleet: no I/O framework, no environment, time passed in.

Modules, by kind of operation (each wrapped library is imported by one module only):

- :mod:`geo.errors` — the exception tree (``GeoError`` and its subclasses, drawn there).
- :mod:`geo.distance` — haversine distance and bearing for single points (hot path).
- :mod:`geo.cells` — H3 cells: cell of a position, k-rings, radius and polygon cover (``h3``).
- :mod:`geo.fences` — geofences indexed by H3 cell, and their enter/exit/dwell step.
- :mod:`geo.geometry` — metric frames, geodesic lengths, areas, segment index
  (``pyproj``, ``shapely``).
- :mod:`geo.osm` — drivable ways of an OpenStreetMap extract as raw arcs (``osmium``).
- :mod:`geo.network` — :class:`~geo.network.RoadNetwork` arrays, the largest strongly connected
  component, integer travel times (:func:`~geo.network.travel_ms`) and the ``.npz`` cache.
- :mod:`geo.engine` — travel times on the current weights: CCH point-to-point and matrices
  (``pyroutingkit``).
- :mod:`geo.snap` — positions to the nearest arc, vectorised.
- :mod:`geo.traffic` — traffic events and the arc weights they give at a time.
- :mod:`geo.polyline` — encoded polylines (precision 6) and GeoJSON lines.
- :mod:`geo.roads` — :class:`~geo.roads.Roads`, all of the above together: the entry point.

Nothing is imported here, so ``import geo.distance`` stays cheap.
"""
