"""The ingest pipeline: decode → reject → derive → persist (one Lua call) → publish.

One :class:`Ingestor` per server process; the driver socket and the OsmAnd endpoint both call
:meth:`Ingestor.ingest` with the decoded pings of one vehicle. Pings are taken in timestamp order;
the newest accepted one becomes the live position (published on ``fleet:pos`` by the script);
older ones go to the history only. The batches of all vehicles that arrive in the same instant
are persisted by one call of the script (:class:`server.scripts.GroupedScript`), and their
positions published as one message, one JSON object per line.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from geo.cells import cell_of
from server import keys
from server.lua import load
from server.resp import RespConnection, kwargs_of
from server.scripts import GroupedScript
from server.tracking.filters import Fix, Limits, derive_motion, reject_reason
from server.tracking.wire import Ping, Rejection


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    fix: Fix | None = None  # the vehicle's live position after this batch


def _num(value: float | None) -> float | str:
    return "" if value is None else round(value, 7)  # packed by hiredis as repr() does


LIVE_FIX = ("ts", "lat", "lon")  # the fields of the live hash a Fix is made of


def fix_of(values: Sequence[bytes | None]) -> Fix | None:
    """The Fix in the live hash's ``LIVE_FIX`` values, or None when there is none."""
    ts, lat, lon = values
    if ts is None or lat is None or lon is None:
        return None
    return Fix(float(lat), float(lon), int(ts))


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
        clock: Callable[[], float] = time.time,
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

    async def last_fix(self, vehicle_id: str) -> Fix | None:
        """The stored live position, read once when a connection opens."""
        return fix_of(await self.connection.call("HMGET", keys.live(vehicle_id), *LIVE_FIX))

    async def ingest(
        self, vehicle_id: str, pings: Sequence[Ping], last: Fix | None
    ) -> IngestResult:
        now_ms = int(self.clock() * 1000)
        result = IngestResult(fix=last)
        reasons: dict[str, int] = {}
        args: list[str | int | float] = []
        seen: set[int] = set()
        current = last
        kept = 0
        for index in sorted(range(len(pings)), key=lambda i: pings[i].ts):
            ping = pings[index]
            reason = reject_reason(ping, current, now_ms, self.limits)
            if reason is not None:
                result.rejected.append(Rejection(i=index, reason=reason))
                reasons[reason] = reasons.get(reason, 0) + 1
                continue
            if ping.ts in seen:
                result.duplicates += 1
                continue
            seen.add(ping.ts)
            speed, heading = derive_motion(ping, current)
            cell = cell_of(ping.lat, ping.lon, self.resolution)
            args += [ping.ts, _num(ping.lat), _num(ping.lon), _num(speed), _num(heading),
                     _num(ping.accuracy), cell]  # fmt: skip
            kept += 1
            if current is None or ping.ts > current.ts:
                current = Fix(ping.lat, ping.lon, ping.ts)
        if result.rejected:
            result.rejected.sort(key=lambda r: r.i)
        if not kept and not reasons:
            return result
        for reason, count in reasons.items():
            args += [reason, count]
        reply = await self._script(
            _script_keys(vehicle_id), [vehicle_id, kept, len(reasons), *args]
        )
        accepted, duplicates, _published, ts, lat, lon = reply
        result.accepted = int(accepted)
        result.duplicates += int(duplicates)
        if lat and lon and int(ts) >= 0:
            result.fix = Fix(float(lat), float(lon), int(ts))
        return result
