"""A token bucket: at most ``rate`` messages a second on average, bursts up to ``burst``.

Seconds on the server's clock (:mod:`server.clock`): a simulated driver app sending faster than
real time is held to its rate per simulated second."""

from __future__ import annotations

from collections.abc import Callable

from server import clock as server_clock


class TokenBucket:
    def __init__(
        self, rate: float, burst: float, *, clock: Callable[[], float] = server_clock.monotonic
    ) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = burst
        self.stamp = clock()

    def take(self) -> bool:
        """Spend one token if there is one."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
