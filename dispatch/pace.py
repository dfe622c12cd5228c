"""Learned pace: how much slower (or faster) vehicles really drive than the road model says.

The road model knows free-flow speeds and the traffic events it was told about; real traffic is
usually slower in ways nobody reports. Each time a vehicle moves between two position fixes the
server can compare the time it took with the time the model gives for the same stretch. A stop
in between makes a ratio too large; GPS noise that snaps a fix onto the wrong side of a one-way
street makes the model's time a detour and the ratio far too small. Ratios outside
[1/4, 10] are dropped as such accidents (a jam that crawls at 5 km/h on a 50 km/h street is
10: hidden incidents are several times slower than the model, and are what the pace is for),
and the median of the recent rest — not a mean, and not weighted by the model's time, which
would let every detour dominate — is the factor to multiply model times by.

>>> pace = Pace(window_s=600, min_samples=3)
>>> pace.value(0.0)
1.0
>>> for k in range(5):
...     _ = pace.add(expected_s=100.0, actual_s=130.0, at_s=float(k))
>>> pace.add(expected_s=400.0, actual_s=15.0, at_s=5.0)  # a detour: ignored
False
>>> pace.value(10.0)
1.3
>>> pace.value(700.0)  # the samples are too old now
1.0
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


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

    def add(self, *, expected_s: float, actual_s: float, at_s: float) -> bool:
        """One stretch: the model said ``expected_s``, it took ``actual_s`` (both > 0); whether
        it was kept (not an accident)."""
        if expected_s <= 0 or actual_s <= 0:
            return False
        ratio = actual_s / expected_s
        if 0.25 <= ratio <= 10.0:
            self._samples.append((at_s, ratio))
            return True
        return False

    def __len__(self) -> int:
        """Samples kept (old ones go at the next :meth:`value`)."""
        return len(self._samples)

    def value(self, now_s: float) -> float:
        """The factor to multiply model travel times by (1.0 until there are enough samples)."""
        _forget_before(self._samples, now_s - self.window_s)
        if len(self._samples) < self.min_samples:
            return 1.0
        return self.clipped(statistics.median(r for _, r in self._samples))

    def clipped(self, factor: float) -> float:
        """``factor`` within [``lowest``, ``highest``], to three decimals."""
        return round(min(self.highest, max(self.lowest, factor)), 3)


def _forget_before(samples: deque[tuple[float, float]], since_s: float) -> None:
    """Drop the ``(at, ratio)`` samples taken before ``since_s`` (oldest first)."""
    while samples and samples[0][0] < since_s:
        samples.popleft()


class AreaPace:
    """The pace per area as well: congestion is local (a hot spot, a district at rush hour),
    and a city-wide factor spreads it over every road. Each stretch also counts for the area
    it was driven in (an H3 cell, named by the caller). An area's factor is the median of its
    recent ratios shrunk towards the city-wide factor by how few it has — ``prior`` samples'
    worth of the city-wide one — so a cell seen twice barely moves and one seen often speaks
    for itself. No area has a factor of its own before the city-wide one is known.

    >>> pace = AreaPace(window_s=600, min_samples=4, prior=4)
    >>> for k in range(8):
    ...     _ = pace.add("jam" if k < 4 else "calm", expected_s=100.0,
    ...                  actual_s=200.0 if k < 4 else 100.0, at_s=float(k))
    >>> city, areas = pace.values(10.0)
    >>> city, areas["jam"], areas["calm"]
    (1.5, 1.75, 1.25)
    """

    def __init__(
        self,
        *,
        window_s: float = 600.0,
        min_samples: int = 10,
        prior: float = 10.0,
        lowest: float = 0.7,
        highest: float = 3.0,
    ) -> None:
        self.city = Pace(window_s=window_s, min_samples=min_samples, lowest=lowest,
                         highest=highest)  # fmt: skip
        self.prior = prior
        self._areas: dict[str, deque[tuple[float, float]]] = {}

    def add(self, area: str, *, expected_s: float, actual_s: float, at_s: float) -> bool:
        """One stretch driven in ``area``; whether it was kept (see :meth:`Pace.add`)."""
        if not self.city.add(expected_s=expected_s, actual_s=actual_s, at_s=at_s):
            return False
        self._areas.setdefault(area, deque()).append((at_s, actual_s / expected_s))
        return True

    def __len__(self) -> int:
        return len(self.city)

    def values(self, now_s: float) -> tuple[float, dict[str, float]]:
        """The city-wide factor, and each area's that has recent samples."""
        city = self.city.value(now_s)
        known = len(self.city) >= self.city.min_samples
        areas: dict[str, float] = {}
        for area, samples in list(self._areas.items()):
            _forget_before(samples, now_s - self.city.window_s)
            if not samples:
                del self._areas[area]
                continue
            if known:
                n = len(samples)
                mixed = (n * statistics.median(r for _, r in samples) + self.prior * city) / (
                    n + self.prior
                )
                areas[area] = self.city.clipped(mixed)
        return city, areas


def leg_factors(point_factors: Sequence[float]) -> npt.NDArray[np.float64]:
    """The factor for every leg between the points (``[i, j]``: from i to j), the mean of its
    two ends': a leg into or out of a slow area is slowed by half of it at least.

    >>> leg_factors([1.0, 2.0]).tolist()
    [[1.0, 1.5], [1.5, 2.0]]
    """
    f = np.asarray(point_factors, dtype=np.float64)
    return (f[:, None] + f[None, :]) / 2
