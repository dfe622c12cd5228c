"""Run one Lua script for many callers at once: the parts that arrive together make one call.

Thousands of driver sockets each need their batch persisted before they ack it. A
:class:`GroupedScript` takes each caller's *part* (its keys and values), and once per event-loop
iteration sends every part queued so far as one ``EVALSHA`` on its own pipelined connection
(a :class:`server.resp.RespConnection`): Redis pays the cost of a script call once per group, and
each caller gets its own slice of the reply before it acks anything.

The script receives ``head_keys`` then every part's keys as ``KEYS``; as ``ARGV`` the values of
``head_args()`` (read at send time), the number of parts, then for each part its number of values
and the values. It returns ``reply_width`` values per part, in order.

When Redis answers ``NOSCRIPT`` (a restart, ``SCRIPT FLUSH``) the script is loaded and the group
sent again. When the script fails (one part's key of the wrong type, say), each part of the group
is sent again on its own, so one bad part fails only its own caller; parts the failed group had
already written are then seen as duplicates by the script, never written twice.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import NoScriptError, RedisError, ResponseError

from server.resp import RespConnection

Value = str | bytes | int | float
Part = tuple[Sequence[str], Sequence[Value], "asyncio.Future[list[Any]]"]


class GroupedScript:
    def __init__(
        self,
        connection: RespConnection,
        source: str,
        *,
        head_keys: Sequence[str],
        head_args: Callable[[], Sequence[Value]],
        reply_width: int,
        max_group: int = 500,
    ) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self.head_keys = list(head_keys)
        self.head_args = head_args
        self.reply_width = reply_width
        self.max_group = max_group
        self._connection = connection
        self._queue: list[Part] = []
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()
        self._started = False

    def start(self) -> None:
        self._started = True

    def stop(self) -> None:
        """Stop taking parts; callers still waiting get an error (the server is stopping)."""
        self._started = False
        for task in list(self._sending):
            task.cancel()
        _deliver(self._queue, RedisError("the server is shutting down"), self.reply_width)
        self._queue.clear()

    async def __call__(self, keys: Sequence[str], args: Sequence[Value]) -> list[Any]:
        """Run the script for one part; that part's ``reply_width`` values."""
        if not self._started:
            raise RuntimeError("GroupedScript.start() was not awaited")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._queue.append((keys, args, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._send_queued)
        return await future

    def _send_queued(self) -> None:
        self._scheduled = False
        queue, self._queue = self._queue, []
        for first in range(0, len(queue), self.max_group):
            task = asyncio.get_running_loop().create_task(
                self._send(queue[first : first + self.max_group])
            )
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, parts: list[Part]) -> None:
        try:
            reply: Any = await self._call(parts)
        except ResponseError as exc:
            if len(parts) == 1:
                reply = exc
            else:  # find the part that fails: each on its own
                for part in parts:
                    await self._send([part])
                return
        except (RedisError, OSError) as exc:
            reply = exc
        except asyncio.CancelledError:  # stopping: the callers must not wait forever
            _deliver(parts, RedisError("the server is shutting down"), self.reply_width)
            raise
        _deliver(parts, reply, self.reply_width)

    async def _call(self, parts: list[Part]) -> Any:
        keys = list(self.head_keys)
        args: list[Value] = [*self.head_args(), len(parts)]
        for part_keys, part_args, _ in parts:
            keys += part_keys
            args.append(len(part_args))
            args += part_args
        try:
            return await self._connection.call("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self._connection.call("SCRIPT", "LOAD", self.source)
            return await self._connection.call("EVALSHA", self.sha, len(keys), *keys, *args)


def _deliver(parts: list[Part], reply: Any, width: int) -> None:
    """Hand each part its slice of ``reply``, or the error to every part."""
    for index, (_, _, future) in enumerate(parts):
        if future.done():  # the caller went away
            continue
        if isinstance(reply, BaseException):
            future.set_exception(reply)
        else:
            future.set_result(reply[index * width : (index + 1) * width])
