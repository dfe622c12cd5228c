"""Vehicle status transitions, from the age of the newest ping, against a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from server import keys
from server.settings import Settings, SettingsError
from server.tracking.status import FULL_PASS_S, StatusSweeper
from tests.conftest import STAFF_TOKEN, scaled
from tests.tracking.test_driver_socket import HELSINKI, register, send, ws_url


async def _registered(client: aioredis.Redis, *ids: str) -> None:
    """Vehicles in the registry, as ``POST /vehicles`` leaves them (the sweeper forgets others)."""
    await client.hset(keys.VEHICLES, mapping={i: json.dumps({"id": i}) for i in ids})


async def test_each_transition_is_one_event(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    now = [1_000_000.0]
    sweeper = StatusSweeper(client, stale_after_s=60, offline_after_s=300, clock=lambda: now[0])
    await _registered(client, "a", "b")
    await client.zadd(keys.LASTSEEN, {"a": 1_000_000_000 - 10_000, "b": 1_000_000_000 - 100_000})
    first = await sweeper.sweep()
    assert {(e["vehicle_id"], e["status"], e["previous"]) for e in first} == {
        ("a", "online", None),
        ("b", "stale", None),
    }
    assert await sweeper.sweep() == [], "no change, no event"
    now[0] += 60  # a: 70 s old → stale; b: 160 s old → still stale
    assert [(e["vehicle_id"], e["status"]) for e in await sweeper.sweep()] == [("a", "stale")]
    now[0] += 240  # a: 310 s, b: 400 s → offline
    assert {e["vehicle_id"] for e in await sweeper.sweep()} == {"a", "b"}
    assert await client.hgetall(keys.STATUS) == {b"a": b"offline", b"b": b"offline"}
    assert await client.xlen(keys.EVENTS_LOG) == 5
    await client.aclose()


async def test_a_fleet_larger_than_a_page_is_swept_whole_and_each_change_seen_once(
    redis_url: str,
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    now = [2_000_000.0]
    sweeper = StatusSweeper(client, stale_after_s=60, offline_after_s=300, clock=lambda: now[0])
    # 2,500 vehicles last seen 0-2,499 s ago: online, stale and offline ones, over three pages.
    await _registered(client, *(f"v{i}" for i in range(2_500)), "late-comer")
    await client.zadd(keys.LASTSEEN, {f"v{i}": (now[0] - i) * 1000 for i in range(2_500)})
    first = await sweeper.sweep()
    assert len(first) == 2_500
    assert sum(e["status"] == "online" for e in first) == 60
    assert sum(e["status"] == "stale" for e in first) == 240
    for _ in range(30):  # a sweep a second: each vehicle crossing a threshold, exactly once
        now[0] += 1
        changes = await sweeper.sweep()
        assert sorted(str(e["vehicle_id"]) for e in changes) == sorted(
            [f"v{60 - int(now[0]) + 2_000_000}", f"v{300 - int(now[0]) + 2_000_000}"]
        )
    statuses = await client.hgetall(keys.STATUS)
    assert sum(v == b"online" for v in statuses.values()) == 30
    assert sum(v == b"stale" for v in statuses.values()) == 240
    # A vehicle that appears already old (its first ping stale) gets its status by the next
    # pass that reads everyone, at most FULL_PASS_S later.
    await client.zadd(keys.LASTSEEN, {"late-comer": (now[0] - 1_000) * 1000})
    now[0] += 1
    await sweeper.sweep()
    now[0] += FULL_PASS_S
    assert any(e["vehicle_id"] == "late-comer" for e in await sweeper.sweep())
    assert await client.hget(keys.STATUS, "late-comer") == b"offline"
    await client.aclose()


async def test_only_one_process_holds_the_lease(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    one = StatusSweeper(client, stale_after_s=1, offline_after_s=2)
    two = StatusSweeper(client, stale_after_s=1, offline_after_s=2)
    assert await one.lease.hold()
    assert not await two.lease.hold()
    assert await one.lease.hold(), "the holder renews"
    await client.aclose()


async def test_console_sees_online_then_stale_then_offline(
    server_factory: Callable[..., str],
) -> None:
    base = server_factory(stale_after_s=0.6, offline_after_s=1.2)
    token = register(base, "quiet")
    async with connect(ws_url(base, f"/ws/console?token={STAFF_TOKEN}")) as console:
        async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
            ping = {"lat": HELSINKI[0], "lon": HELSINKI[1], "ts": int(time.time() * 1000)}
            await send(driver, {"type": "pings", "seq": 1, "pings": [ping]})
        statuses: list[str] = []
        deadline = time.monotonic() + scaled(8)
        while "offline" not in statuses and time.monotonic() < deadline:
            frame = json.loads(await asyncio.wait_for(console.recv(), scaled(5)))
            if frame["type"] == "event" and frame["event"]["vehicle_id"] == "quiet":
                statuses.append(frame["event"]["status"])
    assert statuses == ["online", "stale", "offline"]


def test_offline_must_come_after_stale() -> None:
    with pytest.raises(SettingsError, match="FLEET_OFFLINE_AFTER_S=30 is invalid"):
        Settings(stale_after_s=60, offline_after_s=30)


async def test_live_state_left_by_a_removed_vehicle_is_forgotten_by_the_status_sweep(
    redis_url: str,
) -> None:
    """A ping on its way when the vehicle was removed writes its live state back: nobody owns
    it, and the sweep that sees its status change removes it instead of announcing it."""
    client = aioredis.Redis.from_url(redis_url)
    now = [3_000_000.0]
    sweeper = StatusSweeper(client, stale_after_s=60, offline_after_s=300, clock=lambda: now[0])
    await _registered(client, "kept")
    seen = (now[0] - 10) * 1000
    for vehicle in ("kept", "ghost"):
        await client.zadd(keys.LASTSEEN, {vehicle: seen})
        await client.hset(keys.live(vehicle), mapping={"lat": 60.1, "lon": 24.9, "cell": "89abc"})
        await client.sadd(keys.cell(9, "89abc"), vehicle)
        await client.xadd(keys.track(vehicle), {"b": "1"})
    first = await sweeper.sweep()
    assert [(e["vehicle_id"], e["status"]) for e in first] == [("kept", "online")]
    assert await client.smembers(keys.cell(9, "89abc")) == {b"kept"}
    assert not await client.exists(keys.live("ghost"), keys.track("ghost"))
    assert await client.zscore(keys.LASTSEEN, "ghost") is None
    logged = [json.loads(f[b"e"]) for _, f in await client.xrange(keys.EVENTS_LOG)]
    assert {"type": "vehicle", "vehicle_id": "ghost", "removed": True} in logged
    await client.aclose()
