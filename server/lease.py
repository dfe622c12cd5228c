"""A Redis lease: among several server processes, one at a time runs a periodic job."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server import clock


class Lease:
    """``await lease.hold()`` is True for the one holder of ``key``; it lapses after ``ttl_s``
    unless the holder renews it (by calling ``hold`` again), so a dead holder is replaced."""

    def __init__(self, redis: aioredis.Redis, key: str, *, ttl_s: float) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = int(ttl_s * 1000)
        self.owner = f"{os.getpid()}-{id(self)}"

    async def hold(self) -> bool:
        if await self.redis.set(self.key, self.owner, nx=True, px=self.ttl_ms):
            return True
        holder = cast("bytes | None", await self.redis.get(self.key))
        if holder is not None and holder.decode() == self.owner:
            await self.redis.pexpire(self.key, self.ttl_ms)
            return True
        return False


async def run_leased(
    lease: Lease, job: Callable[[], Awaitable[Any]], *, interval_s: float, log: logging.Logger
) -> None:
    """Run ``job`` every ``interval_s`` while holding ``lease``, until cancelled; a Redis
    failure is logged and the next round tries again, and so is any other error (with its
    traceback): a bug met in one round must not end the job for the process's life."""
    name = getattr(job, "__qualname__", "a leased job")
    while True:
        try:
            if await lease.hold():
                await job()
        except (RedisError, OSError) as exc:
            log.warning("%s failed: %s", name, exc)
        except Exception:
            log.exception("%s failed", name)
        await clock.sleep(interval_s)
