"""Route geometry on the wire: Google's encoded polyline (precision 6) and GeoJSON.

>>> encode([(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)], precision=5)
'_p~iF~ps|U_ulLnnqC_mqNvxq`@'
>>> decode(encode([(60.169912, 24.938412), (60.17, 24.94)]))
[(60.169912, 24.938412), (60.17, 24.94)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _encode_value(value: int) -> str:
    value = ~(value << 1) if value < 0 else value << 1
    chunks = []
    while value >= 0x20:
        chunks.append(chr((0x20 | (value & 0x1F)) + 63))
        value >>= 5
    chunks.append(chr(value + 63))
    return "".join(chunks)


def encode(points: Sequence[tuple[float, float]], precision: int = 6) -> str:
    """``[(lat, lon), …]`` as an encoded polyline."""
    factor = 10**precision
    out: list[str] = []
    last_lat = last_lon = 0
    for lat, lon in points:
        ilat, ilon = round(lat * factor), round(lon * factor)
        out.append(_encode_value(ilat - last_lat))
        out.append(_encode_value(ilon - last_lon))
        last_lat, last_lon = ilat, ilon
    return "".join(out)


def decode(text: str, precision: int = 6) -> list[tuple[float, float]]:
    """An encoded polyline back to ``[(lat, lon), …]``; ``ValueError`` if it is malformed."""
    factor = 10**precision
    values: list[int] = []
    shift = result = 0
    for char in text:
        byte = ord(char) - 63
        if not 0 <= byte < 64:
            raise ValueError(f"{char!r} is not a polyline character")
        result |= (byte & 0x1F) << shift
        shift += 5
        if byte < 0x20:
            values.append(~(result >> 1) if result & 1 else result >> 1)
            shift = result = 0
    if shift or len(values) % 2:
        raise ValueError("the polyline is cut short")
    points = []
    lat = lon = 0
    for dlat, dlon in zip(values[::2], values[1::2], strict=True):
        lat += dlat
        lon += dlon
        points.append((lat / factor, lon / factor))
    return points


def geojson_line(points: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """``[(lat, lon), …]`` as a GeoJSON LineString (coordinates are ``[lon, lat]``)."""
    return {"type": "LineString", "coordinates": [[lon, lat] for lat, lon in points]}
