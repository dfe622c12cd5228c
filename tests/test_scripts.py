"""The grouped script runner against a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from server.resp import RespConnection
from server.scripts import GroupedScript

# Each part: one key to INCR and one value to echo; the head: a key counting the calls.
# ARGV: head value, number of parts, then per part its number of values and the values.
INCR_AND_ECHO = """
redis.call('INCR', KEYS[1])
local out, at = {}, 3
for p = 1, tonumber(ARGV[2]) do
  local k = tonumber(ARGV[at])
  redis.call('INCR', KEYS[1 + p])
  out[#out + 1] = ARGV[at + 1]
  out[#out + 1] = ARGV[1]
  at = at + 1 + k
end
return out
"""


def script_for(client: aioredis.Redis) -> GroupedScript:
    connection = RespConnection(dict(client.connection_pool.connection_kwargs))
    return GroupedScript(
        connection, INCR_AND_ECHO, head_keys=["calls"], head_args=lambda: ["head"], reply_width=2
    )


@contextlib.asynccontextmanager
async def running(client: aioredis.Redis) -> AsyncIterator[GroupedScript]:
    script = script_for(client)
    script.start()
    try:
        yield script
    finally:
        script.stop()
        await script._connection.close()


async def test_parts_sent_together_are_one_call_and_each_gets_its_own_reply(
    redis_url: str,
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    async with running(client) as script:
        replies = await asyncio.gather(*(script(["counter"], [f"r{i}"]) for i in range(200)))
        assert replies == [[f"r{i}".encode(), b"head"] for i in range(200)]
        assert await client.get("counter") == b"200"
        assert int(await client.get("calls") or 0) <= 2, "200 parts, one group (or two)"
        # Redis forgot the script (a restart, SCRIPT FLUSH): it is loaded again transparently.
        await client.script_flush()
        assert await script(["counter"], ["again"]) == [b"again", b"head"]
    await client.aclose()


async def test_a_failing_part_fails_only_its_own_caller(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    await client.set("text", "not a number")
    async with running(client) as script:
        first, bad, last = await asyncio.gather(
            script(["number"], ["ok"]),
            script(["text"], ["no"]),
            script(["other"], ["fine"]),
            return_exceptions=True,
        )
        assert first == [b"ok", b"head"]
        assert isinstance(bad, ResponseError)
        assert last == [b"fine", b"head"]
        # The group's first try had written the first part before failing; sent again on its
        # own, it is written again. The ingest script finds such re-sent pings itself
        # (duplicates by timestamp), so a ping is never stored twice.
        assert await client.get("number") == b"2"
        assert await client.get("other") == b"1"
    await client.aclose()


async def test_calling_before_start_is_a_clear_error(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    with pytest.raises(RuntimeError, match="start"):
        await script_for(client)(["k"], ["v"])
    await client.aclose()
