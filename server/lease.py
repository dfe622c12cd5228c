"""A Redis lease: among several server processes, one at a time runs a periodic job."""

from __future__ import annotations

import os
from typing import cast

import redis.asyncio as aioredis


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
