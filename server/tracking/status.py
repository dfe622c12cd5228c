"""Vehicle status — online, stale, offline — from the age of its newest ping.

One process at a time (a Redis lease, ``fleet:lease:status``) sweeps ``fleet:lastseen`` every
``interval_s``, compares each vehicle's status with ``fleet:status`` and, for each change, writes
the new one and publishes a ``status`` event on ``fleet:events`` (also kept in the capped stream
``fleet:events:log``)::

    {"type": "status", "vehicle_id": "van-7", "status": "stale", "previous": "online",
     "at": 1764064800000}

A vehicle whose status changes but which is no longer registered (removed while a ping of its
was on the way) has its live state forgotten instead (``forget_live_state``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

import redis.asyncio as aioredis

from geo.cells import DEFAULT_RESOLUTION
from server import clock as server_clock
from server import keys
from server.events import queue_event
from server.lease import Lease, run_leased
from server.tracking.vehicles import forget_live_state

log = logging.getLogger("fleet.status")

PAGE = 1000  # vehicles read per round trip
FULL_PASS_S = 60.0  # how often every vehicle is read (those the windowed passes cannot see: a
# vehicle whose first ping was already stale, say)


def vehicle_status(age_s: float, *, stale_after_s: float, offline_after_s: float) -> str:
    """``online`` below ``stale_after_s``, ``stale`` below ``offline_after_s``, else ``offline``.

    >>> vehicle_status(5, stale_after_s=60, offline_after_s=300)
    'online'
    >>> vehicle_status(60, stale_after_s=60, offline_after_s=300)
    'stale'
    """
    if age_s < stale_after_s:
        return "online"
    return "stale" if age_s < offline_after_s else "offline"


class StatusSweeper:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        stale_after_s: float,
        offline_after_s: float,
        interval_s: float = 1.0,
        resolution: int = DEFAULT_RESOLUTION,
        clock: Callable[[], float] = server_clock.now,
    ) -> None:
        self.redis = redis
        self.resolution = resolution
        self.stale_after_s = stale_after_s
        self.offline_after_s = offline_after_s
        self.interval_s = interval_s
        self.clock = clock
        self.lease = Lease(redis, keys.STATUS_LEASE, ttl_s=max(3 * interval_s, 2.0))
        self._last_pass: float | None = None  # the clock at the last pass
        self._last_full = 0.0

    async def sweep(self) -> list[dict[str, object]]:
        """One pass: the status events it published.

        Only vehicles whose status may have changed since the last pass are read: those last
        seen before the stale threshold but after the offline threshold of the last pass
        (vehicles coming online are set so by the ingest script itself). The first pass, and
        one every ``FULL_PASS_S``, reads every vehicle, a page at a time."""
        now, last = self.clock(), self._last_pass
        if last is None or now - self._last_full >= FULL_PASS_S:
            self._last_full = now
            seen = await self._everyone()
        else:
            since = (last - self.offline_after_s - 1.0) * 1000
            seen = cast(
                "list[tuple[bytes, float]]",
                await self.redis.zrange(
                    keys.LASTSEEN, int(since), int((now - self.stale_after_s) * 1000),
                    byscore=True, withscores=True,
                ),
            )  # fmt: skip
        self._last_pass = now
        events: list[dict[str, object]] = []
        for first in range(0, len(seen), PAGE):
            page = seen[first : first + PAGE]
            stored = cast(
                "list[bytes | None]", await self.redis.hmget(keys.STATUS, [v for v, _ in page])
            )
            for (raw_id, ts), previous in zip(page, stored, strict=True):
                status = vehicle_status(
                    now - ts / 1000.0,
                    stale_after_s=self.stale_after_s,
                    offline_after_s=self.offline_after_s,
                )
                if previous is None or previous.decode() != status:
                    events.append(
                        {
                            "type": "status",
                            "vehicle_id": raw_id.decode(),
                            "status": status,
                            "previous": previous.decode() if previous else None,
                            "at": int(now * 1000),
                        }
                    )
        if events:
            events = await self._registered(events)
        if events:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    keys.STATUS, mapping={str(e["vehicle_id"]): str(e["status"]) for e in events}
                )
                for event in events:
                    queue_event(pipe, event)
                await pipe.execute()
        return events

    async def _registered(self, events: list[dict[str, object]]) -> list[dict[str, object]]:
        """The events of registered vehicles. A vehicle removed while a ping of its was on the
        way has live state again with nobody to own it: it is forgotten here, when it goes
        stale, and consoles are told again that it is gone."""
        ids = [str(e["vehicle_id"]) for e in events]
        known: list[bytes | None] = []
        for first in range(0, len(ids), PAGE):
            page = ids[first : first + PAGE]
            known += cast("list[bytes | None]", await self.redis.hmget(keys.VEHICLES, page))
        gone = [i for i, record in zip(ids, known, strict=True) if record is None]
        if gone:
            await forget_live_state(self.redis, gone, self.resolution)
            async with self.redis.pipeline(transaction=False) as pipe:
                for vehicle_id in gone:
                    queue_event(
                        pipe, {"type": "vehicle", "vehicle_id": vehicle_id, "removed": True}
                    )
                await pipe.execute()
        return [e for e, record in zip(events, known, strict=True) if record is not None]

    async def _everyone(self) -> list[tuple[bytes, float]]:
        """Every vehicle's last-seen time, read a page at a time (the event loop serves pings
        between pages)."""
        seen: list[tuple[bytes, float]] = []
        while True:
            page = cast(
                "list[tuple[bytes, float]]",
                await self.redis.zrange(
                    keys.LASTSEEN, len(seen), len(seen) + PAGE - 1, withscores=True
                ),
            )
            seen += page
            if len(page) < PAGE:
                return seen

    async def run(self) -> None:
        """Sweep every ``interval_s`` while holding the lease, until cancelled."""
        await run_leased(self.lease, self.sweep, interval_s=self.interval_s, log=log)
