"""``server.clock``: real time at rate 1, simulated time shared by every process above it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect

from server import clock
from server.clock import REAL, Clock
from tests.conftest import scaled
from tests.tracking.test_driver_socket import HELSINKI, register, send, ws_url


def test_rate_one_is_real_time() -> None:
    assert clock.current() is REAL
    before, now, after = time.time(), clock.now(), time.time()
    assert before <= now <= after
    before, mono, after = time.monotonic(), clock.monotonic(), time.monotonic()
    assert before <= mono <= after
    assert clock.real_seconds(2.5) == 2.5
    assert Clock(rate=1.0, anchor=123.0).simulated(1_000.0) == 1_000.0
    started = time.monotonic()
    asyncio.run(clock.sleep(0.1))
    assert 0.1 <= time.monotonic() - started < scaled(0.5)


def test_at_rate_four_time_runs_four_times_faster() -> None:
    fast = Clock(rate=4.0, anchor=time.time() - 10)
    assert fast.now() - time.time() == pytest.approx(30.0, abs=0.1), "10 s after the anchor"
    real0, sim0, mono0 = time.time(), fast.now(), fast.monotonic()
    time.sleep(0.2)
    real1, sim1, mono1 = time.time(), fast.now(), fast.monotonic()
    assert sim1 - sim0 == pytest.approx(4 * (real1 - real0), abs=0.02)
    assert mono1 - mono0 == pytest.approx(4 * (real1 - real0), abs=0.02)
    assert fast.real(fast.now()) == pytest.approx(time.time(), abs=0.01)
    started = time.monotonic()
    asyncio.run(fast.sleep(1.0))
    assert 0.25 <= time.monotonic() - started < scaled(0.6), "a simulated second in 0.25 s"


def test_clocks_with_the_same_anchor_agree() -> None:
    anchor = time.time() - 3600
    first = Clock(rate=4.0, anchor=anchor)
    time.sleep(0.05)
    previous = clock.configure(4.0, anchor)  # as another process would, later
    try:
        assert clock.now() == pytest.approx(first.now(), abs=0.01)
        assert clock.now_ms() == pytest.approx(first.now_ms(), abs=10)
        assert clock.real_seconds(1.0) == 0.25
    finally:
        clock.use(previous)
    assert clock.current() is REAL


def test_a_fast_clock_needs_a_rate_of_at_least_one_and_an_anchor() -> None:
    with pytest.raises(ValueError, match="needs an anchor"):
        clock.configure(4.0)
    with pytest.raises(ValueError, match="≥ 1"):
        Clock(rate=0.5, anchor=0.0)
    assert clock.configure(1.0) is REAL  # real time: no anchor needed
    assert clock.current() is REAL


async def test_the_server_judges_pings_by_its_simulated_clock(
    server_factory: Callable[..., str],
) -> None:
    """FLEET_CLOCK_RATE=4, anchored 100 s ago: the server's time is some 300 s ahead of the real
    one, so a ping 200 s ahead of real time is on time, and one 120 s ahead of the simulated
    time is from the future (FLEET_PING_MAX_FUTURE_S = 60)."""
    anchor = time.time() - 100
    base = server_factory(clock_rate=4.0, clock_anchor=anchor)
    simulated = Clock(rate=4.0, anchor=anchor)
    token = register(base, "van-fast")
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as ws:
        real_ms = int(time.time() * 1000)
        batch = [
            {"lat": HELSINKI[0], "lon": HELSINKI[1], "ts": real_ms + 200_000},
            {"lat": HELSINKI[0], "lon": HELSINKI[1], "ts": simulated.now_ms() + 120_000},
        ]
        ack = await send(ws, json.dumps({"type": "pings", "seq": 1, "pings": batch}))
    assert ack["accepted"] == 1
    assert ack["rejected"] == [{"i": 1, "reason": "future"}]
