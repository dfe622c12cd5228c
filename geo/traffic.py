"""Traffic events and the arc weights they produce (pure: time is passed in).

An event is an area — a polygon, or a line buffered by some metres — with a speed factor in
(0, 1] (0.5 = half speed) or a closure, a start and an optional end. The arcs it touches are those
whose segment intersects the area in the network's metric frame. Overlapping events combine: the
slowest factor wins, a closure beats any factor. Weights are always recomputed from the free-flow
ones, so ending an event restores exactly the weights from before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geo.engine import CLOSED
from geo.errors import TrafficEventError
from geo.geometry import LocalFrame, SegmentIndex, line, polygon
from geo.network import RoadNetwork


@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficEvent:
    """A slowdown (``factor``) or a closure over an area, from ``start_s`` to ``end_s``
    (seconds on the caller's clock; ``None``: until removed). Validates itself."""

    id: str
    factor: float  # speed multiplier in (0, 1]; ignored when closed
    closed: bool = False
    polygon: Sequence[tuple[float, float]] | None = None  # [(lon, lat), …]
    line: Sequence[tuple[float, float]] | None = None  # [(lon, lat), …], with buffer_m
    buffer_m: float = 0.0
    start_s: float = 0.0
    end_s: float | None = None

    def __post_init__(self) -> None:
        if not self.closed and not (0.0 < self.factor <= 1.0):
            raise TrafficEventError("factor must be in (0, 1], or the event must be a closure")
        if (self.polygon is None) == (self.line is None):
            raise TrafficEventError("give either a polygon or a line")
        if self.line is not None and not self.buffer_m > 0:
            raise TrafficEventError("a line needs buffer_m > 0 metres")
        if self.end_s is not None and self.end_s <= self.start_s:
            raise TrafficEventError("end must come after start")

    def active(self, now_s: float) -> bool:
        """Whether the event applies at ``now_s`` (start included, end excluded)."""
        return self.start_s <= now_s and (self.end_s is None or now_s < self.end_s)


class Traffic:
    """The set of traffic events on one network, and the weights they give at a time."""

    def __init__(self, network: RoadNetwork, frame: LocalFrame) -> None:
        self.network = network
        self.frame = frame
        x, y = frame.to_xy(network.node_lat, network.node_lon)
        self._segments = SegmentIndex(
            x[network.tail], y[network.tail], x[network.head], y[network.head]
        )
        self.events: dict[str, TrafficEvent] = {}
        self._arcs: dict[str, npt.NDArray[np.int64]] = {}

    def arcs_of(self, event: TrafficEvent) -> npt.NDArray[np.int64]:
        """The arcs an event touches (whether or not it is active)."""
        try:
            if event.polygon is not None:
                area = self.frame.area_to_xy(polygon(event.polygon))
            else:
                assert event.line is not None
                area = self.frame.area_to_xy(line(event.line)).buffer(event.buffer_m)
        except ValueError as exc:
            raise TrafficEventError(str(exc)) from None
        return self._segments.intersecting(area)

    def add(self, event: TrafficEvent) -> int:
        """Add or replace an event; the number of arcs it touches."""
        self.events[event.id] = event
        self._arcs[event.id] = self.arcs_of(event)
        return int(self._arcs[event.id].shape[0])

    def remove(self, event_id: str) -> None:
        """Forget an event (unknown ids are ignored)."""
        self.events.pop(event_id, None)
        self._arcs.pop(event_id, None)

    def factors(self, now_s: float) -> npt.NDArray[np.float64]:
        """Speed factor per arc at ``now_s``: 1 free-flow, 0 closed."""
        factor = np.ones(self.network.arc_count, dtype=np.float64)
        for event_id, event in self.events.items():
            if event.active(now_s):
                value = 0.0 if event.closed else event.factor
                np.minimum.at(factor, self._arcs[event_id], value)
        return factor

    def weights_ms(self, now_s: float) -> npt.NDArray[np.int64]:
        """Arc weights at ``now_s``: free-flow time / factor, rounded up; closed arcs
        :data:`~geo.engine.CLOSED`."""
        factor = self.factors(now_s)
        base = self.network.free_flow_ms
        slowed = np.ceil(base / np.where(factor > 0, factor, 1.0)).astype(np.int64)
        return np.where(factor > 0, np.minimum(slowed, CLOSED - 1), CLOSED)


def square_around(
    frame: LocalFrame, lat: float, lon: float, half_side_m: float
) -> list[tuple[float, float]]:
    """A square ``[(lon, lat), …]`` of side ``2 * half_side_m`` metres around a position."""
    cx, cy = frame.to_xy(np.array([lat]), np.array([lon]))
    xs = cx[0] + np.array([-1, 1, 1, -1]) * half_side_m
    ys = cy[0] + np.array([-1, -1, 1, 1]) * half_side_m
    lats, lons = frame.to_latlon(xs, ys)
    return list(zip(lons.tolist(), lats.tolist(), strict=True))
