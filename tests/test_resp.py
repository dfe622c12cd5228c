"""The lean Redis connection of the hot path, against a real Redis."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from server.resp import RespConnection, RespSubscriber, kwargs_of


def kwargs_for(url: str, **extra: object) -> dict[str, object]:
    kwargs: dict[str, object] = kwargs_of(aioredis.Redis.from_url(url))
    kwargs.update(extra)
    return kwargs


async def test_replies_come_back_to_their_own_callers_in_any_number(redis_url: str) -> None:
    connection = RespConnection(kwargs_for(redis_url, db=3))
    connection.start()
    try:
        replies = await asyncio.gather(*(connection.call("INCR", "resp:n") for _ in range(500)))
        assert sorted(replies) == list(range(1, 501))
        await connection.call("SET", "resp:text", "not a number")
        good, bad = await asyncio.gather(
            connection.call("ECHO", "fine"),
            connection.call("INCR", "resp:text"),
            return_exceptions=True,
        )
        assert good == b"fine"
        assert isinstance(bad, ResponseError)
        check = aioredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3")
        assert await check.get("resp:n") == b"500", "the database the URL names was selected"
        await check.aclose()
    finally:
        await connection.close()


async def test_a_killed_connection_fails_its_calls_and_the_next_call_reconnects(
    redis_url: str,
) -> None:
    connection = RespConnection(kwargs_for(redis_url))
    connection.start()
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await connection.call("CLIENT", "SETNAME", "resp-victim")
        waiting = asyncio.ensure_future(connection.call("BLPOP", "resp:never", 5))
        await asyncio.sleep(0.2)
        await admin.client_kill_filter(skipme=True, _type="normal", laddr=None, user=None)
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(waiting, 5)
        assert await connection.call("PING") == b"PONG"
    finally:
        await connection.close()
        await admin.aclose()


async def test_a_reply_that_never_comes_times_out_and_the_connection_is_renewed(
    redis_url: str,
) -> None:
    connection = RespConnection(kwargs_for(redis_url), timeout_s=0.5)
    connection.start()
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(RedisConnectionError, match="did not answer"):
            await connection.call("BLPOP", "resp:never", 10)
        assert asyncio.get_running_loop().time() - started < 3
        assert await connection.call("ECHO", "again") == b"again"
    finally:
        await connection.close()


async def test_an_unreachable_redis_is_a_connection_error(unused_tcp_port: int) -> None:
    connection = RespConnection({"host": "127.0.0.1", "port": unused_tcp_port}, timeout_s=1)
    with pytest.raises(RedisConnectionError, match="cannot connect"):
        await connection.call("PING")


async def test_the_subscriber_hands_over_messages_and_says_when_it_is_cut_off(
    redis_url: str,
) -> None:
    got: list[tuple[bytes, bytes]] = []
    subscriber = RespSubscriber(
        kwargs_for(redis_url), ["resp:a", "resp:b"], lambda c, d: got.append((c, d))
    )
    ready = asyncio.Event()
    running = asyncio.ensure_future(subscriber.run(ready))
    publisher = aioredis.Redis.from_url(redis_url)
    try:
        await asyncio.wait_for(ready.wait(), 5)
        await asyncio.sleep(0.1)  # the second channel's confirmation
        for i in range(100):
            await publisher.publish("resp:a" if i % 2 else "resp:b", f"m{i}")
        for _ in range(50):
            if len(got) == 100:
                break
            await asyncio.sleep(0.05)
        assert [d for _, d in got] == [f"m{i}".encode() for i in range(100)]
        assert {c for c, _ in got} == {b"resp:a", b"resp:b"}
        await publisher.client_kill_filter(_type="pubsub")
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(running, 5)
    finally:
        running.cancel()
        with contextlib.suppress(BaseException):
            await running
        await publisher.aclose()


def test_tls_is_refused_with_a_clear_error_rather_than_a_hang() -> None:
    with pytest.raises(RedisConnectionError, match="rediss://"):
        kwargs_of(aioredis.Redis.from_url("rediss://127.0.0.1:6380/0"))
