"""The OsmAnd/Traccar endpoint and the read queries, over real HTTP and a real Redis."""

from __future__ import annotations

import time

import httpx
import pytest
import redis.asyncio as aioredis

from server import keys
from server.bulk import PAGE
from server.tracking.queries import Position, positions
from tests.conftest import AUTH
from tests.tracking.test_driver_socket import HELSINKI, register


def test_stock_osmand_query_forms_move_the_vehicle(live_server: str) -> None:
    register(live_server, "van-o", device_id="123456")
    now_s = int(time.time())
    forms = [
        {"id": "123456", "lat": "60.1700", "lon": "24.9400", "timestamp": str(now_s - 30),
         "speed": "10", "bearing": "90", "altitude": "12", "accuracy": "8", "batt": "77"},
        {"deviceid": "123456", "location": "60.1705,24.9405",
         "timestamp": str((now_s - 20) * 1000)},
        {"id": "123456", "lat": "60.1710", "lon": "24.9410",
         "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_s - 10))},
    ]  # fmt: skip
    for params in forms:
        answer = httpx.get(f"{live_server}/osmand", params=params)
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == 1
    post = httpx.post(
        f"{live_server}/osmand",
        params={"id": "123456", "lat": "60.1715", "lon": "24.9415", "timestamp": str(now_s - 5)},
    )
    assert post.status_code == 200
    here = httpx.get(
        f"{live_server}/vehicles", headers=AUTH, params={"bbox": "24.9,60.1,25.0,60.2"}
    ).json()
    assert [(v["id"], v["lat"], v["lon"]) for v in here] == [("van-o", 60.1715, 24.9415)]
    track = httpx.get(
        f"{live_server}/vehicles/van-o/track", headers=AUTH, params={"from": (now_s - 60) * 1000}
    )
    points = track.json()
    assert len(points) == 4
    assert points[0]["speed"] == pytest.approx(10 * 1852 / 3600, abs=5e-4), "knots → m/s (mm/s)"
    assert points[0]["heading"] == 90
    assert points[0]["accuracy"] == 8
    # No speed, heading or accuracy sent: the first two derived from the fix before, stored.
    assert (points[1]["speed"], points[1]["heading"], points[1].get("accuracy")) == (
        pytest.approx(6.2, abs=0.1),
        pytest.approx(26.4, abs=0.1),
        None,
    )


def test_traccar_client_json_body(live_server: str) -> None:
    register(live_server, "van-j", device_id="phone-9")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 3))
    body = {
        "device_id": "phone-9",
        "location": {
            "timestamp": stamp,
            "coords": {"latitude": 60.17, "longitude": 24.94, "speed": 5.5, "heading": 180,
                       "accuracy": 4, "altitude": 3},
            "is_moving": True,
            "battery": {"level": 0.8, "is_charging": False},
        },
    }  # fmt: skip
    answer = httpx.post(f"{live_server}/osmand", json=body)
    assert answer.status_code == 200, answer.text
    vehicle = httpx.get(f"{live_server}/vehicles", headers=AUTH).json()
    assert vehicle[0]["speed"] == 5.5


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"id": "nobody", "lat": "60", "lon": "24"}, "unknown device nobody"),
        ({"lat": "60", "lon": "24"}, "id (or deviceid) is required"),
        ({"id": "123", "lat": "north", "lon": "24"}, "lat must be a number"),
        ({"id": "123", "lat": "60"}, "lat and lon (or location) are required"),
        ({"id": "123", "lat": "60", "lon": "24", "timestamp": "yesterday"}, "timestamp"),
    ],
)
def test_bad_osmand_requests_are_400(
    live_server: str, params: dict[str, str], message: str
) -> None:
    register(live_server, "van-x", device_id="123")
    answer = httpx.get(f"{live_server}/osmand", params=params)
    assert answer.status_code == 400
    assert message in answer.json()["error"]["message"]


def test_nearby_is_sorted_by_exact_distance_within_the_radius(live_server: str) -> None:
    lat, lon = HELSINKI
    offsets = {"n-far": 0.02, "n-near": 0.001, "n-mid": 0.005, "n-out": 0.2}  # degrees of latitude
    for vehicle, offset in offsets.items():
        register(live_server, vehicle, device_id=vehicle)
        answer = httpx.get(
            f"{live_server}/osmand", params={"id": vehicle, "lat": lat + offset, "lon": lon}
        )
        assert answer.status_code == 200
    found = httpx.get(
        f"{live_server}/vehicles/nearby",
        headers=AUTH,
        params={"lat": lat, "lon": lon, "radius_m": 3000, "limit": 10},
    ).json()
    assert [v["id"] for v in found] == ["n-near", "n-mid", "n-far"]
    assert found[0]["distance_m"] == pytest.approx(111, abs=1)
    limited = httpx.get(
        f"{live_server}/vehicles/nearby", headers=AUTH, params={"lat": lat, "lon": lon, "limit": 1}
    ).json()
    assert [v["id"] for v in limited] == ["n-near"]
    bad = httpx.get(f"{live_server}/vehicles/nearby", headers=AUTH, params={"lat": 95, "lon": lon})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "validation_failed"


def test_queries_validate_their_parameters(live_server: str) -> None:
    assert (
        httpx.get(f"{live_server}/vehicles", headers=AUTH, params={"bbox": "1,2,3"}).status_code
        == 400
    )
    assert httpx.get(f"{live_server}/vehicles/ghost/track", headers=AUTH).status_code == 404
    duplicate = httpx.post(f"{live_server}/vehicles", headers=AUTH, json={"id": "same"})
    assert duplicate.status_code == 201
    again = httpx.post(f"{live_server}/vehicles", headers=AUTH, json={"id": "same"})
    assert again.status_code == 409
    assert again.json()["error"]["details"] == {"field": "id"}
    bad_id = httpx.post(f"{live_server}/vehicles", headers=AUTH, json={"id": "has space"})
    assert bad_id.status_code == 400


def test_a_track_asked_to_end_near_the_epoch_is_empty_not_an_error(live_server: str) -> None:
    register(live_server, "van-epoch")
    # Without `from`, the track starts an hour before `to`: before 1970 here, which is no
    # stream ID (a schema fuzzer found this answered 500).
    for params in ({"to": 0}, {"to": 1_000}, {"from": 0, "to": 0}):
        answer = httpx.get(f"{live_server}/vehicles/van-epoch/track", headers=AUTH, params=params)
        assert answer.status_code == 200, answer.text
        assert answer.json() == []


async def test_positions_come_back_for_every_page_and_after_a_script_flush(
    redis_url: str,
) -> None:
    """The live positions read for the console, the viewport query and the ETA pass: one
    script call per page of vehicles, loaded again when Redis has forgotten it."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        ids = [f"p-{i:04d}" for i in range(2 * PAGE + 3)]
        stored = ids[::2]  # every other vehicle has a live position; the rest never pinged
        async with client.pipeline(transaction=False) as pipe:
            for n, vehicle_id in enumerate(stored):
                fields = {"ts": 1_764_064_800_000 + n, "lat": 60.1 + n / 1e5, "lon": 24.9,
                          "speed": "" if n % 3 else 4.5, "heading": 90, "accuracy": "",
                          "cell": "891126d3a47ffff"}  # fmt: skip
                pipe.hset(keys.live(vehicle_id), mapping=fields)
            await pipe.execute()
        expected = [
            Position(
                id=vehicle_id,
                lat=60.1 + n / 1e5,
                lon=24.9,
                ts=1_764_064_800_000 + n,
                speed=None if n % 3 else 4.5,
                heading=90.0,
                accuracy=None,
                cell="891126d3a47ffff",
            )
            for n, vehicle_id in enumerate(stored)
        ]
        assert await positions(client, ids) == expected
        await client.script_flush()
        assert await positions(client, ids) == expected
        assert await positions(client, []) == []
    finally:
        await client.aclose()
