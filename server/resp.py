"""A lean Redis connection for the hot path: pipelined RESP over one asyncio transport.

redis-py's per-command machinery (a pool checkout, a retry wrapper, a timeout per command, Python
argument encoding, a pipeline object per batch) costs tens of microseconds per call; on the ping
path that is more than Redis spends running the script. Here a command is packed by hiredis (C),
appended to a buffer that is written once per event-loop iteration, and its reply is read by
hiredis and handed to the caller's future in order: every call made in the same iteration shares
one write and, usually, one read.

Two uses: :class:`RespConnection` for commands (the ingest script, ``server.scripts``) and
:class:`RespSubscriber` for pub/sub (the console fan-out, ``server.tracking.console``). Errors are
redis-py's exception types, so callers handle one family: a reply error is
:class:`~redis.exceptions.ResponseError` (``NoScriptError`` for ``NOSCRIPT``), a lost or stuck
connection :class:`~redis.exceptions.ConnectionError`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

Arg = str | bytes | int | float
# hiredis's stub types one-element tuples only; it packs any tuple of arguments.
_pack = cast("Callable[[tuple[Any, ...]], bytes]", hiredis.pack_command)


def kwargs_of(client: aioredis.Redis) -> dict[str, Any]:
    """Where ``client`` connects (address, database, credentials), for a lean connection to the
    same Redis. TLS (``rediss://``) is not supported here yet: a clear error, not a hang."""
    pool = client.connection_pool
    if issubclass(pool.connection_class, SSLConnection):
        raise RedisConnectionError(
            "rediss:// (TLS) is not supported by the ping path's Redis connection yet; "
            "use redis:// on a private network or a local TLS tunnel"
        )
    return dict(pool.connection_kwargs)


def reply_error(error: hiredis.ReplyError) -> ResponseError:
    message = str(error)
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


class _Protocol(asyncio.Protocol):
    def __init__(self, on_reply: Callable[[Any], None] | None = None) -> None:
        self.reader = hiredis.Reader()
        self.pending: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.out: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.on_reply = on_reply  # pub/sub: every reply goes here instead of to a future
        self.flush_scheduled = False
        self.gone = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        pending = self.pending
        while (reply := self.reader.gets()) is not False:
            if self.on_reply is not None and not pending:
                self.on_reply(reply)
                continue
            if not pending:
                continue  # a reply nobody waits for: its caller was failed already
            future, _ = pending.popleft()
            if future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(reply_error(reply))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.gone.set()
        self.fail(RedisConnectionError(f"lost the connection to Redis ({exc or 'closed'})"))

    def abort(self, error: Exception) -> None:
        """Give up on this connection now: its calls fail, new ones go to a fresh one."""
        self.lost = True
        self.gone.set()
        self.fail(error)
        if self.transport is not None:
            self.transport.abort()

    def fail(self, error: Exception) -> None:
        while self.pending:
            future, _ = self.pending.popleft()
            if not future.done():
                future.set_exception(error)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.out and self.transport is not None and not self.lost:
            self.transport.write(b"".join(self.out))
        self.out.clear()


async def _open(kwargs: dict[str, Any], protocol: _Protocol, timeout_s: float) -> None:
    """Connect ``protocol`` as redis-py's connection ``kwargs`` say (host and port, or a Unix
    socket path), then AUTH and SELECT as they ask."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_s):
            if kwargs.get("path"):
                await loop.create_unix_connection(lambda: protocol, kwargs["path"])
            else:
                await loop.create_connection(
                    lambda: protocol, kwargs.get("host", "localhost"), kwargs.get("port", 6379)
                )
            setup: list[tuple[Arg, ...]] = []
            if kwargs.get("password"):
                user = kwargs.get("username")
                setup.append(
                    ("AUTH", user, kwargs["password"]) if user else ("AUTH", kwargs["password"])
                )
            if kwargs.get("db"):
                setup.append(("SELECT", kwargs["db"]))
            for command in setup:
                future = loop.create_future()
                protocol.pending.append((future, time.monotonic()))
                protocol.out.append(_pack(command))
                protocol.flush()
                await future
    except (OSError, TimeoutError) as exc:
        raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc


class RespConnection:
    """One pipelined connection; connects on first use and again after a loss.

    A reply slower than ``timeout_s`` aborts the connection (its pending calls fail with
    ``ConnectionError``); the next call opens a new one. The watchdog runs while
    :meth:`start` is in effect.
    """

    def __init__(self, connection_kwargs: dict[str, Any], *, timeout_s: float = 5.0) -> None:
        self.kwargs = connection_kwargs
        self.timeout_s = timeout_s
        self._protocol: _Protocol | None = None
        self._connecting = asyncio.Lock()
        self._watchdog: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._watchdog = asyncio.get_running_loop().create_task(self._watch(), name="resp-watchdog")

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._protocol is not None:
            self._protocol.abort(RedisConnectionError("the connection was closed"))
        self._protocol = None

    async def _connected(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and not protocol.lost:
            return protocol
        async with self._connecting:
            if self._protocol is None or self._protocol.lost:
                fresh = _Protocol()
                await _open(self.kwargs, fresh, self.timeout_s)
                self._protocol = fresh
            return self._protocol

    async def call(self, *args: Arg) -> Any:
        """Send one command; its reply, or its error raised."""
        protocol = self._protocol
        if protocol is None or protocol.lost:
            protocol = await self._connected()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        protocol.pending.append((future, time.monotonic()))
        protocol.out.append(_pack(args))
        if not protocol.flush_scheduled:
            protocol.flush_scheduled = True
            asyncio.get_running_loop().call_soon(protocol.flush)
        return await future

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.timeout_s / 2))
            protocol = self._protocol
            if protocol is None or not protocol.pending:
                continue
            oldest = protocol.pending[0][1]
            if time.monotonic() - oldest > self.timeout_s:
                protocol.abort(
                    RedisConnectionError(f"Redis did not answer within {self.timeout_s:g} s")
                )


class RespSubscriber:
    """A pub/sub connection: every published message goes to ``on_message(channel, data)``.

    :meth:`run` subscribes, sets ``ready``, then returns only by raising: ``ConnectionError``
    when the connection is lost (the caller resubscribes), or ``CancelledError``.
    """

    def __init__(
        self,
        connection_kwargs: dict[str, Any],
        channels: list[str],
        on_message: Callable[[bytes, bytes], None],
        *,
        timeout_s: float = 5.0,
    ) -> None:
        self.kwargs = connection_kwargs
        self.channels = channels
        self.on_message = on_message
        self.timeout_s = timeout_s

    async def run(self, ready: asyncio.Event | None = None) -> None:
        on_message = self.on_message

        def on_reply(reply: Any) -> None:
            if type(reply) is list and len(reply) == 3 and reply[0] == b"message":
                on_message(reply[1], reply[2])

        protocol = _Protocol(on_reply)
        await _open(self.kwargs, protocol, self.timeout_s)
        try:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            protocol.pending.append((future, time.monotonic()))
            protocol.out.append(_pack(("SUBSCRIBE", *self.channels)))
            protocol.flush()
            async with asyncio.timeout(self.timeout_s):
                await future  # the first confirmation; the others come to on_reply, ignored
            if ready is not None:
                ready.set()
            await protocol.gone.wait()
            raise RedisConnectionError("lost the pub/sub connection to Redis")
        finally:
            if protocol.transport is not None:
                protocol.transport.close()
