"""Load mode: thousands of lightweight simulated vehicles from one process, over real sockets.

Each vehicle is one task with one WebSocket to ``/ws/driver``: it sends a batch of
``pings_per_message`` fixes every ``pings_per_message / rate_per_vehicle`` seconds and waits for
the ack before the next one (stop-and-wait, as the driver app does). A batch that was not acked
when its connection dropped is sent again on the next connection, so the server must deduplicate.
Console subscribers measure ping → console latency from the fixes' own timestamps (same clock).

Used by ``fleet bench ingest``; usable on its own against any server.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

_ack = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode


class _Dropped(Exception):
    """This connection was cut on purpose, to test re-sending."""


@dataclass(slots=True)
class VehicleLoad:
    """One simulated vehicle: its token, server and what it has had acked."""

    vehicle_id: str
    token: str
    url: str
    lat: float
    lon: float
    acked_ts: set[int] = field(default_factory=set)
    sent_messages: int = 0
    acked_messages: int = 0
    errors: int = 0
    reconnects: int = 0


@dataclass(slots=True)
class LoadStats:
    vehicles: int = 0
    acked_pings: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: int = 0
    reconnects: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    ack_latencies_ms: list[float] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class LoadGenerator:
    def __init__(
        self,
        vehicles: Sequence[VehicleLoad],
        *,
        rate_per_vehicle: float,
        pings_per_message: int,
        seed: int = 0,
    ) -> None:
        self.vehicles = list(vehicles)
        self.rate = rate_per_vehicle
        self.per_message = pings_per_message
        self.random = random.Random(seed)
        self.stats = LoadStats(vehicles=len(self.vehicles))
        self._stop = asyncio.Event()
        self._drop: set[str] = set()
        self._measure = False
        self._connected = 0
        self.all_connected = asyncio.Event()
        self.error_codes: Counter[str] = Counter()

    def measure(self, on: bool) -> None:
        """Record latencies and counts only between warm-up and the end of the window."""
        self._measure = on

    def drop(self, fraction: float) -> int:
        """Close ``fraction`` of the connections abruptly; they reconnect and re-send."""
        chosen = self.random.sample(self.vehicles, int(len(self.vehicles) * fraction))
        self._drop.update(v.vehicle_id for v in chosen)
        return len(chosen)

    def stop(self) -> None:
        self._stop.set()

    def _batch(self, vehicle: VehicleLoad) -> list[dict[str, float | int]]:
        now = int(time.time() * 1000)
        step = max(1, int(1000 / self.rate))
        pings: list[dict[str, float | int]] = []
        for i in range(self.per_message):
            vehicle.lat += 0.00002  # ~2 m north per fix: plausible at any rate used here
            ts = now - (self.per_message - 1 - i) * step
            pings.append({"lat": vehicle.lat, "lon": vehicle.lon, "ts": ts})
        return pings

    async def run_vehicle(self, vehicle: VehicleLoad) -> None:
        interval = self.per_message / self.rate
        seq = 0
        pending: bytes | None = None  # a batch sent but not acked: re-sent after a reconnect
        pending_ts: list[int] = []
        first = True
        # Spread the first sends over one interval so the load is even.
        await asyncio.sleep(self.random.random() * interval)
        while not self._stop.is_set():
            try:
                async with connect(
                    vehicle.url, compression=None, proxy=None, open_timeout=30, max_queue=4
                ) as ws:
                    if first:
                        first = False
                        self._connected += 1
                        if self._connected == len(self.vehicles):
                            self.all_connected.set()
                    next_send = time.monotonic()
                    while not self._stop.is_set():
                        if vehicle.vehicle_id in self._drop:
                            self._drop.discard(vehicle.vehicle_id)
                            vehicle.reconnects += 1
                            ws.transport.abort()  # no close handshake: the worst case
                            raise _Dropped
                        if pending is None:
                            seq += 1
                            pings = self._batch(vehicle)
                            pending_ts = [int(p["ts"]) for p in pings]
                            pending = _encode({"type": "pings", "seq": seq, "pings": pings})
                        sent_at = time.monotonic()
                        await ws.send(pending.decode())
                        vehicle.sent_messages += 1
                        reply = _ack.decode(await ws.recv())
                        if reply.get("type") == "ack" and reply.get("seq") == seq:
                            vehicle.acked_messages += 1
                            vehicle.acked_ts.update(pending_ts)
                            if self._measure:
                                s = self.stats
                                s.acked_pings += len(pending_ts)
                                s.accepted += reply["accepted"]
                                s.duplicates += reply["duplicates"]
                                s.rejected += len(reply["rejected"])
                                s.ack_latencies_ms.append((time.monotonic() - sent_at) * 1000)
                            pending = None
                        else:
                            self.error_codes[str(reply.get("code"))] += 1
                            vehicle.errors += 1
                            self.stats.errors += 1
                            await asyncio.sleep(0.5)  # rate limited or unavailable: re-send later
                        next_send += interval
                        delay = next_send - time.monotonic()
                        if delay > 0:
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(self._stop.wait(), delay)
                        else:
                            next_send = time.monotonic()
            except (_Dropped, ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
                self.stats.reconnects += 1
                await asyncio.sleep(0.05 + self.random.random() * 0.2)

    async def run_console(self, url: str) -> None:
        """A console watching the whole world; records ping → console latency."""
        decoder = msgspec.json.Decoder()
        async with connect(url, compression=None, proxy=None, max_size=None, max_queue=None) as ws:
            while not self._stop.is_set():
                try:
                    frame = decoder.decode(await asyncio.wait_for(ws.recv(), 1.0))
                except TimeoutError:
                    continue
                if frame.get("type") != "positions" or not self._measure:
                    continue
                now = time.time() * 1000
                self.stats.latencies_ms.extend(now - v["ts"] for v in frame["vehicles"])
