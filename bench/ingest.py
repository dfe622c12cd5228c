"""``fleet bench ingest``: the tracking hot path under load, end to end, on this machine.

Starts a private Redis and ``workers`` server processes on it, registers ``vehicles`` vehicles
through the API, connects them all over real WebSockets (``simulator.load``), plus ``consoles``
console subscribers watching the whole world, then sends at ``rate`` pings a second per vehicle,
``pings_per_message`` per message, for ``duration_s`` after a warm-up. Halfway through, a
``drop_fraction`` of the connections is cut without a close handshake; they reconnect and re-send
what was not acked.

Reports sustained acked pings/s, ping → console latency p50/p95/p99, ack latency, server CPU µs per
ping, server memory per connection, and whether every acked ping is in Redis exactly once. In the
same run, the baseline: the same Redis writes (per message) sent as raw pipelined commands.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import hiredis
import httpx
import redis

from server import keys
from server.auth import issue_token
from server.gctuning import tuned_for_many_sockets
from server.redis_process import PrivateRedis
from server.tracking.queries import entry_points
from simulator.load import LoadGenerator, VehicleLoad, loop_factory, percentile

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and of its children that have ended (Redis's append-only-file
    rewrites run in a child every few seconds under this load: their work is Redis's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / CLOCK_TICKS


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


#: The figures whose spread over repeated runs is reported: this host's runs of one commit
#: differ by 15% in throughput and 3x in the p99 (docs/BENCHMARKS.md).
SPREAD_FIGURES = (
    "acked_pings_per_s",
    "console_latency_ms_p50",
    "console_latency_ms_p95",
    "console_latency_ms_p99",
    "ack_latency_ms_p50",
    "ack_latency_ms_p99",
    "server_cpu_us_per_ping",
    "redis_cpu_us_per_ping",
    "generator_cpu_us_per_ping",
    "raw_redis_baseline_pings_per_s",
)
#: Counts of what went wrong: summed over the runs, so one bad run shows.
SUMMED_FIGURES = (
    "errors",
    "acked_not_stored",
    "stored_twice",
    "stored_not_acked",
    "batches_abandoned_at_stop",
    "cut_not_back_at_stop",
    "console_closes",
)


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result for independent runs of the same load: the median run's figures (by acked
    pings/s; the lower one of two middles), every loss and error of any run summed, and each
    figure's spread (min, median, max) with the runs' own figures. One run is itself."""
    if len(runs) == 1:
        return runs[0]
    median_run = sorted(runs, key=lambda r: r["acked_pings_per_s"])[(len(runs) - 1) // 2]
    spread = {}
    for name in SPREAD_FIGURES:
        values = [r[name] for r in runs if r[name] is not None and not math.isnan(r[name])]
        if values:
            spread[name] = {"min": min(values), "median": statistics.median(values),
                            "max": max(values), "runs": [r[name] for r in runs]}  # fmt: skip
    return {
        **median_run,
        **{name: sum(r[name] for r in runs) for name in SUMMED_FIGURES},
        "repeats": len(runs),
        "spread": spread,
    }


def spread_line(result: dict[str, Any]) -> str:
    """The spread of repeated runs, for people."""
    spread = result["spread"]

    def span(name: str, unit: str) -> str:
        if name not in spread:
            return f"{name} n/a"
        s = spread[name]
        return f"{s['min']:,} to {s['max']:,} {unit} (median {s['median']:,})"

    return (f"{result['repeats']} runs: {span('acked_pings_per_s', 'acked pings/s')}; "
            f"console p99 {span('console_latency_ms_p99', 'ms')}; "
            f"{result['acked_not_stored']} acked pings lost and {result['stored_twice']} "
            "stored twice in all")  # fmt: skip


def _back_after_cut(seconds: list[float]) -> dict[str, float | None]:
    """How long the cut connections took to open again (None when none was cut)."""
    return {
        "back_after_cut_s_p50": round(percentile(seconds, 0.50), 2) if seconds else None,
        "back_after_cut_s_p99": round(percentile(seconds, 0.99), 2) if seconds else None,
        "back_after_cut_s_max": round(max(seconds), 2) if seconds else None,
    }


def _start_server(
    redis_url: str, data_dir: Path, extra_env: dict[str, str]
) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env.update(FLEET_REDIS_URL=redis_url, FLEET_LOG_LEVEL="warning", **extra_env)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server.cli",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"listening on (http://\S+)", log_path.read_text())
        if match:
            base = match.group(1)
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/ready").status_code == 200:
                        return process, base
                except httpx.TransportError:
                    time.sleep(0.05)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"a server process did not start: {log_path.read_text()[-2000:]}")


async def _register(bases: list[str], count: int, token: str) -> list[tuple[str, str, str]]:
    """Register ``count`` vehicles round-robin on the servers: (id, token, base)."""
    out: list[tuple[str, str, str]] = []
    limits = httpx.Limits(max_connections=32)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            base = bases[i % len(bases)]
            async with sem:
                for attempt in range(3):  # a kept-alive connection may close under our feet
                    try:
                        answer = await client.post(f"{base}/vehicles", json={"id": f"bench-{i}"})
                        break
                    except httpx.TransportError:
                        if attempt == 2:
                            raise
            answer.raise_for_status()
            out.append((f"bench-{i}", answer.json()["token"], base))

        await asyncio.gather(*(one(i) for i in range(count)))
    return out


def _stored_stamps(client: redis.Redis, vehicle_ids: list[str]) -> list[list[int]]:
    """Each vehicle's stored ping timestamps (track entries and late pings), one list each."""
    out: list[list[int]] = []
    for first in range(0, len(vehicle_ids), 500):
        pipe = client.pipeline(transaction=False)
        for vid in vehicle_ids[first : first + 500]:
            pipe.xrange(keys.track(vid))
            pipe.zrange(keys.late(vid), 0, -1)
        replies = pipe.execute()
        for entries, late in zip(replies[::2], replies[1::2], strict=True):
            stamps = [p.ts for entry_id, fields in entries for p in entry_points(entry_id, fields)]
            out.append(stamps + [int(member.split(b",")[0]) for member in late])
    return out


def _compare_stored(vehicles: list[VehicleLoad], stored: list[list[int]]) -> tuple[int, int, int]:
    """(acked pings not stored, pings stored more than once, pings stored but never acked),
    timestamp by timestamp."""
    lost = duplicated = unacked = 0
    for v, stamps in zip(vehicles, stored, strict=True):
        unique = set(stamps)
        duplicated += len(stamps) - len(unique)
        lost += len(v.acked_ts - unique)
        unacked += len(unique - v.acked_ts)
    return lost, duplicated, unacked


def raw_redis_baseline(
    redis_url: str, pings: int, *, per_message: int = 1, batch: int = 1000
) -> float:
    """Pings/s when the same writes are sent as raw pipelined commands by one client: per
    message of ``per_message`` pings, one track entry holding them, the live hash, the cell
    membership, the last-seen time and the published position.

    The client is as lean as a client gets (commands packed by hiredis, written and read on a
    plain socket), so the figure is what Redis itself sustains for these writes on this machine.
    """
    kwargs = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    sock = socket.create_connection((kwargs.get("host", "localhost"), kwargs.get("port", 6379)))
    reader = hiredis.Reader()
    pack = cast("Callable[[tuple[object, ...]], bytes]", hiredis.pack_command)
    if kwargs.get("db"):
        sock.sendall(pack(("SELECT", kwargs["db"])))
        _replies(sock, reader, 1)
    messages = max(1, pings // per_message)
    start_ms = int(time.time() * 1000) - messages * per_message
    started = time.perf_counter()
    for first in range(0, messages, batch):
        commands: list[bytes] = []
        for i in range(first, min(first + batch, messages)):
            vid = f"raw-{i % 10_000}"
            ts = start_ms + i * per_message
            entry = ";".join(f"{ts + j},60.17,24.94,,," for j in range(per_message))
            last = ts + per_message - 1
            commands += [
                pack(("XADD", keys.track(vid), "MINID", "~", ts - 3_600_000, f"{ts}-*",
                      "b", entry)),
                pack(("HSET", keys.live(vid), "ts", last, "lat", 60.17, "lon", 24.94,
                      "cell", "x")),
                pack(("SADD", keys.cell(9, "x"), vid)),
                pack(("ZADD", "fleet:raw:lastseen", last, vid)),
                pack(("PUBLISH", "fleet:raw:pos", b'{"id":"%s","ts":%d}' % (vid.encode(), last))),
            ]  # fmt: skip
        sock.sendall(b"".join(commands))
        _replies(sock, reader, len(commands))
    elapsed = time.perf_counter() - started
    sock.close()
    return messages * per_message / elapsed


def _replies(sock: socket.socket, reader: hiredis.Reader, count: int) -> None:
    got = 0
    while got < count:
        data = sock.recv(1 << 20)
        if not data:
            raise RuntimeError("Redis closed the connection during the baseline")
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            if isinstance(reply, hiredis.ReplyError):
                raise RuntimeError(f"Redis refused a baseline write: {reply}")
            got += 1


def run(
    *,
    vehicles: int = 10_000,
    rate: float = 2.0,
    pings_per_message: int = 1,
    duration_s: float = 60.0,
    warmup_s: float = 10.0,
    workers: int = 2,
    consoles: int = 2,
    drop_fraction: float = 0.1,
    server_settings: dict[str, str] | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fleet-bench-ingest-") as tmp:
        data = Path(tmp)
        with PrivateRedis(data / "redis-data") as private:
            servers = []
            try:
                extra = {"FLEET_DRIVER_MAX_MESSAGES_PER_S": str(max(20.0, rate * 4)),
                         **(server_settings or {})}  # fmt: skip
                for i in range(workers):
                    servers.append(_start_server(private.url, data / f"s{i}", extra))
                bases = [base for _, base in servers]
                progress(f"redis {private.url}; {workers} server process(es): {', '.join(bases)}")
                assert private.process is not None
                result = _run_loop(
                    _drive(private.url, private.process.pid, servers, vehicles, rate,
                           pings_per_message, duration_s, warmup_s, consoles, drop_fraction,
                           progress)
                )  # fmt: skip
                return {**result, "server_settings": dict(server_settings or {})}
            finally:
                for process, _ in servers:
                    process.terminate()
                for process, _ in servers:
                    try:
                        process.wait(10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                _report_server_logs(data, progress)


def loopback_floor_us(rounds: int = 20_000) -> float:
    """µs of CPU for one small message sent and received over loopback TCP by plain sockets: the
    kernel's share of every message on this machine, a floor no WebSocket stack goes under."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        message = b"x" * 60
        started = time.process_time()
        for _ in range(rounds):
            client.send(message)
            peer.recv(4096)
        elapsed = time.process_time() - started
        client.close()
        peer.close()
    return elapsed / rounds * 1e6


def _run_loop(main: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run the load on the cheapest loop (uvloop, a dependency): the generator shares the
    machine's two cores with the servers and Redis, so its own cost matters."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def _report_server_logs(data: Path, progress: Callable[[str], None]) -> None:
    """Show what the servers complained about, if anything (first lines of each kind)."""
    seen: dict[str, int] = {}
    for log in sorted(data.glob("s*/server.log")):
        for line in log.read_text(errors="replace").splitlines():
            if "WARNING" in line or "ERROR" in line or "Traceback" in line:
                kind = re.sub(r"\d+", "#", line)[:160]
                seen[kind] = seen.get(kind, 0) + 1
    for kind, count in list(seen.items())[:5]:
        progress(f"server log (x{count}): {kind}")


async def _drive(
    redis_url: str,
    redis_pid: int,
    servers: list[tuple[subprocess.Popen[str], str]],
    count: int,
    rate: float,
    per_message: int,
    duration_s: float,
    warmup_s: float,
    consoles: int,
    drop_fraction: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    bases = [base for _, base in servers]
    pids = [process.pid for process, _ in servers]
    t0 = time.perf_counter()
    staff = issue_token(redis_url, "dispatcher", "fleet bench ingest")
    registered = await _register(bases, count, staff)
    progress(f"registered {count} vehicles in {time.perf_counter() - t0:.1f} s")
    loads = [
        VehicleLoad(vid, token, base.replace("http://", "ws://") + f"/ws/driver?token={token}",
                    lat=60.10 + (i % 100) * 0.002, lon=24.80 + (i // 100 % 100) * 0.004)
        for i, (vid, token, base) in enumerate(registered)
    ]  # fmt: skip
    # At the end every batch in flight gets its ack before the count (close_timeout), so acked
    # and stored pings can be compared one for one.
    generator = LoadGenerator(
        loads, rate_per_vehicle=rate, pings_per_message=per_message, close_timeout=60.0
    )
    rss_before = sum(_rss_bytes(pid) for pid in pids)
    console_tasks = [
        asyncio.create_task(
            generator.run_console(
                bases[i % len(bases)].replace("http://", "ws://") + f"/ws/console?token={staff}"
            )
        )
        for i in range(consoles)
    ]
    tasks = [asyncio.create_task(generator.run_vehicle(v)) for v in loads]
    t0 = time.perf_counter()
    try:
        await asyncio.wait_for(generator.all_connected.wait(), 120)
    except TimeoutError:
        progress("not every vehicle connected within 120 s; measuring what did")
    # The generator holds 10,000 sockets too: with the default collector its full passes
    # paused it for 145 ms at a time, holding back the acks and frames it was timing.
    with tuned_for_many_sockets():
        rss_after = sum(_rss_bytes(pid) for pid in pids)
        per_connection = (rss_after - rss_before) / max(1, count)
        progress(f"{count} vehicles connected in {time.perf_counter() - t0:.1f} s; "
                 f"server memory +{(rss_after - rss_before) / 2**20:.0f} MiB "
                 f"({per_connection / 1024:.1f} KiB per connection)")  # fmt: skip
        progress(f"warming up {warmup_s:.0f} s at {count * rate:,.0f} pings/s target "
                 f"({per_message} per message)")  # fmt: skip
        await asyncio.sleep(warmup_s)
        generator.measure(True)
        cpu0 = sum(_cpu_seconds(pid) for pid in pids)
        redis_cpu0, generator_cpu0 = _cpu_seconds(redis_pid), time.process_time()
        started = time.perf_counter()
        half = duration_s / 2
        for tick in range(int(duration_s)):
            await asyncio.sleep(1.0)
            if tick + 1 == int(half) and drop_fraction > 0:
                dropped = generator.drop(drop_fraction)
                progress(f"  dropped {dropped} connections without a close handshake")
            if (tick + 1) % 10 == 0:
                elapsed = time.perf_counter() - started
                rate_now = generator.stats.acked_pings / elapsed
                p99 = percentile(generator.stats.latencies_ms, 0.99)
                progress(
                    f"  {tick + 1:>3} s: {rate_now:,.0f} acked pings/s, console p99 {p99:.0f} ms"
                )
        elapsed = time.perf_counter() - started
        cpu = sum(_cpu_seconds(pid) for pid in pids) - cpu0
        redis_cpu = _cpu_seconds(redis_pid) - redis_cpu0
        generator_cpu = time.process_time() - generator_cpu0
        generator.measure(False)
        generator.stop()
        await asyncio.gather(*tasks, *console_tasks, return_exceptions=True)
    stats = generator.stats

    progress("checking Redis: every acked ping stored exactly once")
    client = redis.Redis.from_url(redis_url)
    found = _stored_stamps(client, [v.vehicle_id for v in loads])
    stored = sum(map(len, found))
    acked = sum(len(v.acked_ts) for v in loads)
    differ = [i for i, v in enumerate(loads) if len(found[i]) != len(v.acked_ts)]
    suspects = [loads[i] for i in differ]
    lost, duplicated, unacked = _compare_stored(suspects, [found[i] for i in differ])
    if suspects:
        progress(f"  {len(suspects)} vehicles differ: {lost} acked pings not stored, "
                 f"{duplicated} stored twice, {unacked} stored but never acked; "
                 f"{stats.abandoned_batches} batches were unacked on vehicles between "
                 "connections when the load stopped")  # fmt: skip
    client.close()
    back = _back_after_cut(stats.back_after_cut_s)
    if stats.back_after_cut_s or stats.cut_not_back:
        progress(f"  cut connections open again after p50/p99/max {back['back_after_cut_s_p50']}/"
                 f"{back['back_after_cut_s_p99']}/{back['back_after_cut_s_max']} s; "
                 f"{stats.cut_not_back} not open again when the load stopped")  # fmt: skip
    progress("baseline: the same writes as raw pipelined Redis commands")
    baseline = raw_redis_baseline(redis_url, 200_000, per_message=per_message)
    floor_us = loopback_floor_us()
    progress(f"loopback TCP floor: {floor_us:.1f} µs of CPU per small message sent and received")
    throughput = stats.acked_pings / elapsed
    result = {
        "vehicles": count,
        "workers": len(servers),
        "pings_per_message": per_message,
        "target_pings_per_s": count * rate,
        "duration_s": round(elapsed, 1),
        "acked_pings_per_s": round(throughput),
        "console_latency_ms_p50": round(percentile(stats.latencies_ms, 0.50), 1),
        "console_latency_ms_p95": round(percentile(stats.latencies_ms, 0.95), 1),
        "console_latency_ms_p99": round(percentile(stats.latencies_ms, 0.99), 1),
        "ack_latency_ms_p50": round(percentile(stats.ack_latencies_ms, 0.50), 1),
        "ack_latency_ms_p99": round(percentile(stats.ack_latencies_ms, 0.99), 1),
        "server_cpu_us_per_ping": round(cpu / max(1, stats.acked_pings) * 1e6, 1),
        "redis_cpu_us_per_ping": round(redis_cpu / max(1, stats.acked_pings) * 1e6, 1),
        "generator_cpu_us_per_ping": round(generator_cpu / max(1, stats.acked_pings) * 1e6, 1),
        "server_memory_per_connection_kib": round(per_connection / 1024, 1),
        "reconnects": stats.reconnects,
        "console_closes": stats.console_closes,
        "console_frames": dict(generator.console_frames),
        "errors": stats.errors,
        "error_codes": dict(generator.error_codes),
        "acked_pings_total": acked,
        "stored_pings_total": stored,
        "vehicles_with_mismatch": len(suspects),
        "acked_not_stored": lost,
        "stored_twice": duplicated,
        "stored_not_acked": unacked,
        "batches_abandoned_at_stop": stats.abandoned_batches,
        **back,
        "cut_not_back_at_stop": stats.cut_not_back,
        "raw_redis_baseline_pings_per_s": round(baseline),
        "loopback_send_recv_us": round(floor_us, 1),
        "ratio_to_raw_redis": round(throughput / baseline, 3),
    }
    progress(f"sustained {throughput:,.0f} acked pings/s over {elapsed:.0f} s "
             f"({result['ratio_to_raw_redis']:.2f} x the raw Redis baseline of {baseline:,.0f}/s); "
             f"console p50/p95/p99 {result['console_latency_ms_p50']}/"
             f"{result['console_latency_ms_p95']}/{result['console_latency_ms_p99']} ms; "
             f"acked {acked}, stored {stored}")  # fmt: skip
    return result
