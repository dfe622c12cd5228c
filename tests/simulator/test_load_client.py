"""The load generator's own WebSocket client against real servers on loopback.

``DriverEndpoint`` is a tiny ``/ws/driver`` on the ``websockets`` library: it decodes each batch,
records it and answers an ack; its variants answer an error, hold a batch, ping, fragment, push
long messages or close. ``raw_server`` speaks RFC 6455 by hand, for what a conforming server
never sends (a refused upgrade, a masked frame) and to see the client's bytes (its mask keys).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.speedups import apply_mask

from simulator.load import LoadGenerator, VehicleLoad, _Vehicle, loop_factory
from tests.conftest import scaled

Batch = dict[str, Any]


class DriverEndpoint:
    """Acts like ``/ws/driver``: records every batch (raw text and decoded) by token, and answers
    what ``answer`` returns (an ack by default; None for no answer)."""

    def __init__(self) -> None:
        self.raw: dict[str, list[str]] = defaultdict(list)
        self.received_at: dict[str, list[float]] = defaultdict(list)
        self.acked: dict[str, set[int]] = defaultdict(set)
        self.connections: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.first_batch = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.paths.append(ws.request.path)
        self.headers.append({k.lower(): v for k, v in ws.request.headers.raw_items()})
        token = parse_qs(urlsplit(ws.request.path).query)["token"][0]
        self.connections[token] += 1
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                assert isinstance(message, str)
                self.raw[token].append(message)
                self.received_at[token].append(time.monotonic())
                self.first_batch.set()
                batch = json.loads(message)
                reply = await self.answer(ws, token, batch)
                if reply is None:
                    continue
                if reply["type"] == "ack":
                    self.acked[token].update(p["ts"] for p in batch["pings"])
                await ws.send(json.dumps(reply))
                await self.after(ws, token, batch)

    async def answer(self, ws: ServerConnection, token: str, batch: Batch) -> Batch | None:
        return ack(batch)

    async def after(self, ws: ServerConnection, token: str, batch: Batch) -> None:
        """Called once the answer is sent."""


def ack(batch: Batch) -> Batch:
    return {
        "type": "ack",
        "seq": batch["seq"],
        "accepted": len(batch["pings"]),
        "duplicates": 0,
        "rejected": [],
    }


@contextlib.asynccontextmanager
async def driver_server(endpoint: DriverEndpoint) -> AsyncIterator[str]:
    """A real ``websockets`` server on a free loopback port; yields its ``/ws/driver`` URL."""
    async with serve(endpoint.handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws/driver"


def fleet(url: str, count: int) -> list[VehicleLoad]:
    return [
        VehicleLoad(f"v{i}", f"t{i}", f"{url}?token=t{i}", lat=60.1 + i * 0.01, lon=24.9)
        for i in range(count)
    ]


async def run_until(
    generator: LoadGenerator,
    vehicles: list[VehicleLoad],
    done: Callable[[], bool],
    *,
    during: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run every vehicle until ``done()`` holds, then stop; every run_vehicle must return."""
    tasks = [asyncio.create_task(generator.run_vehicle(v)) for v in vehicles]
    try:
        if during is not None:
            await during()
        deadline = time.monotonic() + scaled(5)
        while not done():
            assert time.monotonic() < deadline, "the vehicles did not get there in time"
            await asyncio.sleep(0.01)
    finally:
        generator.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), scaled(3))


@pytest.mark.parametrize("per_message", [1, 40, 2500], ids=["7-bit", "16-bit", "64-bit"])
async def test_handshake_then_acks_hold_exactly_the_acked_fixes(per_message: int) -> None:
    endpoint = DriverEndpoint()
    async with driver_server(endpoint) as url:
        vehicles = fleet(url, 3)
        rate = per_message * 20.0
        generator = LoadGenerator(vehicles, rate_per_vehicle=rate, pings_per_message=per_message)
        generator.measure(True)
        started_ms = time.time() * 1000
        await run_until(generator, vehicles, lambda: all(v.acked_messages >= 4 for v in vehicles))
    assert generator.all_connected.is_set()
    port = urlsplit(url).port
    assert sorted(endpoint.paths) == [f"/ws/driver?token=t{i}" for i in range(3)]
    for headers in endpoint.headers:
        assert headers["host"] == f"127.0.0.1:{port}"
        assert headers["sec-websocket-version"] == "13"
        assert len(base64.b64decode(headers["sec-websocket-key"])) == 16
    stats = generator.stats
    for v in vehicles:
        batches = [json.loads(raw) for raw in endpoint.raw[v.token]]
        assert [b["seq"] for b in batches] == list(range(1, len(batches) + 1))
        assert v.acked_ts == endpoint.acked[v.token]
        assert v.sent_messages == v.acked_messages == len(batches)
        if per_message * max(1, int(1000 / rate)) <= per_message / rate * 1000:
            assert len(v.acked_ts) == per_message * v.acked_messages, "no fix stamped twice"
        for batch in batches:
            stamps = [p["ts"] for p in batch["pings"]]
            assert len(stamps) == per_message
            assert stamps == sorted(set(stamps))
            assert started_ms - 1000 - per_message * 50 < stamps[0] <= time.time() * 1000
    acked_messages = sum(v.acked_messages for v in vehicles)
    assert stats.acked_pings == stats.accepted == per_message * acked_messages
    assert len(stats.ack_latencies_ms) == acked_messages
    assert (stats.errors, stats.reconnects, stats.duplicates, stats.rejected) == (0, 0, 0, 0)
    assert (stats.back_after_cut_s, stats.cut_not_back) == ([], 0)


class HoldsFirstBatch(DriverEndpoint):
    """Never answers the first batch on a vehicle's first connection."""

    async def answer(self, ws: ServerConnection, token: str, batch: Batch) -> Batch | None:
        return None if len(self.raw[token]) == 1 else ack(batch)


async def drop_the_first_connection(
    per_message: int,
) -> tuple[HoldsFirstBatch, VehicleLoad, LoadGenerator, list[int]]:
    """One vehicle whose first batch goes unanswered; its connection is then cut, and it runs
    until three batches are acked."""
    endpoint = HoldsFirstBatch()
    async with driver_server(endpoint) as url:
        vehicles = fleet(url, 1)
        generator = LoadGenerator(vehicles, rate_per_vehicle=20.0, pings_per_message=per_message)
        dropped: list[int] = []

        async def cut_the_first_connection() -> None:
            await asyncio.wait_for(endpoint.first_batch.wait(), scaled(3))
            dropped.append(generator.drop(1.0))

        await run_until(generator, vehicles, lambda: vehicles[0].acked_messages >= 3,
                        during=cut_the_first_connection)  # fmt: skip
    return endpoint, vehicles[0], generator, dropped


async def test_drop_reconnects_and_resends_the_unacked_batch() -> None:
    endpoint, v, generator, dropped = await drop_the_first_connection(3)
    raw = endpoint.raw[v.token]
    assert dropped == [1]
    assert endpoint.connections[v.token] == 2
    assert raw[1] == raw[0], "the unacked batch is re-sent as it was"
    first = json.loads(raw[0])
    assert first["seq"] == 1
    assert {p["ts"] for p in first["pings"]} <= v.acked_ts, "no fix lost"
    assert v.acked_ts == endpoint.acked[v.token]
    assert v.reconnects == 1
    assert generator.stats.reconnects == 1
    assert v.sent_messages == len(raw) == v.acked_messages + 1
    (back,) = generator.stats.back_after_cut_s  # the cut vehicle was open again ...
    assert 0 < back < scaled(3)
    assert generator.stats.cut_not_back == 0  # ... when the load stopped


class RateLimitsFirstBatch(DriverEndpoint):
    async def answer(self, ws: ServerConnection, token: str, batch: Batch) -> Batch | None:
        if len(self.raw[token]) == 1:
            return {"type": "error", "code": "rate_limited", "message": "slow down", "seq": 1}
        return ack(batch)


async def test_an_error_reply_is_counted_and_the_batch_resent_after_half_a_second() -> None:
    endpoint = RateLimitsFirstBatch()
    async with driver_server(endpoint) as url:
        vehicles = fleet(url, 1)
        generator = LoadGenerator(vehicles, rate_per_vehicle=20.0, pings_per_message=1)
        await run_until(generator, vehicles, lambda: vehicles[0].acked_messages >= 2)
    v = vehicles[0]
    raw, at = endpoint.raw[v.token], endpoint.received_at[v.token]
    assert raw[1] == raw[0]
    assert at[1] - at[0] >= 0.45
    assert generator.error_codes == Counter({"rate_limited": 1})
    assert v.errors == generator.stats.errors == 1
    assert v.acked_ts == endpoint.acked[v.token]
    assert endpoint.connections[v.token] == 1


class PingsPushesAndFragments(DriverEndpoint):
    """Pings first (and waits for the pong), pushes a 16-bit and a 64-bit long message the client
    has no use for, then sends the ack in three fragments."""

    def __init__(self) -> None:
        super().__init__()
        self.pongs = 0

    async def answer(self, ws: ServerConnection, token: str, batch: Batch) -> Batch | None:
        await asyncio.wait_for(await ws.ping(b"still there?"), scaled(2))
        self.pongs += 1
        stops = [{"order_id": f"o-{i}", "lat": 60.0, "lon": 24.0} for i in range(5)]
        await ws.send(json.dumps({"type": "route", "version": 1, "stops": stops}))
        await ws.send(json.dumps({"type": "route", "version": 2, "geometry": "x" * 70_000}))
        text = json.dumps(ack(batch))
        await ws.send(iter([text[:5], text[5:20], text[20:]]))
        self.acked[token].update(p["ts"] for p in batch["pings"])
        return None


async def test_pings_long_and_fragmented_messages_are_handled() -> None:
    endpoint = PingsPushesAndFragments()
    async with driver_server(endpoint) as url:
        vehicles = fleet(url, 2)
        generator = LoadGenerator(vehicles, rate_per_vehicle=20.0, pings_per_message=2)
        await run_until(generator, vehicles, lambda: all(v.acked_messages >= 3 for v in vehicles))
    assert endpoint.pongs >= 6
    for v in vehicles:
        assert v.acked_ts == endpoint.acked[v.token]
        assert v.errors == 0
        assert endpoint.connections[v.token] == 1


class ClosesAfterEachAck(DriverEndpoint):
    def __init__(self) -> None:
        super().__init__()
        self.echoed: list[int | None] = []
        self.close_took: list[float] = []

    async def after(self, ws: ServerConnection, token: str, batch: Batch) -> None:
        started = time.monotonic()
        await ws.close(4029, "enough")
        self.close_took.append(time.monotonic() - started)
        received = ws.protocol.close_rcvd
        self.echoed.append(None if received is None else received.code)


async def test_a_close_from_the_server_is_answered_and_the_vehicle_reconnects() -> None:
    endpoint = ClosesAfterEachAck()
    async with driver_server(endpoint) as url:
        vehicles = fleet(url, 1)
        generator = LoadGenerator(vehicles, rate_per_vehicle=20.0, pings_per_message=1)
        await run_until(generator, vehicles, lambda: vehicles[0].acked_messages >= 3)
    v = vehicles[0]
    assert endpoint.echoed[:2] == [4029, 4029], "the client echoes the close code"
    assert max(endpoint.close_took) < scaled(1)
    assert endpoint.connections[v.token] >= 3
    assert v.acked_ts == endpoint.acked[v.token]
    assert generator.stats.reconnects >= 2
    assert v.errors == 0


class AcksLate(DriverEndpoint):
    def __init__(self, delay: float | None) -> None:
        super().__init__()
        self.delay = delay

    async def answer(self, ws: ServerConnection, token: str, batch: Batch) -> Batch | None:
        if self.delay is None:
            return None
        await asyncio.sleep(self.delay)
        return ack(batch)


async def test_stop_waits_for_the_batch_in_flight_then_returns() -> None:
    endpoint = AcksLate(0.3)
    async with driver_server(endpoint) as url:
        vehicles = fleet(url, 1)
        generator = LoadGenerator(vehicles, rate_per_vehicle=1.0, pings_per_message=1)
        task = asyncio.create_task(generator.run_vehicle(vehicles[0]))
        await asyncio.wait_for(endpoint.first_batch.wait(), scaled(3))
        generator.stop()
        started = time.monotonic()
        await asyncio.wait_for(task, scaled(3))
        took = time.monotonic() - started
    v = vehicles[0]
    assert 0.2 < took < scaled(2)
    assert v.acked_messages == 1
    assert v.acked_ts == endpoint.acked[v.token]


async def test_stop_gives_up_on_an_unanswered_batch_after_close_timeout() -> None:
    endpoint = AcksLate(None)
    async with driver_server(endpoint) as url:
        vehicles = fleet(url, 1)
        generator = LoadGenerator(
            vehicles, rate_per_vehicle=1.0, pings_per_message=1, close_timeout=0.3
        )
        task = asyncio.create_task(generator.run_vehicle(vehicles[0]))
        await asyncio.wait_for(endpoint.first_batch.wait(), scaled(3))
        generator.stop()
        await asyncio.wait_for(task, scaled(2))
    assert vehicles[0].acked_ts == set()


# --- a hand-written server, for what a conforming one never sends ----------------------------


def accept_for(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())


async def read_upgrade(reader: asyncio.StreamReader) -> bytes:
    """Reads the client's upgrade request; returns its Sec-WebSocket-Key."""
    request = (await reader.readuntil(b"\r\n\r\n")).decode()
    lines = request.split("\r\n")
    assert lines[0].startswith("GET /ws/driver?token=")
    assert lines[0].endswith(" HTTP/1.1")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    assert headers["upgrade"].lower() == "websocket"
    assert headers["connection"] == "Upgrade"
    return headers["sec-websocket-key"].encode()


def switching(key: bytes) -> bytes:
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_for(key) + b"\r\n\r\n"
    )


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """One client frame: (opcode, mask key, unmasked payload); client frames must be masked."""
    b0, b1 = await reader.readexactly(2)
    assert b0 & 0x80, "final frame"
    assert b1 & 0x80, "client frames are masked"
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    mask = await reader.readexactly(4)
    payload = await reader.readexactly(n)
    return b0 & 0x0F, mask, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + n.to_bytes(2, "big")
    else:
        head += bytes([127]) + n.to_bytes(8, "big")
    return head + payload


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A hand-written server on a free loopback port; ``handler`` gets the connection's number."""
    count = 0

    async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        try:
            await handler(reader, writer, count)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(serve_one, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws/driver"
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ],
    ids=["403", "wrong-accept"],
)
async def test_a_refused_upgrade_is_a_failed_connect_retried_later(answer: bytes) -> None:
    attempts = 0

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        nonlocal attempts
        await read_upgrade(reader)
        attempts += 1
        writer.write(answer)
        await writer.drain()
        await reader.read()  # until the client gives up on this connection

    async with raw_server(refuse) as url:
        vehicles = fleet(url, 1)
        generator = LoadGenerator(vehicles, rate_per_vehicle=20.0, pings_per_message=1)
        await run_until(generator, vehicles, lambda: generator.stats.reconnects >= 2)
    assert attempts >= 2
    assert not generator.all_connected.is_set()
    assert vehicles[0].sent_messages == 0


async def test_a_masked_server_frame_drops_the_connection_and_byte_split_frames_parse() -> None:
    """Connection 1 answers the batch with a masked frame (a protocol violation): the client
    drops it and re-sends on connection 2, which pings and acks one byte at a time."""
    frames: list[tuple[int, int, bytes, bytes]] = []  # (connection, opcode, mask, payload)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(switching(await read_upgrade(reader)))
        while True:
            opcode, mask, payload = await read_frame(reader)
            frames.append((n, opcode, mask, payload))
            if opcode == 0x8:
                writer.write(server_frame(0x8, payload))
                return
            if opcode != 0x1:
                continue
            batch = json.loads(payload)
            reply = json.dumps(ack(batch)).encode()
            if n == 1:
                masked = bytes((0x81, 0x80 | len(reply))) + b"abcd" + apply_mask(reply, b"abcd")
                writer.write(masked)
                continue
            out = server_frame(0x9, b"ping!") + server_frame(0x1, reply)
            for i in range(len(out)):
                writer.write(out[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0)

    async with raw_server(handler) as url:
        vehicles = fleet(url, 1)
        generator = LoadGenerator(vehicles, rate_per_vehicle=20.0, pings_per_message=2)
        await run_until(generator, vehicles, lambda: vehicles[0].acked_messages >= 2)
    texts = [(n, payload) for n, opcode, _, payload in frames if opcode == 0x1]
    assert texts[0][0] == 1
    assert texts[1][0] == 2
    assert texts[1][1] == texts[0][1], "the batch refused by a violation is re-sent as it was"
    assert (2, 0xA, b"ping!") in {(n, opcode, payload) for n, opcode, _, payload in frames}
    masks = [mask for _, _, mask, _ in frames]
    assert len(set(masks)) == len(masks), "a fresh mask key for every frame"
    acked = {p["ts"] for _, payload in texts[1:] for p in json.loads(payload)["pings"]}
    assert vehicles[0].acked_ts == acked
    assert generator.stats.reconnects >= 1


def test_the_client_runs_on_the_loop_factory_loop() -> None:
    """uvloop where it is installed: its transports are no ``asyncio.Transport`` subclasses."""

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        endpoint, vehicle, _, dropped = runner.run(drop_the_first_connection(2))
    assert dropped == [1]
    assert endpoint.raw[vehicle.token][1] == endpoint.raw[vehicle.token][0]
    assert vehicle.acked_ts == endpoint.acked[vehicle.token]


async def test_stop_just_as_a_connection_attempt_is_scheduled_still_finishes() -> None:
    """A connect task cancelled before its first step never runs its own handlers: the vehicle
    must finish anyway (this hung ``fleet bench ingest`` at the end of an overloaded run)."""
    vehicles = fleet("ws://127.0.0.1:9/ws/driver", 1)
    generator = LoadGenerator(vehicles, rate_per_vehicle=1.0, pings_per_message=1)
    vehicle = _Vehicle(generator, vehicles[0])
    vehicle._connect()  # the task exists, it has not run yet
    vehicle.stop(close_timeout=1.0)
    await asyncio.wait_for(vehicle.done, scaled(2))


async def test_a_console_measures_positions_and_counts_every_frame_kind() -> None:
    """The console reads only what it measures (each position's ``ts``) and counts the rest: an
    event, a frame that is not JSON, and positions with a field it does not know."""
    sent_ms = time.time() * 1000 - 250
    frames = [
        json.dumps({"type": "event", "event": {"type": "status", "vehicle_id": "v1"}}),
        "{not json",
        json.dumps({"type": "positions", "vehicles": [
            {"id": "v1", "lat": 60.1, "lon": 24.9, "ts": sent_ms, "speed": 3.0, "cell": "89"},
            {"id": "v2", "lat": 60.2, "lon": 24.8, "ts": sent_ms - 100, "new_field": [1, 2]},
        ]}),
    ]  # fmt: skip
    generator = LoadGenerator([], rate_per_vehicle=1.0, pings_per_message=1)
    generator.measure(True)

    async def console(ws: ServerConnection) -> None:
        for frame in frames:
            await ws.send(frame)
        await ws.wait_closed()

    async with serve(console, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        task = asyncio.create_task(generator.run_console(f"ws://127.0.0.1:{port}/ws/console"))
        deadline = time.monotonic() + scaled(5)
        while sum(generator.console_frames.values()) < len(frames):
            assert time.monotonic() < deadline, "the console did not read every frame"
            await asyncio.sleep(0.01)
        generator.stop()
        await asyncio.wait_for(task, scaled(3))
    assert generator.console_frames == {"event": 1, "invalid": 1, "positions": 1}
    first, second = generator.stats.latencies_ms
    assert 250 <= first < 250 + scaled(5) * 1000
    assert second - first == pytest.approx(100, abs=1)
    assert generator.stats.console_closes == 0
