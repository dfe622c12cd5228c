"""The server's clock: real time, or a simulated time that runs ``rate`` times faster.

Simulated time is ``anchor + (time.time() - anchor) * rate``: at the real Unix time ``anchor``
both agree, and every process configured with the same rate and anchor reads the same time (the
servers of ``fleet simulate --speed N`` and the simulator itself). At rate 1 (the default) every
function here is exactly :func:`time.time`, :func:`time.monotonic` or :func:`asyncio.sleep`.

Which time is which in the server: what happens in the world runs on this clock (ping
timestamps and their checks, order time nodes, ETAs, traffic events' start and end, and the
intervals of the background loops: planning debounce, ETA refresh, status and alert sweeps,
console frames). What protects against a dead peer or measures compute stays in real time
(socket, Redis and shutdown timeouts, solver time limits, Redis key TTLs).

The process-wide clock is set once at start-up by :func:`configure` (``create_app`` does it from
``FLEET_CLOCK_RATE`` and ``FLEET_CLOCK_ANCHOR``); a :class:`Clock` is the same thing as a value,
for a caller that must not touch the process's clock (the simulator, inside the test process).

>>> c = Clock(rate=4.0, anchor=1_000.0)
>>> c.simulated(1_010.0), c.real(1_040.0), c.real_seconds(2.0)
(1040.0, 1010.0, 0.5)
>>> Clock().simulated(1_010.0)
1010.0
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Clock:
    """Simulated time running ``rate`` times faster than real time from the real Unix time
    ``anchor`` on (rate 1: real time, whatever the anchor)."""

    rate: float = 1.0
    anchor: float = 0.0

    def __post_init__(self) -> None:
        if not self.rate >= 1.0 or self.rate == float("inf"):
            raise ValueError(f"a clock's rate must be a finite number ≥ 1, not {self.rate}")

    def simulated(self, real: float) -> float:
        """The simulated Unix time at the real Unix time ``real``."""
        return real if self.rate == 1.0 else self.anchor + (real - self.anchor) * self.rate

    def real(self, simulated: float) -> float:
        """The real Unix time at which the clock shows ``simulated``."""
        if self.rate == 1.0:
            return simulated
        return self.anchor + (simulated - self.anchor) / self.rate

    def real_seconds(self, seconds: float) -> float:
        """How long ``seconds`` of simulated time last in real time (for timeouts)."""
        return seconds if self.rate == 1.0 else seconds / self.rate

    def now(self) -> float:
        """Unix seconds, simulated."""
        return self.simulated(time.time())

    def now_ms(self) -> int:
        """Unix milliseconds, simulated."""
        return int(self.now() * 1000)

    def monotonic(self) -> float:
        """A monotonic clock in simulated seconds (only differences mean anything)."""
        t = time.monotonic()
        return t if self.rate == 1.0 else t * self.rate

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of simulated time."""
        await asyncio.sleep(seconds if self.rate == 1.0 else seconds / self.rate)


REAL = Clock()
_clock = REAL


def configure(rate: float = 1.0, anchor: float | None = None) -> Clock:
    """Set the process's clock (rate 1: real time); return the one it replaces.

    ``anchor`` (real Unix seconds) is required above rate 1: processes that are to agree on the
    time must share it."""
    if rate != 1.0 and anchor is None:
        raise ValueError("a clock faster than real time needs an anchor (a real Unix time)")
    return use(Clock(rate, anchor or 0.0) if rate != 1.0 else REAL)


def use(clock: Clock) -> Clock:
    """Make ``clock`` the process's clock; return the one it replaces (to put it back)."""
    global _clock
    previous, _clock = _clock, clock
    return previous


def current() -> Clock:
    """The process's clock."""
    return _clock


def now() -> float:
    """Unix seconds on the process's clock."""
    return _clock.now()


def now_ms() -> int:
    """Unix milliseconds on the process's clock."""
    return _clock.now_ms()


def monotonic() -> float:
    """Monotonic seconds on the process's clock."""
    return _clock.monotonic()


async def sleep(seconds: float) -> None:
    """Sleep ``seconds`` on the process's clock."""
    await _clock.sleep(seconds)


def real_seconds(seconds: float) -> float:
    """Real seconds that ``seconds`` on the process's clock last (for ``asyncio.wait_for``)."""
    return _clock.real_seconds(seconds)
