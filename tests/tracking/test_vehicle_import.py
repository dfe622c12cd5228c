"""A fleet from a spreadsheet: every vehicle or none, each error by row and column, a driver
token for each."""

from __future__ import annotations

import json
import time

import httpx
import redis
from websockets.asyncio.client import connect

from server import keys
from tests.conftest import AUTH
from tests.dispatch.test_planning_service import reply_to
from tests.tracking.test_driver_socket import ws_url

CSV = {**AUTH, "Content-Type": "text/csv"}
FLEET = (
    "id,name,capacity_parcels,capacity_kg,skills,depot_lat,depot_lon,shift_start,shift_end\n"
    "van-1,Van one,40,800,cold_chain;tail_lift,60.17,24.94,07:00,15:30\n"
    "van-2,,30,,,,,22:00,06:00\n"
    ",Spare,,,,,,,\n"
)


def post(base: str, body: str) -> httpx.Response:
    return httpx.post(f"{base}/vehicles/import", content=body.encode(), headers=CSV)


def added(redis_url: str) -> list[str]:
    """The vehicles announced as added (``vehicle`` events in the events log), in order."""
    client = redis.Redis.from_url(redis_url)
    logged = [json.loads(f[b"e"]) for _, f in client.xrange(keys.EVENTS_LOG)]
    client.close()
    return [e["vehicle_id"] for e in logged if e["type"] == "vehicle" and e.get("added")]


async def test_a_fleet_comes_in_from_a_spreadsheet_with_a_token_each(
    live_server: str, redis_url: str
) -> None:
    base = live_server
    answer = post(base, FLEET)
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert made["created"] == 3
    # Consoles hear of each (they show it) and the planner counts it.
    assert added(redis_url) == [v["id"] for v in made["vehicles"]]
    single = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": "van-9"})
    assert single.status_code == 201
    assert added(redis_url)[-1] == "van-9"
    assert [(v["row"], v["id"]) for v in made["vehicles"][:2]] == [(2, "van-1"), (3, "van-2")]
    spare = made["vehicles"][2]["id"]
    registry = {v["id"]: v for v in httpx.get(f"{base}/vehicles/registry", headers=AUTH).json()}
    one = registry["van-1"]
    assert (one["name"], one["capacity"], one["skills"]) == (
        "Van one", {"parcels": 40.0, "kg": 800.0}, ["cold_chain", "tail_lift"],
    )  # fmt: skip
    assert (one["depot"], one["shift"]) == (
        {"lat": 60.17, "lon": 24.94}, {"start": "07:00", "end": "15:30"},
    )  # fmt: skip
    two = registry["van-2"]
    assert (two["name"], two["depot"], two["shift"]["end"]) == ("van-2", None, "06:00")
    assert registry[spare]["name"] == "Spare"
    # Each token is its vehicle's driver token: a ping with van-2's moves van-2.
    tokens = {v["id"]: v["token"] for v in made["vehicles"]}
    async with connect(ws_url(base, f"/ws/driver?token={tokens['van-2']}")) as driver:
        ping = {"lat": 60.171, "lon": 24.941, "ts": int(time.time() * 1000)}
        ack = await reply_to(driver, {"type": "pings", "seq": 1, "pings": [ping]})
        assert (ack["type"], ack["accepted"]) == ("ack", 1)
    near = httpx.get(f"{base}/vehicles/nearby", headers=AUTH,
                     params={"lat": 60.171, "lon": 24.941, "radius_m": 50}).json()  # fmt: skip
    assert [v["id"] for v in near] == ["van-2"]

    # The same file again: every id is taken now, nothing is registered.
    again = post(base, FLEET)
    assert again.status_code == 400
    errors = again.json()["error"]["details"]["errors"]
    assert {(e["row"], e["column"]) for e in errors} == {(2, "id"), (3, "id")}
    assert len(httpx.get(f"{base}/vehicles/registry", headers=AUTH).json()) == 4
    assert len(added(redis_url)) == 4, "none announced for a refused file"


def test_a_fleet_file_with_errors_registers_nothing(live_server: str) -> None:
    base = live_server

    def errors_of(text: str) -> set[tuple[int, str]]:
        answer = post(base, text)
        assert answer.status_code == 400, answer.text
        return {(e["row"], e["column"]) for e in answer.json()["error"]["details"]["errors"]}

    header = "id,capacity_parcels,shift_start,shift_end,status,device_id\n"
    typed = (
        "ok-1,10,07:00,15:00,available,\n"
        "ok-2,-3,,,available,\n"  # a negative capacity
        "ok-3,10,25:00,15:00,available,\n"  # no such time
        "ok-5,10,,,parked,\n"  # no such status
    )
    assert errors_of(header + typed) == {(3, "capacity_parcels"), (4, "shift_start"),
                                         (5, "status")}  # fmt: skip
    checked = (
        "ok-1,10,07:00,15:00,available,\n"
        "no good,10,,,available,\n"  # a space in the id
        "ok-4,10,08:00,08:00,available,\n"  # no working hours at all
        "ok-1,10,,,available,\n"  # twice in the file
        "ok-6,10,,,available,ok-1\n"  # a device id another row's vehicle has
    )
    assert errors_of(header + checked) == {(3, "id"), (4, "shift"), (5, "id"), (6, "device_id")}
    assert httpx.get(f"{base}/vehicles/registry", headers=AUTH).json() == [], "none registered"
    unknown = post(base, "id,wheels\nx,4\n")
    assert unknown.json()["error"]["details"]["errors"] == [
        {"row": 1, "column": "wheels", "message": "unknown column"}
    ]
    assert post(base, "").status_code == 400
    assert httpx.post(f"{base}/vehicles/import", content=b"id\nx\n").status_code == 401
