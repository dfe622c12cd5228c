"""Load mode: thousands of lightweight simulated vehicles from one process, over real sockets.

Each vehicle has one WebSocket to ``/ws/driver``: it sends a batch of ``pings_per_message`` fixes
every ``pings_per_message / rate_per_vehicle`` seconds and waits for the ack before the next one
(stop-and-wait, as the driver app does). A batch that was not acked when its connection dropped is
sent again on the next connection, so the server must deduplicate. Console subscribers measure
ping → console latency from the fixes' own timestamps (same clock).

The vehicles' sockets are a lean RFC 6455 client on raw asyncio transports (``ClientSocket``),
driven by callbacks rather than one coroutine each: a send is due on a shared timer wheel (one
loop timer for every vehicle), the ack arrives in ``buffer_updated`` and schedules the next send.
On a 2-core VM against a trivial ack server, an acked message costs the generator about 40 µs of
CPU (uvloop or asyncio alike; the ``websockets`` client cost 170-240 µs), of which about 25 µs
is paid even by a bare epoll loop sending a prebuilt frame (mostly the kernel's loopback TCP).
Consoles are few and their frames large: they use the ``websockets`` library.

Used by ``fleet bench ingest``; usable on its own against any server. Run the event loop with
``loop_factory()`` (uvloop when it is installed) for the cheapest sockets.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import msgspec
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from simulator.wsclient import OPEN, ClientSocket, HandshakeError

_monotonic = time.monotonic


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The cheapest event loop available: uvloop's when it is installed, else asyncio's.

    Use as ``asyncio.Runner(loop_factory=loop_factory())``."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


class _Reply(msgspec.Struct, gc=False):
    """What the driver endpoint answers to a batch (unknown fields are ignored)."""

    type: str = ""
    seq: int | None = None
    accepted: int = 0
    duplicates: int = 0
    rejected: list[msgspec.Raw] = []
    code: str | None = None


_decode_reply = msgspec.json.Decoder(_Reply).decode
_INVALID_REPLY = _Reply(type="error", code="invalid_reply")


class _Ping(msgspec.Struct, gc=False):
    lat: float
    lon: float
    ts: int


class _Pings(msgspec.Struct, tag_field="type", tag="pings", gc=False):
    """The driver's batch, as ``docs/PROTOCOL.md`` has it."""

    seq: int
    pings: list[_Ping]


_encode_pings = msgspec.json.Encoder().encode


class _Stamp(msgspec.Struct, gc=False):
    ts: float


class _ConsoleFrame(msgspec.Struct, gc=False):
    """What a console measures in a frame: its type, and each position's fix time. The other
    fields (hundreds of positions a frame at full load) are skipped, not built."""

    type: str = ""
    vehicles: list[_Stamp] = []


# --- load generation ----------------------------------------------------------------------------


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
    console_closes: int = 0
    abandoned_batches: int = 0  # unacked when stop() found their vehicle between connections
    back_after_cut_s: list[float] = field(default_factory=list)  # cut → open again, per vehicle
    cut_not_back: int = 0  # vehicles cut whose connection was not open again at stop()
    latencies_ms: list[float] = field(default_factory=list)
    ack_latencies_ms: list[float] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class _Vehicle:
    """One vehicle's sending loop as a state machine over its successive connections."""

    __slots__ = (
        "connect_task",
        "connected_once",
        "cut_at",
        "done",
        "gen",
        "host",
        "host_header",
        "in_flight",
        "load",
        "next_send",
        "pending",
        "pending_ts",
        "port",
        "resource",
        "sent_at",
        "seq",
        "ssl",
        "stopping",
        "timer",
        "ws",
    )

    def __init__(self, gen: LoadGenerator, load: VehicleLoad) -> None:
        url = urlsplit(load.url)
        if url.scheme not in ("ws", "wss") or not url.hostname:
            raise ValueError(f"not a ws:// or wss:// URL: {load.url}")
        default_port = 443 if url.scheme == "wss" else 80
        self.port = url.port or default_port
        self.host = url.hostname
        host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
        self.resource = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self.ssl = gen._tls_context() if url.scheme == "wss" else None
        self.gen = gen
        self.load = load
        self.seq = 0
        self.pending: bytes | None = None  # a batch sent but not acked: re-sent after a reconnect
        self.pending_ts: list[int] = []
        self.in_flight = False
        self.cut_at = 0.0  # when drop() cut the connection (0: not cut, or open again since)
        self.sent_at = 0.0
        self.next_send = 0.0
        self.connected_once = False
        self.stopping = False
        self.ws: ClientSocket | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.connect_task: asyncio.Task[None] | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.host_header = host if self.port == default_port else f"{host}:{self.port}"

    # connecting

    def start(self, delay: float) -> None:
        self.timer = asyncio.get_running_loop().call_later(delay, self._connect)

    def _connect(self) -> None:
        self.timer = None
        if self.stopping:
            self._finish()
            return
        self.connect_task = asyncio.get_running_loop().create_task(self._open())
        self.connect_task.add_done_callback(self._connect_done)

    def _connect_done(self, task: asyncio.Task[None]) -> None:
        # A task cancelled before its first step never runs _open's handlers: finish here.
        if task.cancelled():
            self._finish()

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        gen = self.gen
        ws = ClientSocket(
            self,
            self.host_header,
            self.resource,
            recv_buffer=gen._recv_buffer,
            max_size=gen.max_size,
        )
        try:
            async with asyncio.timeout(self.gen.open_timeout):
                await loop.create_connection(lambda: ws, self.host, self.port, ssl=self.ssl)
                await ws.opened
        except (OSError, TimeoutError, HandshakeError):
            self.connect_task = None
            if self.ws is not ws:  # else it opened just as the deadline passed: keep it
                ws.abort()
                self._retry()
        except asyncio.CancelledError:
            ws.abort()
            self.connect_task = None
            self._finish()
            raise
        except Exception as exc:  # a bug: end this vehicle, run_vehicle raises it
            ws.abort()
            self.connect_task = None
            self._finish(exc)
        else:
            self.connect_task = None

    def _retry(self) -> None:
        self.gen.stats.reconnects += 1
        if self.stopping:
            self._finish()
        else:
            delay = 0.05 + self.gen.random.random() * 0.2
            self.timer = asyncio.get_running_loop().call_later(delay, self._connect)

    def on_open(self, ws: ClientSocket) -> None:
        self.ws = ws
        self.connect_task = None  # connected: stop() closes the socket rather than cancelling
        if not self.connected_once:
            self.connected_once = True
            self.gen._vehicle_connected()
        if self.cut_at:
            self.gen.stats.back_after_cut_s.append(time.monotonic() - self.cut_at)
            self.cut_at = 0.0
        if self.stopping:
            ws.close()
            return
        self.next_send = time.monotonic()
        self._send(ws)

    def on_lost(self, ws: ClientSocket) -> None:
        if ws is not self.ws:
            return
        self.ws = None
        self.in_flight = False
        if self.stopping:
            self._finish()
        else:
            self._retry()

    # sending and acks

    def _send(self, ws: ClientSocket) -> None:
        pending = self.pending
        if pending is None:
            self.seq += 1
            pending, self.pending_ts = self.gen._batch(self.load, self.seq)
            self.pending = pending
        ws.send(pending)
        self.in_flight = True
        self.sent_at = _monotonic()
        self.load.sent_messages += 1

    def due(self, ws: ClientSocket) -> None:
        """The timer wheel says a send is due on ``ws`` (ignored if that connection is gone)."""
        if ws is self.ws and not self.in_flight and not self.stopping and ws.state == OPEN:
            self._send(ws)

    def on_message(self, ws: ClientSocket, data: bytes) -> None:
        if not self.in_flight:
            return  # a push (e.g. a route), or a stray reply: nothing waits for it
        now = _monotonic()
        try:
            reply = _decode_reply(data)
        except msgspec.DecodeError:
            reply = _INVALID_REPLY
        gen = self.gen
        if reply.type == "ack" and reply.seq == self.seq:
            stamps = self.pending_ts
            load = self.load
            load.acked_messages += 1
            load.acked_ts.update(stamps)
            if gen._measure:
                s = gen.stats
                s.acked_pings += len(stamps)
                s.accepted += reply.accepted
                s.duplicates += reply.duplicates
                s.rejected += len(reply.rejected)
                s.ack_latencies_ms.append((now - self.sent_at) * 1000)
            self.pending = None
            self.in_flight = False
            if self.stopping:
                ws.close()
                return
            next_send = self.next_send + gen.interval
            if next_send <= now:
                self.next_send = now
                self._send(ws)
            else:
                self.next_send = next_send
                gen._schedule(self, ws, next_send)
        elif reply.type in ("ack", "error"):
            gen.error_codes[str(reply.code)] += 1
            self.load.errors += 1
            gen.stats.errors += 1
            self.in_flight = False
            if self.stopping:
                ws.close()
                return
            # Rate limited or unavailable: re-send the same batch later.
            self.next_send = max(self.next_send + gen.interval, now + 0.5)
            gen._schedule(self, ws, self.next_send)

    # dropping and stopping

    def drop(self) -> bool:
        """Cut the connection without a close handshake; it reconnects and re-sends."""
        if self.ws is None:
            return False
        self.load.reconnects += 1
        self.cut_at = time.monotonic()
        self.ws.abort()
        return True

    def stop(self, close_timeout: float) -> None:
        """No new batch; a batch in flight gets its answer, then the socket closes. A vehicle
        that is between connections gives its unacked batch up (counted as abandoned)."""
        self.stopping = True
        if self.pending is not None and (self.ws is None or self.connect_task is not None):
            self.gen.stats.abandoned_batches += 1
        if self.cut_at:
            self.gen.stats.cut_not_back += 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.connect_task is not None:
            self.connect_task.cancel()
            return
        if self.ws is None:
            self._finish()
            return
        if not self.in_flight:
            self.ws.close()
        self.timer = asyncio.get_running_loop().call_later(close_timeout, self._give_up)

    def _give_up(self) -> None:
        self.timer = None
        if self.ws is not None:
            self.ws.abort()
        self._finish()

    def kill(self) -> None:
        """Stop now, whatever is in flight (the task running this vehicle was cancelled)."""
        self.stopping = True
        if self.connect_task is not None:
            self.connect_task.cancel()
        if self.ws is not None:
            self.ws.abort()
        self._finish()

    def _finish(self, exc: Exception | None = None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)


class LoadGenerator:
    """Drives many vehicles over their own WebSockets from one event loop.

    Limits: ``open_timeout`` s for the TCP connect and the upgrade; a server that leaves a batch
    unanswered for ``ack_timeout`` s has the connection cut (the batch is re-sent on the next);
    ``stop()`` gives a batch in flight and the close handshake ``close_timeout`` s; a server
    message over ``max_size`` bytes is a protocol violation. Sends are due on a timer wheel with
    ``tick`` s slots."""

    def __init__(
        self,
        vehicles: Sequence[VehicleLoad],
        *,
        rate_per_vehicle: float,
        pings_per_message: int,
        seed: int = 0,
        open_timeout: float = 30.0,
        ack_timeout: float = 30.0,
        close_timeout: float = 5.0,
        max_size: int = 1 << 20,
        tick: float = 0.005,
    ) -> None:
        self.vehicles = list(vehicles)
        self.rate = rate_per_vehicle
        self.per_message = pings_per_message
        self.interval = pings_per_message / rate_per_vehicle
        self.random = random.Random(seed)
        self._step_ms = max(1, int(1000 / rate_per_vehicle))
        self.open_timeout = open_timeout
        self.ack_timeout = ack_timeout
        self.close_timeout = close_timeout
        self.max_size = max_size
        self.tick = tick
        self._ticks_per_s = 1 / tick
        self.stats = LoadStats(vehicles=len(self.vehicles))
        self._stop = asyncio.Event()
        self._measure = False
        self._connected = 0
        self.all_connected = asyncio.Event()
        self.error_codes: Counter[str] = Counter()
        self.console_frames: Counter[str] = Counter()  # frames the consoles got, by type
        self._running: dict[str, _Vehicle] = {}
        self._recv_buffer = memoryview(bytearray(64 * 1024))  # shared by every vehicle's socket
        self._tls: ssl.SSLContext | None = None
        self._wheel: dict[int, list[tuple[_Vehicle, ClientSocket]]] = {}
        self._wheel_done = 0  # the last slot sent
        self._ticker: asyncio.TimerHandle | None = None
        self._last_sweep = 0.0

    def measure(self, on: bool) -> None:
        """Record latencies and counts only between warm-up and the end of the window."""
        self._measure = on

    def drop(self, fraction: float) -> int:
        """Cut ``fraction`` of the connections abruptly (no close handshake); they reconnect and
        re-send their unacked batch. Returns how many were cut (vehicles between connections
        are down already)."""
        chosen = self.random.sample(self.vehicles, int(len(self.vehicles) * fraction))
        running = self._running
        return sum(1 for v in chosen if v.vehicle_id in running and running[v.vehicle_id].drop())

    def stop(self) -> None:
        """No new batches: every ``run_vehicle`` returns once its batch in flight is answered
        and its socket closed (at most ``close_timeout`` s)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        for vehicle in list(self._running.values()):
            vehicle.stop(self.close_timeout)

    def _batch(self, vehicle: VehicleLoad, seq: int) -> tuple[bytes, list[int]]:
        """The next batch of ``vehicle`` as sent, and its fixes' timestamps (Unix ms, rising)."""
        now = int(time.time() * 1000)
        last = self.per_message - 1
        step = self._step_ms
        stamps = [now - (last - i) * step for i in range(self.per_message)]
        lat, lon = vehicle.lat, vehicle.lon
        pings = []
        for ts in stamps:
            lat += 0.00002  # ~2 m north per fix: plausible at any rate used here
            pings.append(_Ping(lat, lon, ts))
        vehicle.lat = lat
        return _encode_pings(_Pings(seq, pings)), stamps

    def _tls_context(self) -> ssl.SSLContext:
        """One context for every wss:// vehicle (loading the CA certificates is slow)."""
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _vehicle_connected(self) -> None:
        self._connected += 1
        if self._connected == len(self.vehicles):
            self.all_connected.set()

    # the timer wheel: one loop timer every ``tick`` s sends whatever is due

    def _schedule(self, vehicle: _Vehicle, ws: ClientSocket, when: float) -> None:
        slot = int(when * self._ticks_per_s) + 1
        if slot <= self._wheel_done:
            slot = self._wheel_done + 1
        bucket = self._wheel.get(slot)
        if bucket is None:
            self._wheel[slot] = [(vehicle, ws)]
        else:
            bucket.append((vehicle, ws))

    def _start_ticker(self) -> None:
        if self._ticker is None and not self._stop.is_set():
            now = time.monotonic()
            self._wheel_done = int(now * self._ticks_per_s)
            self._last_sweep = now
            self._ticker = asyncio.get_running_loop().call_later(self.tick, self._on_tick)

    def _on_tick(self) -> None:
        now = time.monotonic()
        slot = int(now * self._ticks_per_s)
        wheel = self._wheel
        for k in range(self._wheel_done + 1, slot + 1):
            bucket = wheel.pop(k, None)
            if bucket is not None:
                for vehicle, ws in bucket:
                    vehicle.due(ws)
        self._wheel_done = slot
        if now - self._last_sweep >= 1.0:
            self._last_sweep = now
            self._cut_unanswered(now)
        delay = (slot + 1) * self.tick - time.monotonic()
        self._ticker = asyncio.get_running_loop().call_later(max(0.0, delay), self._on_tick)

    def _cut_unanswered(self, now: float) -> None:
        late = now - self.ack_timeout
        for vehicle in self._running.values():
            if vehicle.in_flight and vehicle.sent_at < late and vehicle.ws is not None:
                vehicle.ws.abort()

    async def run_vehicle(self, vehicle: VehicleLoad) -> None:
        """Run ``vehicle`` until ``stop()``: connect, send, re-send, reconnect."""
        if self._stop.is_set():
            return
        running = _Vehicle(self, vehicle)
        self._running[vehicle.vehicle_id] = running
        self._start_ticker()
        # Spread the first sends over one interval so the load is even.
        running.start(self.random.random() * self.interval)
        try:
            await running.done
        except asyncio.CancelledError:
            running.kill()
            raise
        finally:
            if self._running.get(vehicle.vehicle_id) is running:
                del self._running[vehicle.vehicle_id]

    async def run_console(self, url: str) -> None:
        """A console watching the whole world; records ping → console latency. A console the
        server closes (too slow to keep up, 4008) or that loses its connection is counted in
        ``stats.console_closes`` and opens again, as the web console does."""
        decode = msgspec.json.Decoder(_ConsoleFrame).decode
        while not self._stop.is_set():
            try:
                async with connect(
                    url, compression=None, proxy=None, max_size=None, max_queue=None,
                    ping_interval=None,  # a busy generator must not fail its own keepalive
                ) as ws:  # fmt: skip
                    while not self._stop.is_set():
                        try:  # a timeout, not wait_for: no task per frame (3.11)
                            async with asyncio.timeout(1.0):
                                data = await ws.recv(decode=False)
                            frame = decode(data)
                        except TimeoutError:
                            continue
                        except (msgspec.DecodeError, msgspec.ValidationError):
                            self.console_frames["invalid"] += 1
                            continue
                        self.console_frames[frame.type] += 1
                        if frame.type != "positions" or not self._measure:
                            continue
                        now = time.time() * 1000
                        self.stats.latencies_ms.extend(now - v.ts for v in frame.vehicles)
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
                self.stats.console_closes += 1
                await asyncio.sleep(0.2)
