"""Trips and stops from tracks shaped like a delivery van's day, GPS noise included."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.trips import Fix, Stop, Trip, trips_and_stops

M_PER_DEG = 111_195.0  # metres per degree of latitude on the mean sphere
LAT0, LON0 = 60.17, 24.94


class Van:
    """Writes a track: a fix a second (or every ``every_s``), positions with GPS noise."""

    def __init__(self, *, noise_m: float = 5.0, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.noise_m = noise_m
        self.t = 0.0
        self.x = self.y = 0.0  # metres east, north
        self.fixes: list[Fix] = []

    def _fix(self) -> None:
        nx, ny = (self.rng.gauss(0, self.noise_m) for _ in range(2))
        lat = LAT0 + (self.y + ny) / M_PER_DEG
        lon = LON0 + (self.x + nx) / (M_PER_DEG * math.cos(math.radians(LAT0)))
        self.fixes.append(Fix(ts=round(self.t * 1000), lat=lat, lon=lon))

    def park(self, seconds: float, *, every_s: float = 1.0) -> None:
        for _ in range(round(seconds / every_s)):
            self.t += every_s
            self._fix()

    def drive(self, seconds: float, speed: float, *, heading_deg: float = 0.0) -> None:
        dx, dy = math.sin(math.radians(heading_deg)), math.cos(math.radians(heading_deg))
        for _ in range(round(seconds)):
            self.t += 1
            self.x, self.y = self.x + dx * speed, self.y + dy * speed
            self._fix()

    def silent(self, seconds: float) -> None:
        self.t += seconds


def kinds(parts: list[Stop | Trip]) -> list[str]:
    return [type(p).__name__ for p in parts]


def test_a_day_of_drops_is_read_back_as_trips_and_stops() -> None:
    van = Van()
    van.park(600)  # loading at the depot
    for heading in (0, 90, 180):
        van.drive(300, 13.9, heading_deg=heading)  # 50 km/h for 5 minutes: 4.17 km
        van.park(180)  # a drop-off
    report = trips_and_stops(van.fixes)
    assert kinds(report.parts) == ["Stop", "Trip", "Stop", "Trip", "Stop", "Trip", "Stop"]
    stops = [p for p in report.parts if isinstance(p, Stop)]
    assert [round(s.duration_s / 10) * 10 for s in stops] == [600, 180, 180, 180]
    for stop, (x, y) in zip(stops, [(0, 0), (0, 4170), (4170, 4170), (4170, 0)], strict=True):
        east = (stop.lon - LON0) * M_PER_DEG * math.cos(math.radians(LAT0))
        north = (stop.lat - LAT0) * M_PER_DEG
        assert math.hypot(east - x, north - y) < 10  # noise averaged out
    summary = report.summary
    assert summary.trips == 3
    assert summary.stops == 4
    # Noise adds length to a path measured fix to fix; a few per cent at 1 Hz and 5 m.
    assert 3 * 4170 <= summary.distance_m <= 3 * 4170 * 1.05
    assert summary.driving_s == pytest.approx(900, abs=15)
    assert summary.max_speed_mps == pytest.approx(13.9, rel=0.1)
    assert summary.driving_s + summary.stopped_s <= (summary.last_ts - summary.first_ts) / 1000


def test_a_parked_van_whose_fixes_wander_has_driven_nowhere() -> None:
    van = Van(noise_m=8.0, seed=3)
    van.park(3600)
    report = trips_and_stops(van.fixes)
    assert kinds(report.parts) == ["Stop"]
    assert report.summary.distance_m == 0
    assert report.summary.max_speed_mps == 0


def test_a_crawl_in_a_jam_and_a_red_light_are_not_stops() -> None:
    van = Van()
    van.drive(120, 12.0)
    van.drive(600, 1.0)  # 3.6 km/h for 10 minutes
    van.park(60)  # a long red light
    van.drive(120, 12.0)
    report = trips_and_stops(van.fixes)
    assert kinds(report.parts) == ["Trip"]
    assert report.summary.max_speed_mps == pytest.approx(12.0, rel=0.05)
    assert report.summary.distance_m == pytest.approx(2 * 1440 + 600, rel=0.1)


def test_a_gap_is_a_stop_where_the_van_stayed_and_a_trip_where_it_did_not() -> None:
    stayed = Van(noise_m=3.0)
    stayed.drive(60, 10.0)
    stayed.park(60)
    stayed.silent(3600)  # the phone was off over lunch
    stayed.park(60)
    stayed.drive(60, 10.0)
    report = trips_and_stops(stayed.fixes)
    assert kinds(report.parts) == ["Trip", "Stop", "Trip"]
    assert report.parts[1].duration_s == pytest.approx(3720, abs=5)

    moved = Van(noise_m=3.0)
    moved.drive(60, 10.0)
    moved.silent(600)
    moved.x += 5000  # 5 km on, unseen
    moved.drive(60, 10.0)
    report = trips_and_stops(moved.fixes, gap_s=300)
    assert kinds(report.parts) == ["Trip"]
    trip = report.parts[0]
    assert isinstance(trip, Trip)
    assert trip.gaps == 1
    assert trip.max_speed_mps == pytest.approx(10.0, rel=0.2)  # not 5 km over one interval


def test_moving_along_the_kerb_between_two_halts_is_one_stop() -> None:
    van = Van(noise_m=2.0)
    van.drive(60, 10.0)
    van.park(150)
    van.drive(4, 5.0)  # 20 m to the next door
    van.park(150)
    van.drive(60, 10.0)
    report = trips_and_stops(van.fixes)
    assert kinds(report.parts) == ["Trip", "Stop", "Trip"]
    assert report.parts[1].duration_s == pytest.approx(304, abs=5)


def test_a_fix_far_off_in_the_middle_of_a_stop_does_not_split_it() -> None:
    van = Van(noise_m=3.0)
    van.drive(60, 10.0)
    van.park(150)
    van.x += 300  # one fix 300 m off (multipath between tall buildings)
    van.park(1)
    van.x -= 300
    van.park(150)
    van.drive(60, 10.0)
    report = trips_and_stops(van.fixes)
    assert kinds(report.parts) == ["Trip", "Stop", "Trip"]
    assert report.parts[1].duration_s == pytest.approx(301, abs=5)
    # Back at the same door after three minutes away: two stops.
    van.drive(30, 10.0)
    van.drive(90, 10.0, heading_deg=180)
    van.park(150)
    assert kinds(trips_and_stops(van.fixes).parts) == ["Trip", "Stop", "Trip", "Stop"]


def test_sparse_fixes_and_no_fixes() -> None:
    assert trips_and_stops([]).parts == []
    assert trips_and_stops([]).summary.fixes == 0
    van = Van(noise_m=0.0)
    van.park(600, every_s=60)  # an OsmAnd app reporting once a minute
    one = trips_and_stops(van.fixes)
    assert kinds(one.parts) == ["Stop"]
    assert trips_and_stops(van.fixes[:1]).parts == []  # one fix: neither


fixes = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=120_000),  # ms since the previous fix
        st.floats(min_value=-300, max_value=300),  # metres moved north
        st.floats(min_value=-300, max_value=300),  # east
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(fixes)
def test_parts_tile_the_track_in_order(steps: list[tuple[int, float, float]]) -> None:
    track, t, x, y = [], 0, 0.0, 0.0
    for dt_ms, north, east in steps:
        t, y, x = t + dt_ms, y + north, x + east
        track.append(Fix(ts=t, lat=LAT0 + y / M_PER_DEG, lon=LON0 + x / M_PER_DEG))
    report = trips_and_stops(track)
    ends = [(p.start_ts, p.end_ts) for p in report.parts]
    assert all(a <= b for a, b in ends)
    assert all(prev[1] <= nxt[0] for prev, nxt in itertools.pairwise(ends))
    summary = report.summary
    assert summary.distance_m >= 0
    assert summary.stops + summary.trips == len(report.parts)
    if track:
        span_s = (track[-1].ts - track[0].ts) / 1000
        assert summary.driving_s + summary.stopped_s <= span_s + 1e-6
        assert ends == [] or (ends[0][0] >= track[0].ts and ends[-1][1] <= track[-1].ts)
