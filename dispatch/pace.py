"""Learned pace: how much slower (or faster) vehicles really drive than the road model says.

The road model knows free-flow speeds and the traffic events it was told about; real traffic is
usually slower in ways nobody reports. Each time a vehicle moves between two position fixes the
server can compare the time it took with the time the model gives for the same stretch; the
median of the recent ratios (weighted by the model's time, so long stretches count more) is
the factor to multiply model times by. Stops in between make a ratio too large and GPS noise
can make one too small: the median over many vehicles shrugs both off.

>>> pace = Pace(window_s=600, min_samples=3)
>>> pace.value(0.0)
1.0
>>> for k in range(5):
...     pace.add(expected_s=100.0, actual_s=130.0, at_s=float(k))
>>> pace.value(10.0)
1.3
>>> pace.value(700.0)  # the samples are too old now
1.0
"""

from __future__ import annotations

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
        self._samples: deque[tuple[float, float, float]] = deque()  # (at, ratio, weight)

    def add(self, *, expected_s: float, actual_s: float, at_s: float) -> None:
        """One stretch: the model said ``expected_s``, it took ``actual_s`` (both > 0)."""
        if expected_s <= 0 or actual_s <= 0:
            return
        self._samples.append((at_s, actual_s / expected_s, expected_s))

    def value(self, now_s: float) -> float:
        """The factor to multiply model travel times by (1.0 until there are enough samples)."""
        while self._samples and self._samples[0][0] < now_s - self.window_s:
            self._samples.popleft()
        if len(self._samples) < self.min_samples:
            return 1.0
        ordered = sorted((ratio, weight) for _, ratio, weight in self._samples)
        half = sum(w for _, w in ordered) / 2
        seen = 0.0
        for ratio, weight in ordered:
            seen += weight
            if seen >= half:
                return round(min(self.highest, max(self.lowest, ratio)), 3)
        return 1.0  # pragma: no cover - the loop always returns
