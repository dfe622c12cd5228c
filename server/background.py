"""Helpers for the server's long-running background tasks."""

from __future__ import annotations

import asyncio
import logging
from typing import Any


async def stop_task(
    task: asyncio.Task[Any], log: logging.Logger, *, timeout_s: float = 5.0
) -> None:
    """Cancel ``task`` and wait for it to end, repeating the cancellation while it runs.

    One cancellation is not always enough: Python 3.11's ``asyncio.wait_for``, which redis-py
    wraps around every command, drops a cancellation that arrives just as the command completes,
    and the task's loop then runs on. A task still running after ``timeout_s`` is reported and
    left behind rather than hang the server's shutdown.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not task.done():
        if loop.time() >= deadline:
            log.error(
                "%s did not stop within %.0f s of being cancelled", task.get_name(), timeout_s
            )
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(0.5, max(0.0, deadline - loop.time())))
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s had failed: %r", task.get_name(), exc)
