"""Delivery attempts counted by outcome over time: the error rate, and its alert.

Each drop-off attempt that ends ``delivered`` or ``failed`` is counted in the 10-minute slot it
happened in: ``fleet:outcomes:{YYYYMMDD}`` (UTC day) is a hash with fields ``{slot}:delivered``
and ``{slot}:failed`` (slot = minute of the day // 10), kept 8 days. The error rate over a window
is failed / (delivered + failed) of the slots the window touches: at most 8 small hashes read,
however many orders a day. An order that fails, is retried and then delivered counts one of each:
the rate is of attempts, as the brief's "error rate" of a delivery operation.

The alert (``kind: error_rate``) is raised once when the rate goes above the limit with enough
attempts behind it, and again only after it has come back down (``fleet:alerted:error_rate``
holds the time it was raised, so any process holding the alerts lease knows).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from server import keys

SLOT_S = 600
KEEP_S = 8 * 86_400
OUTCOMES = ("delivered", "failed")


@dataclass(frozen=True, slots=True)
class Attempts:
    delivered: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.delivered + self.failed

    def rate(self) -> float | None:
        """Failed attempts' share; None without any attempt."""
        return self.failed / self.total if self.total else None


@dataclass(frozen=True, slots=True)
class ErrorRateLimit:
    limit: float = 0.08  # alert above this share of failed attempts
    window_s: float = 86_400.0
    min_attempts: int = 20  # fewer attempts in the window say too little to alert on


def _day_and_slot(ms: int) -> tuple[str, int]:
    when = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return when.strftime("%Y%m%d"), (when.hour * 60 + when.minute) * 60 // SLOT_S


def count_attempt(pipe: Any, outcome: str, now_ms: int) -> None:
    """Add to a pipeline: one attempt with ``outcome`` (delivered or failed) at ``now_ms``."""
    day, slot = _day_and_slot(now_ms)
    pipe.hincrby(keys.outcomes(day), f"{slot}:{outcome}", 1)
    pipe.expire(keys.outcomes(day), KEEP_S)


async def attempts(redis: aioredis.Redis, since_ms: int, until_ms: int) -> Attempts:
    """The attempts of the slots from the one holding ``since_ms`` to the one holding
    ``until_ms`` (the window rounded out to whole slots; at most the 8 days kept)."""
    since_ms = max(since_ms, until_ms - KEEP_S * 1000)
    first = since_ms - since_ms % (SLOT_S * 1000)
    days = []
    day = dt.datetime.fromtimestamp(first / 1000, tz=dt.UTC).date()
    last = dt.datetime.fromtimestamp(until_ms / 1000, tz=dt.UTC).date()
    while day <= last:
        days.append(day)
        day += dt.timedelta(days=1)
    async with redis.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.hgetall(keys.outcomes(day.strftime("%Y%m%d")))
        rows = cast("list[dict[bytes, bytes]]", await pipe.execute())
    counts = dict.fromkeys(OUTCOMES, 0)
    for day, row in zip(days, rows, strict=True):
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp() * 1000
        for field, value in row.items():
            slot, _, outcome = field.decode().partition(":")
            start = midnight + int(slot) * SLOT_S * 1000
            if outcome in counts and first <= start <= until_ms:
                counts[outcome] += int(value)
    return Attempts(delivered=counts["delivered"], failed=counts["failed"])


async def recent_attempts(redis: aioredis.Redis, window_s: float, now_ms: int) -> Attempts:
    """The attempts of the ``window_s`` seconds up to ``now_ms`` (see :func:`attempts`)."""
    return await attempts(redis, now_ms - int(window_s * 1000), now_ms)


def above_limit(seen: Attempts, limit: ErrorRateLimit) -> bool:
    """Whether ``seen`` breaks the limit: enough attempts, and too many of them failed."""
    rate = seen.rate()
    return seen.total >= limit.min_attempts and rate is not None and rate > limit.limit
