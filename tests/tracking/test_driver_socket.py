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
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.xlen(keys.track("van-1")) == 5
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
    r = redis.Redis.from_url(redis_url)
    assert r.xlen(keys.track("van-2")) == 10
    r.close()


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
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.xlen(keys.track("van-4")) == 4, "the acked pings are all still there"
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
    r = redis.Redis.from_url(redis_url)
    assert r.xlen(keys.track("van-a")) == 2
    assert r.exists(keys.track("van-b")) == 0
    r.close()
