"""Trips and stops from a vehicle's track: what a fleet manager reads the day back from.

A **stop** is a stretch of fixes that stay within ``stop_radius_m`` of where it began (the mean
of its first 10 s of fixes) for at least ``stop_min_s``: GPS noise around a parked van stays
inside the radius, a van crawling in a jam leaves it. The fixes at either end farther than a
third of the radius from the stop's median position are the van arriving and leaving, and
belong to the trips. A gap in the fixes counts as stopped when the van is still within the
radius after it (the app was closed at the depot), as driven when it is not (``gaps``). A
**trip** is what lies between two stops. Its distance is counted from fix to fix, each at
least ``step_m`` on from the last one counted, so the zigzag of GPS noise is not (at one fix a
second and 5 m of noise it would double a crawl's length). Its top speed is the highest
straight-line speed over ``speed_span_s`` (30 s): sustained, not a peak, and the same whether
a device reported speeds or not (a track keeps the speeds the server derived between two fixes
a second apart beside reported ones, and those carry the noise of both fixes).
Two stops less than ``stop_min_s`` apart whose centres are within ``stop_radius_m`` of each
other are one (a GPS outlier, or a turn round the block to the same door). Times are as good as
the fixes are dense: at one fix a second, a second or two.

Same idea as Traccar's trips and stops reports, for a delivery van's day: the default shortest
stop (2 minutes) catches a drop-off, where Traccar's 5-minute parking would not.

>>> fix = lambda s, north_m: Fix(ts=s * 1000, lat=60.0 + north_m / 111_195, lon=25.0)
>>> day = [fix(s, 0) for s in range(0, 300, 30)]             # parked, a fix every 30 s
>>> day += [fix(300 + s, 10 * s) for s in range(1, 61)]       # 600 m north at 10 m/s
>>> day += [fix(360 + s, 600) for s in range(20, 200, 20)]    # a 3-minute drop-off
>>> report = trips_and_stops(day)
>>> [(type(part).__name__, round(part.duration_s)) for part in report.parts]
[('Stop', 301), ('Trip', 58), ('Stop', 181)]
>>> round(report.summary.distance_m), round(report.summary.max_speed_mps)
(598, 10)
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from geo.distance import haversine_m

ANCHOR_MS = 10_000


@dataclass(frozen=True, slots=True)
class Fix:
    ts: int  # Unix ms
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Stop:
    start_ts: int
    end_ts: int
    lat: float  # the mean of its fixes
    lon: float
    fixes: int

    @property
    def duration_s(self) -> float:
        return (self.end_ts - self.start_ts) / 1000


@dataclass(frozen=True, slots=True)
class Trip:
    start_ts: int
    end_ts: int
    start: tuple[float, float]  # lat, lon
    end: tuple[float, float]
    distance_m: float
    max_speed_mps: float
    fixes: int
    gaps: int  # stretches of more than ``gap_s`` without a fix, driven (distance estimated)

    @property
    def duration_s(self) -> float:
        return (self.end_ts - self.start_ts) / 1000

    @property
    def mean_speed_mps(self) -> float:
        return self.distance_m / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Summary:
    distance_m: float = 0.0
    driving_s: float = 0.0
    stopped_s: float = 0.0
    stops: int = 0
    trips: int = 0
    max_speed_mps: float = 0.0
    fixes: int = 0
    first_ts: int | None = None
    last_ts: int | None = None


@dataclass(frozen=True, slots=True)
class Report:
    parts: list[Stop | Trip] = field(default_factory=list)  # in time order
    summary: Summary = field(default_factory=Summary)


def trips_and_stops(
    fixes: Sequence[Fix],
    *,
    stop_radius_m: float = 50.0,
    stop_min_s: float = 120.0,
    gap_s: float = 600.0,
    speed_span_s: float = 30.0,
    step_m: float = 25.0,
) -> Report:
    """Split ``fixes`` (in time order) into stops and the trips between them."""
    if not fixes:
        return Report()
    spans = [
        _trimmed(fixes, first, last, stop_radius_m / 3)
        for first, last in _stop_spans(fixes, stop_radius_m, stop_min_s * 1000)
    ]
    spans = _merge_close(fixes, spans, stop_radius_m, stop_min_s * 1000)
    parts: list[Stop | Trip] = []
    at = 0  # first fix not yet in a part
    for first, last in spans:
        if first > at:  # driven from the last stop's end (or the first fix) to this stop
            parts.append(_trip(fixes, max(at - 1, 0), first, gap_s, speed_span_s, step_m))
        parts.append(_stop(fixes, first, last))
        at = last + 1
    if at < len(fixes):
        parts.append(_trip(fixes, max(at - 1, 0), len(fixes) - 1, gap_s, speed_span_s, step_m))
    parts = [p for p in parts if not (isinstance(p, Trip) and p.fixes < 2)]
    parts = [
        _from_stop_to_stop(p, parts[k - 1] if k else None, parts[k + 1 : k + 2])
        for k, p in enumerate(parts)
    ]
    return Report(parts=parts, summary=_summary(fixes, parts))


def _from_stop_to_stop(
    part: Stop | Trip, before: Stop | Trip | None, after: list[Stop | Trip]
) -> Stop | Trip:
    """A trip measured from the stop before it and to the stop after it, where it starts and
    ends at their last and first fixes, a few metres from where the van stood."""
    if not isinstance(part, Trip):
        return part
    extra = 0.0
    if isinstance(before, Stop):
        extra += haversine_m(before.lat, before.lon, *part.start)
    if after and isinstance(after[0], Stop):
        extra += haversine_m(after[0].lat, after[0].lon, *part.end)
    return dataclasses.replace(part, distance_m=part.distance_m + extra)


def _stop_spans(fixes: Sequence[Fix], radius_m: float, min_ms: float) -> list[tuple[int, int]]:
    """Index ranges ``(first, last)`` of the fixes that make stops. A candidate's centre is the
    mean of its fixes of the first ``ANCHOR_MS`` (one noisy fix would let a parked van's noise
    leave the radius now and then; a running mean would lag behind a crawling van)."""
    spans = []
    anchor = 0
    lat_sum, lon_sum, n = fixes[0].lat, fixes[0].lon, 1
    for j in range(1, len(fixes) + 1):
        if j < len(fixes):
            fix = fixes[j]
            if haversine_m(lat_sum / n, lon_sum / n, fix.lat, fix.lon) <= radius_m:
                if fix.ts - fixes[anchor].ts <= ANCHOR_MS:
                    lat_sum, lon_sum, n = lat_sum + fix.lat, lon_sum + fix.lon, n + 1
                continue
        if fixes[j - 1].ts - fixes[anchor].ts >= min_ms:
            spans.append((anchor, j - 1))
        if j < len(fixes):
            anchor = j
            lat_sum, lon_sum, n = fixes[j].lat, fixes[j].lon, 1
    return spans


def _trimmed(fixes: Sequence[Fix], first: int, last: int, core_m: float) -> tuple[int, int]:
    """The span without its arriving and leaving fixes (farther than ``core_m`` from the
    median position of the span), where it has a trip before or after it."""
    lat, lon = _centre(fixes, first, last)
    if first > 0:  # at the start of the track the van was already there: nothing to trim
        while first < last and haversine_m(lat, lon, fixes[first].lat, fixes[first].lon) > core_m:
            first += 1
    if last < len(fixes) - 1:
        while last > first and haversine_m(lat, lon, fixes[last].lat, fixes[last].lon) > core_m:
            last -= 1
    return first, last


def _centre(fixes: Sequence[Fix], first: int, last: int) -> tuple[float, float]:
    """The median position of ``fixes[first..last]``."""
    return (
        statistics.median(f.lat for f in fixes[first : last + 1]),
        statistics.median(f.lon for f in fixes[first : last + 1]),
    )


def _merge_close(
    fixes: Sequence[Fix], spans: list[tuple[int, int]], radius_m: float, min_ms: float
) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for first, last in spans:
        if (
            merged
            and fixes[first].ts - fixes[merged[-1][1]].ts < min_ms
            and haversine_m(*_centre(fixes, *merged[-1]), *_centre(fixes, first, last)) < radius_m
        ):
            merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def _apart(a: Fix, b: Fix) -> float:
    return haversine_m(a.lat, a.lon, b.lat, b.lon)


def _path_m(fixes: Sequence[Fix], first: int, last: int, step_m: float) -> float:
    """The length of the path from ``fixes[first]`` to ``fixes[last]``, counted from fix to
    fix once each is ``step_m`` on from the last one counted: GPS noise of a few metres on every
    fix would otherwise add its zigzag (double the distance of a van crawling at walking pace,
    at one fix a second and 5 m of noise)."""
    total = 0.0
    at = first
    for k in range(first + 1, last + 1):
        step = _apart(fixes[at], fixes[k])
        if step >= step_m or k == last:
            total += step
            at = k
    return total


def _stop(fixes: Sequence[Fix], first: int, last: int) -> Stop:
    n = last - first + 1
    return Stop(
        start_ts=fixes[first].ts,
        end_ts=fixes[last].ts,
        lat=sum(f.lat for f in fixes[first : last + 1]) / n,
        lon=sum(f.lon for f in fixes[first : last + 1]) / n,
        fixes=n,
    )


def _trip(
    fixes: Sequence[Fix], first: int, last: int, gap_s: float, span_s: float, step_m: float
) -> Trip:
    """The trip over ``fixes[first..last]`` (both ends included: a trip starts at the fix
    where the stop before it ended)."""
    top = 0.0
    gaps = 0
    back = first  # the latest fix at least span_s before the current one
    for k in range(first + 1, last + 1):
        a, b = fixes[k - 1], fixes[k]
        if b.ts - a.ts > gap_s * 1000:
            gaps += 1
        while back + 1 < k and b.ts - fixes[back + 1].ts >= span_s * 1000:
            back += 1
        elapsed = (b.ts - fixes[back].ts) / 1000
        if elapsed >= span_s and b.ts - a.ts <= gap_s * 1000:
            top = max(top, _apart(fixes[back], b) / elapsed)
    return Trip(
        start_ts=fixes[first].ts,
        end_ts=fixes[last].ts,
        start=(fixes[first].lat, fixes[first].lon),
        end=(fixes[last].lat, fixes[last].lon),
        distance_m=_path_m(fixes, first, last, step_m),
        max_speed_mps=top,
        fixes=last - first + 1,
        gaps=gaps,
    )


def _summary(fixes: Sequence[Fix], parts: list[Stop | Trip]) -> Summary:
    trips = [p for p in parts if isinstance(p, Trip)]
    stops = [p for p in parts if isinstance(p, Stop)]
    return Summary(
        distance_m=sum(t.distance_m for t in trips),
        driving_s=sum(t.duration_s for t in trips),
        stopped_s=sum(s.duration_s for s in stops),
        stops=len(stops),
        trips=len(trips),
        max_speed_mps=max((t.max_speed_mps for t in trips), default=0.0),
        fixes=len(fixes),
        first_ts=fixes[0].ts,
        last_ts=fixes[-1].ts,
    )
