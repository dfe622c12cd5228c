"""Stopping background tasks: a cancellation that gets lost must not hang the shutdown."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from server.background import stop_task

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
