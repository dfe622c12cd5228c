"""Stopping background tasks: a cancellation that gets lost must not hang the shutdown."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from dispatch.errors import ProblemError
from geo.roads import Roads
from server.background import stop_task
from server.dispatching.planner import Planner, RoundSummary
from server.lease import Lease, run_leased
from server.orders.crypto import Sealer, load_or_create_key
from server.orders.store import OrderStore
from tests.conftest import scaled

log = logging.getLogger("test.background")


async def test_a_task_that_drops_its_first_cancellation_is_still_stopped() -> None:
    loop = asyncio.get_running_loop()
    command = loop.create_future()
    rounds = 0

    async def keep_going() -> None:  # the shape of every loop of ours that awaits redis-py
        nonlocal command, rounds
        while True:
            await asyncio.wait_for(command, 5)
            rounds += 1
            command = loop.create_future()

    task = asyncio.create_task(keep_going())
    await asyncio.sleep(0)  # it waits for the command
    command.set_result(None)  # the reply comes in the same moment as the cancellation
    await stop_task(task, log, timeout_s=2)
    assert task.cancelled()
    if sys.version_info < (3, 12):  # 3.11's wait_for returned the reply and lost the cancel
        assert rounds == 1


async def test_a_task_that_never_stops_is_reported_and_left_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    holding_on = True

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if not holding_on:
                    raise

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR):
        await asyncio.wait_for(stop_task(task, log, timeout_s=0.3), 5)
    assert not task.done()
    assert "stubborn did not stop" in caplog.text
    holding_on = False  # the test's own clean-up
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_task_that_failed_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise ValueError("bad state")

    task = asyncio.create_task(broken(), name="broken")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR):
        await stop_task(task, log)
    assert "broken had failed: ValueError('bad state')" in caplog.text


async def test_a_leased_job_that_fails_runs_again_at_its_next_round(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    rounds: list[int] = []
    third = asyncio.Event()

    async def sweep() -> None:  # a bug met once: the job goes on at its next round
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise KeyError("o-1")
        if len(rounds) == 3:
            third.set()

    job = asyncio.create_task(
        run_leased(Lease(client, "test:lease", ttl_s=5), sweep, interval_s=0.01, log=log)
    )
    try:
        await asyncio.wait_for(third.wait(), scaled(5))
    finally:
        await stop_task(job, log)
        await client.aclose()
    assert len(rounds) >= 3
    [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.getMessage().endswith("sweep failed")
    assert failure.exc_info is not None
    assert failure.exc_info[0] is KeyError


async def test_the_planner_plans_again_after_a_round_that_failed(
    redis_url: str, andorra: Roads, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    first, second = asyncio.Event(), asyncio.Event()

    class Failing(Planner):
        """The real loop, with a round that meets a bug the first time."""

        rounds_tried = 0

        async def _plan_once(self, *, idle: bool, fresh: bool) -> RoundSummary:
            self.rounds_tried += 1
            if self.rounds_tried == 1:
                first.set()
                raise ProblemError("task o-1 is locked more often than it has stops")
            second.set()
            return RoundSummary(vehicles=0, orders=0, assigned=0, dropped={},
                                changed_routes=[], seconds=0.0)  # fmt: skip

    planner = Failing(client, OrderStore(client, Sealer(load_or_create_key(tmp_path))), andorra,
                      debounce_s=0.01)  # fmt: skip
    loop = asyncio.create_task(planner.run())
    try:
        planner.request()
        await asyncio.wait_for(first.wait(), scaled(5))
        planner.request()  # the next event: planned, though the last round failed
        await asyncio.wait_for(second.wait(), scaled(5))
    finally:
        await stop_task(loop, log)
        await client.aclose()
    [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.exc_info is not None
    assert failure.exc_info[0] is ProblemError
