"""ETA calibration: how far off the ETAs told in advance turned out, learned as vans arrive.

An ETA is exact for the route as it stands, on the traffic as measured; but routes change. A
re-plan that puts a new order ahead of a stop delays it, and the further ahead an ETA looks the
more such insertions it will see, so ETAs told long in advance come out early on average (in
the rush scenario, by about two minutes fifteen minutes out), while those told a few minutes out
are about right. :class:`EtaCalibration` keeps, for each horizon (how far ahead the ETA was
told), the recent errors of the ETAs the server gave (``actual - eta``), and its correction at a
horizon is their median there, shrunk towards 0 while samples are few. The correction is added to
the raw ETA; it is learned on raw ETAs, never on corrected ones, so it does not feed on itself.

>>> c = EtaCalibration(prior=0)
>>> c.add([(0.0, 900.0), (300.0, 900.0)], arrived=1020.0)  # told at 0 and at 300 s
>>> curve = c.curve()
>>> curve.at(900.0), curve.at(600.0)  # 120 s late at both horizons
(120.0, 120.0)
>>> curve.correct(eta=1900.0, now=1000.0)  # 900 s ahead: 120 s later
2020.0
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

KNOTS_S = (0.0, 300.0, 600.0, 900.0, 1200.0, 1800.0)  # horizons the correction is learned at


@dataclass(frozen=True)
class Correction:
    """The learned correction: ``values[i]`` seconds to add to an ETA ``knots[i]`` ahead,
    linear in between, the last value beyond the last knot."""

    knots: tuple[float, ...] = KNOTS_S
    values: tuple[float, ...] = (0.0,) * len(KNOTS_S)

    def at(self, horizon_s: float) -> float:
        return float(np.interp(max(0.0, horizon_s), self.knots, self.values))

    def correct(self, eta: float, now: float) -> float:
        """``eta`` (raw, a time like ``now``) corrected; never before ``now``."""
        return max(now, eta + self.at(eta - now))

    def to_json(self) -> dict[str, list[float]]:
        return {"knots": list(self.knots), "values": [round(v, 1) for v in self.values]}

    @classmethod
    def from_json(cls, data: dict[str, list[float]]) -> Correction:
        knots, values = tuple(data["knots"]), tuple(data["values"])
        if len(knots) != len(values) or len(knots) < 1 or list(knots) != sorted(knots):
            raise ValueError(f"not a correction curve: {data!r}")
        return cls(tuple(map(float, knots)), tuple(map(float, values)))


class EtaCalibration:
    """The errors of the last ``window`` ETAs told (horizon, error), and their correction.

    ``prior``: a knot with ``n`` samples gets ``n / (n + prior)`` of their median (a few early
    arrivals do not swing every ETA); ``limit``: no correction beyond this share of the horizon
    (and beyond 60 s at the shortest horizons), however wrong the samples.
    """

    def __init__(self, *, window: int = 400, prior: float = 10.0, limit: float = 0.5) -> None:
        self.prior = prior
        self.limit = limit
        self._samples: deque[tuple[float, float]] = deque(maxlen=window)

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, told: Iterable[tuple[float, float]], arrived: float) -> None:
        """One stop reached at ``arrived``: ``told`` are the ``(when, eta)`` it was given."""
        for when, eta in told:
            if eta >= when:
                self._samples.append((eta - when, arrived - eta))

    def curve(self) -> Correction:
        if not self._samples:
            return Correction()
        samples = np.asarray(self._samples)
        knots = np.asarray(KNOTS_S)
        nearest = np.abs(samples[:, :1] - knots[None, :]).argmin(axis=1)
        values = []
        for i, knot in enumerate(KNOTS_S):
            errors = samples[nearest == i, 1]
            if len(errors) == 0:
                values.append(0.0)
                continue
            shrunk = float(np.median(errors)) * len(errors) / (len(errors) + self.prior)
            bound = max(60.0, self.limit * knot)
            values.append(min(bound, max(-bound, shrunk)))
        return Correction(KNOTS_S, tuple(values))
