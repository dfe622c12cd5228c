"""The driver socket end to end: a real server, a real Redis, a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server import keys
from server.tracking.queries import entry_points
from tests.conftest import AUTH, scaled

HELSINKI = (60.1699, 24.9384)


def now_ms() -> int:
    return int(time.time() * 1000)


def register(base: str, vehicle_id: str, device_id: str | None = None) -> str:
    body: dict[str, Any] = {"id": vehicle_id, "name": f"Van {vehicle_id}"}
    if device_id:
        body["device_id"] = device_id
    answer = httpx.post(f"{base}/vehicles", headers=AUTH, json=body)
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


def stored(redis_url: str, vehicle_id: str) -> list[int]:
    """The timestamps of the vehicle's pings in its track stream, in order."""
    with redis.Redis.from_url(redis_url) as r:
        entries = r.xrange(keys.track(vehicle_id))
    return [p.ts for entry_id, fields in entries for p in entry_points(entry_id, fields)]


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


async def send(ws: ClientConnection, message: Any) -> dict[str, Any]:
    await ws.send(message if isinstance(message, str | bytes) else json.dumps(message))
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), scaled(5)))
    return reply


def pings(start_ms: int, count: int, step_ms: int = 1000, lat: float = HELSINKI[0]) -> list[dict]:
    return [
        {"lat": lat + i * 0.0001, "lon": HELSINKI[1], "ts": start_ms + i * step_ms}
        for i in range(count)
    ]


async def test_batch_is_acked_after_it_is_in_redis(live_server: str, redis_url: str) -> None:
    token = register(live_server, "van-1")
    start = now_ms() - 10_000
    async with connect(ws_url(live_server, f"/ws/driver?token={token}")) as ws:
        ack = await send(ws, {"type": "pings", "seq": 7, "pings": pings(start, 5)})
    assert ack == {"type": "ack", "seq": 7, "accepted": 5, "duplicates": 0, "rejected": []}
    assert stored(redis_url, "van-1") == [start + i * 1000 for i in range(5)]
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    live = r.hgetall(keys.live("van-1"))
    assert int(live["ts"]) == start + 4000
    assert float(live["lat"]) == pytest.approx(HELSINKI[0] + 0.0004)
    assert float(live["speed"]) == pytest.approx(11.1, abs=0.2), "speed derived from the fixes"
    assert r.smembers(keys.cell(9, live["cell"])) == {"van-1"}
    r.close()


async def test_resent_batches_create_no_duplicates(live_server: str, redis_url: str) -> None:
    token = register(live_server, "van-2")
    batch = {"type": "pings", "seq": 1, "pings": pings(now_ms() - 20_000, 10)}
    async with connect(ws_url(live_server, f"/ws/driver?token={token}")) as ws:
        assert (await send(ws, batch))["accepted"] == 10
    async with connect(ws_url(live_server, f"/ws/driver?token={token}")) as ws:
        again = await send(ws, batch)
    assert again["accepted"] == 0
    assert again["duplicates"] == 10
    assert stored(redis_url, "van-2") == [p["ts"] for p in batch["pings"]]


async def test_a_batch_out_of_order_with_repeats_is_stored_once_in_order(
    live_server: str, redis_url: str
) -> None:
    token = register(live_server, "van-4")
    p = pings(now_ms() - 20_000, 3)
    bad = {**p[1], "lat": 95.0}  # the same instant as p[1], not a position: rejected
    batch = [p[2], bad, p[0], p[2], p[1], p[0]]
    async with connect(ws_url(live_server, f"/ws/driver?token={token}")) as ws:
        ack = await send(ws, {"type": "pings", "seq": 1, "pings": batch})
    assert (ack["accepted"], ack["duplicates"]) == (3, 2)
    assert ack["rejected"] == [{"i": 1, "reason": "invalid"}]
    assert stored(redis_url, "van-4") == [q["ts"] for q in p]
    with redis.Redis.from_url(redis_url) as r:
        assert r.xlen(keys.track("van-4")) == 1
        assert int(r.hget(keys.live("van-4"), "ts")) == p[2]["ts"]


async def test_late_pings_go_to_history_but_never_move_the_vehicle_back(
    live_server: str, redis_url: str
) -> None:
    token = register(live_server, "van-3")
    start = now_ms() - 30_000
    async with connect(ws_url(live_server, f"/ws/driver?token={token}")) as ws:
        await send(ws, {"type": "pings", "seq": 1, "pings": pings(start + 10_000, 1)})
        late = await send(ws, {"type": "pings", "seq": 2, "pings": pings(start, 3)})
        again = await send(ws, {"type": "pings", "seq": 3, "pings": pings(start, 3)})
    assert late["accepted"] == 3
    assert again["duplicates"] == 3
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert int(r.hget(keys.live("van-3"), "ts")) == start + 10_000
    track = httpx.get(
        f"{live_server}/vehicles/van-3/track", headers=AUTH, params={"from": start - 1}
    ).json()
    assert [p["ts"] for p in track] == [start, start + 1000, start + 2000, start + 10_000]
    r.close()


async def test_a_batch_is_one_track_entry_and_resending_any_part_of_it_stores_nothing_twice(
    live_server: str, redis_url: str
) -> None:
    token = register(live_server, "van-5")
    start = now_ms() - 60_000
    first, second = pings(start, 10), pings(start + 20_000, 5)
    async with connect(ws_url(live_server, f"/ws/driver?token={token}")) as ws:
        assert (await send(ws, {"type": "pings", "seq": 1, "pings": first}))["accepted"] == 10
        assert (await send(ws, {"type": "pings", "seq": 2, "pings": second}))["accepted"] == 5
        # A re-sent mix: pings from the middle of both stored batches, never-seen older pings
        # between them (history only) and a new one.
        gap = pings(start + 12_000, 3)
        newer = pings(start + 30_000, 1)
        mixed = first[3:7] + second[1:3] + gap + newer
        ack = await send(ws, {"type": "pings", "seq": 3, "pings": mixed})
        again = await send(ws, {"type": "pings", "seq": 4, "pings": mixed})
    assert (ack["accepted"], ack["duplicates"]) == (4, 6)
    assert (again["accepted"], again["duplicates"]) == (0, 10)
    with redis.Redis.from_url(redis_url) as r:
        assert r.xlen(keys.track("van-5")) == 3, "one entry per batch of in-order pings"
        assert r.zcard(keys.late("van-5")) == 3
    expected = sorted(p["ts"] for p in first + second + gap + newer)
    assert stored(redis_url, "van-5") == sorted(p["ts"] for p in first + second + newer)
    # A replay window that starts and ends inside stored batches.
    window = {"from": start + 4_000, "to": start + 22_000}
    track = httpx.get(f"{live_server}/vehicles/van-5/track", headers=AUTH, params=window).json()
    assert [p["ts"] for p in track] == [t for t in expected if 4_000 <= t - start <= 22_000]
    assert track[0]["lat"] == pytest.approx(first[4]["lat"])
    limited = httpx.get(
        f"{live_server}/vehicles/van-5/track", headers=AUTH, params={**window, "limit": 3}
    ).json()
    assert [p["ts"] for p in limited] == [start + 4_000, start + 5_000, start + 6_000]


async def test_pings_stored_one_per_entry_by_earlier_versions_are_read_and_deduplicated(
    live_server: str, redis_url: str
) -> None:
    token = register(live_server, "van-6")
    start = now_ms() - 60_000
    old = pings(start, 3)
    with redis.Redis.from_url(redis_url) as r:  # the layout written before batches were entries
        for p in old:
            r.xadd(keys.track("van-6"), {"p": f"{p['lat']},{p['lon']},,,"}, id=f"{p['ts']}-0")
        r.hset(keys.live("van-6"), mapping={"ts": old[-1]["ts"], "lat": old[-1]["lat"],
                                            "lon": old[-1]["lon"]})  # fmt: skip
    async with connect(ws_url(live_server, f"/ws/driver?token={token}")) as ws:
        ack = await send(ws, {"type": "pings", "seq": 1, "pings": pings(start, 5)})
    assert (ack["accepted"], ack["duplicates"]) == (2, 3)
    assert stored(redis_url, "van-6") == [p["ts"] for p in pings(start, 5)]
    track = httpx.get(
        f"{live_server}/vehicles/van-6/track", headers=AUTH, params={"from": start + 1}
    ).json()
    assert [p["ts"] for p in track] == [p["ts"] for p in pings(start, 5)[1:]]
    assert track[0]["lat"] == pytest.approx(old[1]["lat"])


async def test_a_lost_live_position_is_taken_from_the_track(
    live_server: str, redis_url: str
) -> None:
    token = register(live_server, "van-7")
    start = now_ms() - 60_000
    url = ws_url(live_server, f"/ws/driver?token={token}")
    async with connect(url) as ws:
        assert (await send(ws, {"type": "pings", "seq": 1, "pings": pings(start, 5)}))[
            "accepted"
        ] == 5
    with redis.Redis.from_url(redis_url) as r:
        r.delete(keys.live("van-7"))  # evicted, or deleted by hand
    async with connect(url) as ws:
        again = await send(ws, {"type": "pings", "seq": 2, "pings": pings(start, 6)})
    assert (again["accepted"], again["duplicates"]) == (1, 5)
    assert stored(redis_url, "van-7") == [p["ts"] for p in pings(start, 6)]


async def test_bad_input_gets_documented_errors_and_loses_nothing(
    live_server: str, redis_url: str
) -> None:
    token = register(live_server, "van-4")
    start = now_ms() - 60_000
    url = ws_url(live_server, f"/ws/driver?token={token}")
    async with connect(url) as ws:
        good = await send(ws, {"type": "pings", "seq": 1, "pings": pings(start, 3)})
        assert good["accepted"] == 3
        assert (await send(ws, "{not json"))["code"] == "invalid_json"
        wrong = await send(
            ws, {"type": "pings", "seq": 2, "pings": [{"lat": "x", "lon": 1, "ts": 1}]}
        )
        assert (wrong["code"], wrong["seq"]) == ("invalid_message", 2)
        assert (await send(ws, {"type": "bogus"}))["code"] == "invalid_message"
        assert (await send(ws, {"type": "pings", "seq": 3, "pings": []}))["code"] == "empty_batch"
        huge = await send(ws, {"type": "pings", "seq": 4, "pings": pings(start, 101)})
        assert (huge["code"], huge["seq"]) == ("batch_too_large", 4)
        mixed = [
            {"lat": 91.0, "lon": 24.9, "ts": start + 5000},  # out of range
            {"lat": 60.2, "lon": 24.9, "ts": now_ms() + 3_600_000},  # an hour in the future
            {"lat": 60.2, "lon": 24.9, "ts": 1_000},  # 1970: older than the retention
            {"lat": 10.0, "lon": 10.0, "ts": start + 6000},  # 5,000 km in 4 s
            {"lat": HELSINKI[0] + 0.0003, "lon": HELSINKI[1], "ts": start + 7000},  # fine
        ]
        ack = await send(ws, {"type": "pings", "seq": 5, "pings": mixed})
        assert ack["accepted"] == 1
        assert ack["rejected"] == [
            {"i": 0, "reason": "invalid"},
            {"i": 1, "reason": "future"},
            {"i": 2, "reason": "stale"},
            {"i": 3, "reason": "impossible_jump"},
        ]
        # Flooding: more than the limit a second gets rate_limited errors, not a crash.
        codes = []
        for seq in range(100, 160):
            await ws.send(json.dumps({"type": "pings", "seq": seq, "pings": pings(start, 1)}))
        for _ in range(60):
            codes.append(json.loads(await asyncio.wait_for(ws.recv(), scaled(5))).get("code"))
        assert "rate_limited" in codes
    # An oversized frame closes the socket with 1009, and the server lives on.
    async with connect(url, max_size=None) as ws:
        await ws.send("x" * 70_000)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), scaled(5))
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
    assert len(stored(redis_url, "van-4")) == 4, "the acked pings are all still there"
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.hgetall(keys.REJECTS) == {
        "invalid": "1",
        "future": "1",
        "stale": "1",
        "impossible_jump": "1",
    }
    r.close()
    assert httpx.get(f"{live_server}/health").status_code == 200


@pytest.mark.parametrize("query", ["", "?token=", "?token=not-a-token"])
async def test_unknown_token_is_closed_with_4001(live_server: str, query: str) -> None:
    async with connect(ws_url(live_server, f"/ws/driver{query}")) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), scaled(5))
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4001


async def test_a_token_speaks_only_for_its_own_vehicle(live_server: str, redis_url: str) -> None:
    token_a = register(live_server, "van-a")
    register(live_server, "van-b")
    async with connect(ws_url(live_server, f"/ws/driver?token={token_a}")) as ws:
        await send(ws, {"type": "pings", "seq": 1, "pings": pings(now_ms() - 5000, 2)})
    assert len(stored(redis_url, "van-a")) == 2
    r = redis.Redis.from_url(redis_url)
    assert r.exists(keys.track("van-b")) == 0
    r.close()


async def _refused(url: str) -> tuple[int, str]:
    """The close code and reason a driver socket at ``url`` is closed with."""
    async with connect(url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), scaled(5))
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_a_replaced_token_stops_working_on_every_process_at_once(
    server_factory: Any, redis_url: str
) -> None:
    a, b = server_factory(), server_factory()
    old = register(a, "van-r")
    async with connect(ws_url(b, f"/ws/driver?token={old}")) as ws:
        ack = await send(ws, {"type": "pings", "seq": 1, "pings": pings(now_ms() - 9000, 2)})
        assert ack["accepted"] == 2
        replaced = httpx.post(f"{a}/vehicles/van-r/token", headers=AUTH)  # on the other process
        assert replaced.status_code == 200, replaced.text
        new = replaced.json()["token"]
        assert replaced.json()["id"] == "van-r"
        assert new != old
        with pytest.raises(ConnectionClosed) as closed:  # b closes the socket open with it
            await asyncio.wait_for(ws.recv(), scaled(5))
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            4001, "this vehicle's token has been replaced"
        )  # fmt: skip
    assert (await _refused(ws_url(a, f"/ws/driver?token={old}")))[0] == 4001
    async with connect(ws_url(b, f"/ws/driver?token={new}")) as ws:
        ack = await send(ws, {"type": "pings", "seq": 2, "pings": pings(now_ms() - 5000, 2)})
        assert ack["accepted"] == 2
    assert len(stored(redis_url, "van-r")) == 4
    newer = httpx.post(f"{b}/vehicles/van-r/token", headers=AUTH).json()["token"]
    assert (await _refused(ws_url(a, f"/ws/driver?token={new}")))[0] == 4001
    async with connect(ws_url(a, f"/ws/driver?token={newer}")) as ws:
        ack = await send(ws, {"type": "pings", "seq": 3, "pings": pings(now_ms() - 1000, 1)})
        assert ack["accepted"] == 1


async def test_a_token_issued_before_tokens_were_indexed_is_replaced_too(
    live_server: str, redis_url: str
) -> None:
    old = register(live_server, "van-old")
    other = register(live_server, "van-other")
    with redis.Redis.from_url(redis_url) as r:
        r.delete(keys.VEHICLE_TOKENS)  # as a vehicle registered by an earlier version
    assert httpx.post(f"{live_server}/vehicles/van-old/token", headers=AUTH).status_code == 200
    assert (await _refused(ws_url(live_server, f"/ws/driver?token={old}")))[0] == 4001
    async with connect(ws_url(live_server, f"/ws/driver?token={other}")) as ws:
        ack = await send(ws, {"type": "pings", "seq": 1, "pings": pings(now_ms() - 1000, 1)})
        assert ack["accepted"] == 1  # another vehicle's token is not touched
    missing = httpx.post(f"{live_server}/vehicles/van-none/token", headers=AUTH)
    assert missing.status_code == 404
    assert httpx.post(f"{live_server}/vehicles/van-old/token").status_code == 401


async def test_a_retired_vehicle_leaves_nothing_behind(live_server: str, redis_url: str) -> None:
    token = register(live_server, "van-old", device_id="phone-17")
    async with connect(ws_url(live_server, f"/ws/driver?token={token}")) as ws:
        ack = await send(ws, {"type": "pings", "seq": 1, "pings": pings(now_ms() - 5000, 3)})
        assert ack["accepted"] == 3
        gone = f"{live_server}/vehicles/van-old"
        busy = httpx.delete(gone, headers=AUTH)
        assert busy.status_code == 409
        assert "in service" in busy.json()["error"]["message"]
        order = httpx.post(
            f"{live_server}/orders",
            headers=AUTH,
            json={
                "dropoff": {"lat": HELSINKI[0], "lon": HELSINKI[1]},
                "window": {"start": "2030-01-01T10:00:00Z", "end": "2030-01-01T12:00:00Z"},
            },
        ).json()["order"]
        assigned = httpx.post(
            f"{live_server}/orders/{order['id']}/assign",
            headers=AUTH,
            json={"vehicle_id": "van-old"},
        )
        assert assigned.status_code == 200, assigned.text
        patched = httpx.patch(gone, headers=AUTH, json={"status": "maintenance"})
        assert patched.status_code == 200
        holding = httpx.delete(gone, headers=AUTH)
        assert holding.status_code == 409
        assert holding.json()["error"]["details"] == {"orders": [order["id"]]}
        httpx.post(f"{live_server}/orders/{order['id']}/cancel", headers=AUTH).raise_for_status()
        assert httpx.delete(gone, headers=AUTH).status_code == 204
        with pytest.raises(ConnectionClosed) as closed:  # its driver's socket is closed
            await asyncio.wait_for(ws.recv(), scaled(5))
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4001
    assert (await _refused(ws_url(live_server, f"/ws/driver?token={token}")))[0] == 4001
    assert httpx.delete(gone, headers=AUTH).status_code == 404
    registry = httpx.get(f"{live_server}/vehicles/registry", headers=AUTH).json()
    assert "van-old" not in [v["id"] for v in registry]
    world = httpx.get(f"{live_server}/vehicles", headers=AUTH, params={"bbox": "-180,-85,180,85"})
    assert "van-old" not in [v["id"] for v in world.json()]
    assert httpx.get(f"{gone}/track", headers=AUTH).status_code == 404
    device = httpx.get(f"{live_server}/osmand", params={"id": "phone-17", "lat": 60.1, "lon": 24.9})
    assert device.status_code == 400
    with redis.Redis.from_url(redis_url) as r:
        left = [k.decode() for k in r.scan_iter("fleet:*") if b"van-old" in k]
        assert left == []
        members = [m for k in r.scan_iter("fleet:cell:*") for m in r.smembers(k)]
        assert b"van-old" not in members
        assert r.zscore(keys.LASTSEEN, "van-old") is None
        assert r.hget(keys.STATUS, "van-old") is None
    register(live_server, "van-old", device_id="phone-17")  # the id and device are free again
