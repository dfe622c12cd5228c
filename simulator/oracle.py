"""The judge's yardstick: what an ETA would have been had its server known the true traffic.

The simulator knows the real speed of every road at every moment, so for an ETA whose route
was then served as shown (a *kept* route, :mod:`simulator.report`) it can replay that route
from where the van really was, leg by leg on the roads its navigation takes (free flow and the
incidents reported by then), with the services and window waits the vans really make, at the
true speeds:

- **known now**: frozen as they were when the ETA was shown, a server that knew every jam on
  the map then, reported or hidden, but nothing of what was to come;
- **known ahead**: as they really turned out, jams that had not begun yet included.

So a kept route's error splits in three: the server's own model (its error minus *known now*'s),
traffic that changed after the ETA was shown (*known now* minus *known ahead*), and what no
knowledge of the traffic explains (*known ahead*'s: GPS, snapping, a driver's dropout). The
server is not scored by these: they say how far its figures could go down, and from what.
"""

from __future__ import annotations

from dataclasses import dataclass

from geo.errors import GeoError
from geo.roads import Roads
from simulator.driving import ArcLookup, Drive
from simulator.report import Scored, stops_by_vehicle
from simulator.scenario import Events, PlannedOrder, ground_truth
from simulator.vehicle import StopRecord
from simulator.world import TICK_S, RunResult


@dataclass(frozen=True, slots=True)
class Replayed:
    """A kept ETA's error, and the errors of the same route replayed on the true traffic."""

    error_s: float  # the server's: actual minus ETA
    known_now_s: float  # actual minus the replay at the speeds of the moment it was shown
    known_ahead_s: float  # actual minus the replay at the speeds as they came


class Yardstick:
    """Replays routes on the ground truth (needs its own :class:`Roads`: it sets their events)."""

    def __init__(self, roads: Roads, events: Events) -> None:
        self.roads = roads
        self.lookup = ArcLookup(roads)
        self.truth = ground_truth(events, roads.network)
        self.reported = [i for i in events.incidents if i.reported]
        self.scenario = events.scenario
        self._active: set[str] = set()

    def replay(
        self, result: RunResult, scores: dict[int, list[Scored]]
    ) -> dict[int, list[Replayed]]:
        """Every kept score of ``result`` that can be replayed (a simulated van's), per horizon."""
        served = stops_by_vehicle(result)
        out: dict[int, list[Replayed]] = {}
        for h, scored in scores.items():
            out[h] = []
            for s in scored:
                if not s.kept or s.shown.van is None:
                    continue
                records = served.get(s.shown.vehicle_id, [])
                now = self._start(s, result.orders, records, frozen=True)
                ahead = self._start(s, result.orders, records, frozen=False)
                if now is not None and ahead is not None:
                    out[h].append(Replayed(s.error_s, s.actual_s - now, s.actual_s - ahead))
        return out

    def _start(
        self,
        s: Scored,
        orders: dict[str, PlannedOrder],
        records: list[StopRecord],
        *,
        frozen: bool,
    ) -> float | None:
        """When the replay starts serving ``s``'s drop-off (None: a stop it cannot replay)."""
        assert s.shown.van is not None
        t = s.shown.t_s
        clock, position = t, s.shown.van
        started = {(r.order_id, r.kind): r for r in records if r.service_start_s <= t}
        for r in started.values():  # a service under way when the ETA was shown
            clock = max(clock, r.service_start_s + self._service(r.kind))
        for order_id, kind, _ in s.shown.stops[: s.index + 1]:
            order = orders.get(order_id)
            if order is None or kind == "transfer":  # (from a broken van: its place not known)
                return None
            goal = order.dropoff if kind == "dropoff" else order.pickup  # (a return: the shop)
            if (order_id, kind) in started:
                position = goal
                continue
            self._navigate(t if frozen else clock)
            try:
                drive = Drive.plan(self.roads, self.lookup, position, goal)
            except (GeoError, KeyError):
                return None
            if frozen:
                clock += sum(
                    seg.length_m / self.truth.speed_mps(seg.arc, t) for seg in drive.segments
                )
            else:  # as the simulated vans drive: in ticks, slowing as a jam begins
                while not drive.done:
                    drive.advance(TICK_S, clock, self.truth)
                    clock += TICK_S
            begin = max(clock, order.window_start_s) if kind == "dropoff" else clock
            if order_id == s.order_id and kind == "dropoff":
                return begin
            clock, position = begin + self._service(kind), goal
        return None

    def _service(self, kind: str) -> float:
        sc = self.scenario
        return sc.dropoff_service_s if kind == "dropoff" else sc.pickup_service_s

    def _navigate(self, t_s: float) -> None:
        """Give the roads the incidents reported and not yet over at ``t_s``, as the vans' maps
        had them."""
        for incident in self.reported:
            on = incident.start_s <= t_s < incident.end_s
            if on and incident.id not in self._active:
                self.roads.add_event(incident.traffic_event(), t_s)
                self._active.add(incident.id)
            elif not on and incident.id in self._active:
                self.roads.end_event(incident.id, t_s)
                self._active.discard(incident.id)
