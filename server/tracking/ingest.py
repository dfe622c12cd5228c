"""The ingest pipeline: decode → reject → derive → persist (one Lua call) → publish.

One :class:`Ingestor` per server process; the driver socket and the OsmAnd endpoint both call
:meth:`Ingestor.ingest` with the decoded pings of one vehicle. Pings are taken in timestamp order;
the newest accepted one becomes the live position (published on ``fleet:pos`` by the script);
older ones go to the history only. The batches of all vehicles that arrive in the same instant
are persisted by one call of the script (:class:`server.scripts.GroupedScript`), and their
positions published as one message, one JSON object per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from geo.cells import cell_of
from server import clock as server_clock
from server import keys
from server.lua import load
from server.resp import RespConnection, kwargs_of
from server.scripts import GroupedScript, Value
from server.tracking.filters import Fix, Limits, derive_motion, metres_from, reject_reason
from server.tracking.queries import Position, optional_float
from server.tracking.wire import Ping, Rejection

log = logging.getLogger("fleet.ingest")


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    fix: Fix | None = None  # the vehicle's live position after this batch


# What is stored, to a precision a phone's fix has: degrees to 7 decimals (about 1 cm), speed
# (m/s) to 3, heading (degrees) and accuracy (m) to 1. Printf-style formatting: a float's
# repr() cost 0.8 µs on the benchmark machine, and a ping has five. A fix with its speed and
# heading known (given or derived: the common case) takes one format of the two below.
_PACKED = "%d,%.7f,%.7f,%s,%s,%s"
_PACKED_MOVING = "%d,%.7f,%.7f,%.3f,%.1f,"
_PACKED_MOVING_ACCURACY = "%d,%.7f,%.7f,%.3f,%.1f,%.1f"


def _fixed(value: float | None, spec: str) -> str:
    return "" if value is None else spec % value


def _packed(ping: Ping, speed: float | None, heading: float | None) -> str:
    """A ping as the track stores it: ``ts,lat,lon,speed,heading,accuracy`` ('' = unknown)."""
    if speed is not None and heading is not None:
        if ping.accuracy is None:
            return _PACKED_MOVING % (ping.ts, ping.lat, ping.lon, speed, heading)
        return _PACKED_MOVING_ACCURACY % (
            ping.ts, ping.lat, ping.lon, speed, heading, ping.accuracy
        )  # fmt: skip
    return _PACKED % (
        ping.ts, ping.lat, ping.lon, _fixed(speed, "%.3f"), _fixed(heading, "%.1f"),
        _fixed(ping.accuracy, "%.1f"),
    )  # fmt: skip


_encode = msgspec.json.Encoder().encode


LIVE_FIX = ("ts", "lat", "lon")  # the fields of the live hash a Fix is made of


def fix_of(values: Sequence[bytes | None]) -> Fix | None:
    """The Fix in the live hash's ``LIVE_FIX`` values, or None when there is none."""
    ts, lat, lon = values
    if ts is None or lat is None or lon is None:
        return None
    return Fix(float(lat), float(lon), int(ts))


def _stamps(pings: Sequence[Ping]) -> Callable[[int], int]:
    """The sort key that puts a batch's pings in timestamp order (by index)."""
    return [ping.ts for ping in pings].__getitem__


@functools.lru_cache(maxsize=100_000)
def _script_keys(vehicle_id: str) -> tuple[str, str, str]:
    return keys.live(vehicle_id), keys.track(vehicle_id), keys.late(vehicle_id)


class Ingestor:
    """Runs the pipeline for one vehicle's batch; shared by every connection of a process."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        resolution: int,
        limits: Limits,
        stale_after_s: float = 60.0,
        clock: Callable[[], float] = server_clock.now,
    ) -> None:
        self.redis = redis
        self.resolution = resolution
        self.limits = limits
        self.clock = clock
        self._cell_prefix = keys.cell_prefix(resolution)
        self._retention_ms = int(limits.retention_s * 1000)
        self._stale_ms = int(stale_after_s * 1000)
        # The ping path's own lean connection (server.resp): the script, and the reads a driver
        # connection makes when it opens, never wait for redis-py's pool.
        self.connection = RespConnection(kwargs_of(redis))
        # Pings this process stored and found stored already, since it started; added to the
        # fleet-wide counters (``fleet:stats:pings``) by :meth:`flush_counts`, off the ping path.
        self.accepted = 0
        self.duplicates = 0
        self._flushed = (0, 0)
        self._script = GroupedScript(
            self.connection,
            load("ingest.lua"),
            head_keys=[keys.LASTSEEN, keys.REJECTS, keys.STATUS, keys.EVENTS_LOG],
            head_args=self._head_args,
            reply_width=6,
        )

    def _head_args(self) -> list[str | int]:
        now_ms = int(self.clock() * 1000)
        return [self._cell_prefix, now_ms - self._retention_ms, self._retention_ms,
                keys.POSITIONS_CHANNEL, now_ms, self._stale_ms, keys.EVENTS_CHANNEL]  # fmt: skip

    async def start(self) -> None:
        self.connection.start()
        self._script.start()

    async def stop(self) -> None:
        self._script.stop()
        await self.connection.close()

    async def flush_counts(self) -> None:
        """Add what this process counted since the last flush to ``fleet:stats:pings``."""
        accepted, duplicates = self.accepted, self.duplicates
        then_accepted, then_duplicates = self._flushed
        if (accepted, duplicates) == self._flushed:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(keys.PING_COUNTS, "accepted", accepted - then_accepted)
            pipe.hincrby(keys.PING_COUNTS, "duplicates", duplicates - then_duplicates)
            await pipe.execute()
        self._flushed = (accepted, duplicates)

    async def count_forever(self, every_s: float = 1.0) -> None:
        """:meth:`flush_counts` every ``every_s`` (real time) until cancelled, and once more."""
        try:
            while True:
                await asyncio.sleep(every_s)
                try:
                    await self.flush_counts()
                except (RedisError, OSError) as exc:  # counted again next time
                    log.warning("could not add the ping counts: %s", exc)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await self.flush_counts()

    async def last_fix(self, vehicle_id: str) -> Fix | None:
        """The stored live position, read once when a connection opens."""
        return fix_of(await self.connection.call("HMGET", keys.live(vehicle_id), *LIVE_FIX))

    async def ingest(
        self, vehicle_id: str, pings: Sequence[Ping], last: Fix | None
    ) -> IngestResult:
        now_ms = int(self.clock() * 1000)
        limits = self.limits
        result = IngestResult(fix=last)
        reasons: dict[str, int] = {}
        packed: list[str] = []
        # What the next ping is checked against: the stored fix, then the newest accepted ping.
        current: Fix | Ping | None = last
        newest: str | None = None  # the newest ping, packed
        stored_ts = -1  # the last accepted ping's ts: sorted, a repeat of it comes next
        order = range(1) if len(pings) == 1 else sorted(range(len(pings)), key=_stamps(pings))
        for index in order:
            ping = pings[index]
            metres = metres_from(current, ping)
            reason = reject_reason(ping, current, now_ms, limits, metres)
            if reason is not None:
                result.rejected.append(Rejection(i=index, reason=reason))
                reasons[reason] = reasons.get(reason, 0) + 1
                continue
            if ping.ts == stored_ts:
                result.duplicates += 1
                continue
            stored_ts = ping.ts
            speed, heading = derive_motion(ping, current, metres)
            newest = _packed(ping, speed, heading)
            packed.append(newest)
            if current is None or ping.ts > current.ts:
                current = ping
        if result.rejected:
            result.rejected.sort(key=lambda r: r.i)
        if newest is None and not reasons:
            return result
        args: list[Value] = [vehicle_id, len(packed), len(reasons)]
        args += self._newest(vehicle_id, newest)
        args.append(";".join(packed))
        for reason, count in reasons.items():
            args += [reason, count]
        reply = await self._script(_script_keys(vehicle_id), args)
        accepted, duplicates, _published, ts, lat, lon = reply
        result.accepted = int(accepted)
        result.duplicates += int(duplicates)
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        if lat and lon and int(ts) >= 0:
            result.fix = Fix(float(lat), float(lon), int(ts))
        return result

    def _newest(self, vehicle_id: str, newest: str | None) -> list[Value]:
        """The script's values for the batch's newest ping (the live position, if it is newer
        than the stored one): ts lat lon speed heading accuracy as the track stores them, its
        cell, and the position as published on ``fleet:pos``."""
        if newest is None:
            return ["", "", "", "", "", "", "", ""]
        fields = newest.split(",")
        ts, lat, lon, speed, heading, accuracy = fields
        # The position as stored, read back from its text: what is published is what is kept.
        at_lat, at_lon = float(lat), float(lon)
        cell = cell_of(at_lat, at_lon, self.resolution)
        position = Position(vehicle_id, at_lat, at_lon, int(ts), optional_float(speed),
                            optional_float(heading), optional_float(accuracy), cell)  # fmt: skip
        return [*fields, cell, _encode(position)]
