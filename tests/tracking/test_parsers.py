"""Property tests: the decoders accept what the protocol documents and fail only with
documented errors on anything else."""

from __future__ import annotations

import contextlib
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.tracking.filters import Fix, Limits, derive_motion, reject_reason
from server.tracking.osmand import parse_json, parse_query, parse_timestamp
from server.tracking.wire import PingBatch, WireError, decode_client

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
ping = st.fixed_dictionaries(
    {"lat": st.floats(-90, 90), "lon": st.floats(-180, 180), "ts": st.integers(1, 2**53)},
    optional={
        "speed": st.floats(0, 100),
        "heading": st.floats(0, 359.9),
        "accuracy": st.floats(0, 1e4),
    },
)
LIMITS = Limits()
DOCUMENTED = {"invalid_json", "invalid_message", "empty_batch", "batch_too_large"}


def _outcome(frame: bytes | str) -> str:
    try:
        decode_client(frame, max_batch=100)
    except WireError as exc:
        return exc.code
    return "ok"


@given(st.binary(max_size=300) | st.text(max_size=300))
def test_any_bytes_decode_or_fail_with_a_documented_code(frame: bytes | str) -> None:
    assert _outcome(frame) in DOCUMENTED | {"ok"}


@given(json_values)
def test_any_json_value_decodes_or_fails_with_a_documented_code(value: object) -> None:
    assert _outcome(json.dumps(value)) in DOCUMENTED | {"ok"}


@given(st.integers(), st.lists(ping, min_size=1, max_size=100))
def test_well_formed_batches_round_trip(seq: int, pings: list[dict]) -> None:
    batch = decode_client(json.dumps({"type": "pings", "seq": seq, "pings": pings}), max_batch=100)
    assert isinstance(batch, PingBatch)
    assert batch.seq == seq
    assert [p.ts for p in batch.pings] == [p["ts"] for p in pings]


@given(st.dictionaries(st.sampled_from(["id", "deviceid", "lat", "lon", "location", "timestamp",
                                         "speed", "bearing", "heading", "accuracy", "batt"]),
                       st.text(max_size=30)))  # fmt: skip
def test_osmand_query_parses_or_raises_value_error(params: dict[str, str]) -> None:
    try:
        device, parsed = parse_query(params, now_s=1.7e9)
    except ValueError:
        return
    assert device
    assert isinstance(parsed.ts, int)


@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_osmand_json_parses_or_raises_value_error(body: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_json(body, now_s=1.7e9)


@settings(max_examples=200)
@given(
    st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True)
)
def test_reject_never_lets_a_non_finite_or_out_of_range_position_through(
    lat: float, lon: float
) -> None:
    from server.tracking.wire import Ping

    reason = reject_reason(
        Ping(lat=lat, lon=lon, ts=1_700_000_000_000), None, 1_700_000_000_000, LIMITS
    )
    in_range = math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180
    assert (reason is None) == in_range


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1700000000", 1_700_000_000_000),
        ("1700000000123", 1_700_000_000_123),
        ("1700000000.5", 1_700_000_000_500),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14 22:13:20", 1_700_000_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
        (None, 42_000),
    ],
)
def test_timestamp_forms(raw: str | None, expected: int) -> None:
    assert parse_timestamp(raw, now_s=42.0) == expected


def test_speed_and_heading_are_derived_only_when_missing() -> None:
    from server.tracking.wire import Ping

    last = Fix(60.0, 24.0, 1_000_000)
    north = Ping(lat=60.001, lon=24.0, ts=1_010_000)  # ~111 m in 10 s, due north
    speed, heading = derive_motion(north, last)
    assert speed == pytest.approx(11.1, abs=0.1)
    assert heading == pytest.approx(0.0, abs=0.01)
    own = Ping(lat=60.001, lon=24.0, ts=1_010_000, speed=3.0, heading=45.0)
    assert derive_motion(own, last) == (3.0, 45.0)
    still = Ping(lat=60.0, lon=24.0, ts=1_010_000)
    assert derive_motion(still, last) == (0.0, None), "no bearing from GPS jitter"
