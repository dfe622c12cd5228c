"""The pure steps of the ingest pipeline: reject, then derive. No I/O, time passed in.

Order of a ping's journey (``server.tracking.ingest`` runs it)::

    decode (wire) → reject (here) → derive (here) → persist (Lua, one round trip) → publish

Rejection reasons (counted in Redis, reported per ping in the ack):

==================  ==============================================================
``invalid``         not a finite position in range, or a negative speed/accuracy, or a
                    heading outside [0, 360)
``future``          more than ``max_future_s`` ahead of the server's clock
``stale``           older than the track retention
``impossible_jump`` reaching it from the last accepted fix needs more than
                    ``max_speed_mps``
==================  ==============================================================

A ping with the same timestamp as one already stored is a *duplicate*: not an error, it is acked
and counted apart (a driver re-sending after a reconnect).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from geo.distance import bearing_deg, haversine_m
from server.tracking.wire import Ping

REASONS = ("invalid", "future", "stale", "impossible_jump")


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Limits of the ping path. Keyword-only, with safe defaults."""

    max_future_s: float = 60.0
    retention_s: float = 7 * 24 * 3600.0
    max_speed_mps: float = 70.0  # 252 km/h: faster than any delivery vehicle on a road
    max_batch: int = 100
    max_messages_per_s: float = 20.0


class Fix(NamedTuple):
    """The last accepted position of a vehicle: what the next ping is checked against."""

    lat: float
    lon: float
    ts: int


def metres_from(last: Fix | Ping | None, ping: Ping) -> float | None:
    """The distance from ``last`` to a newer ``ping`` (the jump check and the derived speed and
    heading need it: reckoned once, passed to both); None when there is no newer ping."""
    if last is None or ping.ts <= last.ts:
        return None
    return haversine_m(last.lat, last.lon, ping.lat, ping.lon)


def reject_reason(
    ping: Ping,
    last: Fix | Ping | None,
    now_ms: int,
    limits: Limits,
    metres: float | None = None,
) -> str | None:
    """Why ``ping`` must be rejected, or ``None`` if it may go on. ``metres``: the distance from
    ``last`` when the caller has it (:func:`metres_from`)."""
    # Every comparison with NaN is false, and each bound below is finite, so these range checks
    # also refuse NaN and infinities.
    if not (
        -90.0 <= ping.lat <= 90.0
        and -180.0 <= ping.lon <= 180.0
        and ping.ts > 0
        and (ping.speed is None or 0.0 <= ping.speed <= 1000.0)
        and (ping.heading is None or 0.0 <= ping.heading < 360.0)
        and (ping.accuracy is None or 0.0 <= ping.accuracy < math.inf)
    ):
        return "invalid"
    if ping.ts > now_ms + limits.max_future_s * 1000:
        return "future"
    if ping.ts < now_ms - limits.retention_s * 1000:
        return "stale"
    if last is not None and ping.ts > last.ts:
        seconds = (ping.ts - last.ts) / 1000.0
        if metres is None:
            metres = haversine_m(last.lat, last.lon, ping.lat, ping.lon)
        # A small allowance for GPS noise on fixes close together in time.
        if metres > limits.max_speed_mps * seconds + 50.0:
            return "impossible_jump"
    return None


def derive_motion(
    ping: Ping, last: Fix | Ping | None, metres: float | None = None
) -> tuple[float | None, float | None]:
    """``(speed m/s, heading deg)``: the ping's own, else derived from the last fix (``metres``
    away, when the caller has it)."""
    speed, heading = ping.speed, ping.heading
    if last is None or ping.ts <= last.ts or (speed is not None and heading is not None):
        return speed, heading
    if metres is None:
        metres = haversine_m(last.lat, last.lon, ping.lat, ping.lon)
    if speed is None:
        speed = metres / ((ping.ts - last.ts) / 1000.0)
    if heading is None and metres >= 3.0:  # below a few metres the bearing is GPS noise
        heading = bearing_deg(last.lat, last.lon, ping.lat, ping.lon)
    return speed, heading
