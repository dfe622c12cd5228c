"""Learned pace: how much slower (or faster) vehicles really drive than the road model says.

The road model knows free-flow speeds and the traffic events it was told about; real traffic is
usually slower in ways nobody reports. Each time a vehicle moves between two position fixes the
server can compare the time it took with the time the model gives for the same stretch. A stop
in between makes a ratio too large; GPS noise that snaps a fix onto the wrong side of a one-way
street makes the model's time a detour and the ratio far too small. Ratios outside
[1/4, 4] are dropped as such accidents, and the median of the recent rest — not a mean, and not
weighted by the model's time, which would let every detour dominate — is the factor to multiply
model times by.

>>> pace = Pace(window_s=600, min_samples=3)
>>> pace.value(0.0)
1.0
>>> for k in range(5):
...     pace.add(expected_s=100.0, actual_s=130.0, at_s=float(k))
>>> pace.add(expected_s=400.0, actual_s=15.0, at_s=5.0)  # a detour: ignored
>>> pace.value(10.0)
1.3
>>> pace.value(700.0)  # the samples are too old now
1.0
"""

from __future__ import annotations

import statistics
from collections import deque


class Pace:
    def __init__(
        self,
        *,
        window_s: float = 600.0,
        min_samples: int = 10,
        lowest: float = 0.7,
        highest: float = 3.0,
    ) -> None:
        self.window_s = window_s
        self.min_samples = min_samples
        self.lowest = lowest
        self.highest = highest
        self._samples: deque[tuple[float, float]] = deque()  # (at, ratio)

    def add(self, *, expected_s: float, actual_s: float, at_s: float) -> None:
        """One stretch: the model said ``expected_s``, it took ``actual_s`` (both > 0)."""
        if expected_s <= 0 or actual_s <= 0:
            return
        ratio = actual_s / expected_s
        if 0.25 <= ratio <= 4.0:
            self._samples.append((at_s, ratio))

    def __len__(self) -> int:
        """Samples kept (old ones go at the next :meth:`value`)."""
        return len(self._samples)

    def value(self, now_s: float) -> float:
        """The factor to multiply model travel times by (1.0 until there are enough samples)."""
        while self._samples and self._samples[0][0] < now_s - self.window_s:
            self._samples.popleft()
        if len(self._samples) < self.min_samples:
            return 1.0
        ratio = statistics.median(r for _, r in self._samples)
        return round(min(self.highest, max(self.lowest, ratio)), 3)
