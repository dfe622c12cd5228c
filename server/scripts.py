"""Run one Lua script for many callers at once: calls that arrive together share a pipeline.

Thousands of driver sockets each need one script call per batch. Sent one by one, redis-py's
per-command machinery (pool checkout, retries, timeouts, parsing) costs more CPU than Redis spends
running the script. A :class:`CoalescingScript` queues the calls; ``writers`` background tasks
each take everything queued (up to ``max_batch``) and send it as one pipeline of ``EVALSHA``: one
round trip per group of batches instead of one per batch, and each caller still gets its own
reply (or its own exception) before it acks anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from server.background import stop_task

log = logging.getLogger("fleet.scripts")

Call = tuple[Sequence[str], Sequence[str | int | float], "asyncio.Future[Any]"]


class CoalescingScript:
    def __init__(
        self, redis: aioredis.Redis, source: str, *, writers: int = 2, max_batch: int = 256
    ) -> None:
        self.redis = redis
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self.max_batch = max_batch
        self._writers = writers
        self._queue: list[Call] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the writers. The script is loaded now if Redis answers, else on first use."""
        with contextlib.suppress(RedisError, OSError):
            await self.redis.script_load(self.source)
        self._tasks = [
            asyncio.create_task(self._run(), name=f"script-writer-{i}")
            for i in range(self._writers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            await stop_task(task, log)
        self._fail(self._queue)
        self._queue.clear()

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        if not self._tasks:
            raise RuntimeError("CoalescingScript.start() was not awaited")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((keys, args, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._queue:
                self._wake.clear()
                continue
            calls = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            if not self._queue:
                self._wake.clear()
            await self._send(calls)

    async def _send(self, calls: list[Call]) -> None:
        replies: list[Any]
        try:
            replies = await self._pipeline(calls)
            if any(isinstance(r, NoScriptError) for r in replies):  # Redis restarted: reload
                await self.redis.script_load(self.source)
                replies = await self._pipeline(calls)
        except (RedisError, OSError) as exc:
            replies = [exc] * len(calls)
        except asyncio.CancelledError:  # stopped mid-call: its callers must not wait forever
            self._fail(calls)
            raise
        self._deliver(calls, replies)

    @classmethod
    def _fail(cls, calls: list[Call]) -> None:
        """Answer calls that will not be sent: the server is stopping."""
        cls._deliver(calls, [RedisError("the server is shutting down")] * len(calls))

    @staticmethod
    def _deliver(calls: list[Call], replies: list[Any]) -> None:
        for (_, _, future), reply in zip(calls, replies, strict=True):
            if future.done():  # the caller went away
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _pipeline(self, calls: list[Call]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in calls:
                pipe.evalsha(self.sha, len(keys), *keys, *args)
            return await pipe.execute(raise_on_error=False)
