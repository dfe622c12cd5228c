"""The coalescing script runner against a real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from server.scripts import CoalescingScript

INCR_AND_ECHO = "redis.call('INCR', KEYS[1]); return ARGV[1]"


async def test_concurrent_calls_each_get_their_own_reply(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    script = CoalescingScript(client, INCR_AND_ECHO, writers=2, max_batch=16)
    await script.start()
    try:
        replies = await asyncio.gather(*(script(["counter"], [f"r{i}"]) for i in range(200)))
        assert replies == [f"r{i}".encode() for i in range(200)]
        assert await client.get("counter") == b"200"
        # Redis forgot the script (a restart, SCRIPT FLUSH): it is loaded again transparently.
        await client.script_flush()
        assert await script(["counter"], ["again"]) == b"again"
    finally:
        await script.stop()
        await client.aclose()


async def test_an_error_reaches_only_its_own_caller(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    await client.set("text", "not a number")
    script = CoalescingScript(client, INCR_AND_ECHO)
    await script.start()
    try:
        good, bad = await asyncio.gather(
            script(["number"], ["ok"]), script(["text"], ["no"]), return_exceptions=True
        )
        assert good == b"ok"
        assert isinstance(bad, ResponseError)
    finally:
        await script.stop()
        await client.aclose()


async def test_calling_before_start_is_a_clear_error(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    with pytest.raises(RuntimeError, match="start"):
        await CoalescingScript(client, INCR_AND_ECHO)(["k"], ["v"])
    await client.aclose()
