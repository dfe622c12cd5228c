"""``GET /metrics``: Prometheus's text format, with figures that follow what happened."""

from __future__ import annotations

import asyncio
import os
import re

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from server import keys
from server.metrics import family
from server.tracking.filters import Limits
from server.tracking.ingest import Ingestor
from tests.conftest import AUTH
from tests.orders.test_orders_api import create
from tests.tracking.test_driver_socket import now_ms, pings, register, send, ws_url

SAMPLE = re.compile(r"^([a-z_]+)(?:\{(.*)\})? (-?[0-9.e+]+)$")


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Each sample: (name, labels) → value; checks every family is declared before its samples."""
    declared: dict[str, str] = {}
    samples = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            declared[name] = kind
            continue
        if line.startswith("# HELP ") or not line:
            continue
        found = SAMPLE.match(line)
        assert found, f"not a sample line: {line!r}"
        name, raw_labels, value = found.groups()
        assert name in declared, f"{name} has no # TYPE before it"
        labels = frozenset(re.findall(r'([a-z_]+)="([^"]*)"', raw_labels or ""))
        samples[(name, labels)] = float(value)
    return samples


async def test_metrics_follow_vehicles_orders_and_rejected_pings(live_server: str) -> None:
    assert httpx.get(f"{live_server}/metrics").status_code == 401
    token = register(live_server, "van-m1")
    register(live_server, "van-m2")
    httpx.patch(f"{live_server}/vehicles/van-m2", headers=AUTH, json={"status": "maintenance"})
    order_id = create(live_server)["order"]["id"]
    httpx.post(f"{live_server}/orders/{order_id}/cancel", headers=AUTH).raise_for_status()
    create(live_server)
    batch = pings(now_ms() - 5000, 2)
    batch[1]["lat"] = 95.0  # not a position: rejected as invalid
    async with connect(ws_url(live_server, f"/ws/driver?token={token}")) as ws:
        ack = await send(ws, {"type": "pings", "seq": 1, "pings": batch})
        assert ack["accepted"] == 1
        answer = httpx.get(f"{live_server}/metrics", headers=AUTH)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = parse(answer.text)

    def value(name: str, **labels: str) -> float:
        return got[(name, frozenset(labels.items()))]

    assert value("fleet_vehicles", status="available") == 1
    assert value("fleet_vehicles", status="maintenance") == 1
    assert value("fleet_vehicle_connections", state="online") == 1
    assert value("fleet_orders", status="received") == 1
    assert value("fleet_orders", status="cancelled") == 1
    assert value("fleet_orders", status="delivered") == 0
    assert value("fleet_pings_rejected_total", reason="invalid") == 1
    counted = parse(httpx.get(f"{live_server}/metrics", headers=AUTH).text)
    for _ in range(40):  # each process adds its counts every second
        if counted.get(("fleet_pings_accepted_total", frozenset())) == 1:
            break
        await asyncio.sleep(0.1)
        counted = parse(httpx.get(f"{live_server}/metrics", headers=AUTH).text)
    assert counted[("fleet_pings_accepted_total", frozenset())] == 1
    assert counted[("fleet_pings_duplicate_total", frozenset())] == 0
    assert value("fleet_dropoff_attempts", outcome="failed") == 0
    assert value("fleet_process_driver_sockets", pid=str(os.getpid())) == 1
    assert ("fleet_alerts_total", frozenset()) not in got  # no alert yet: no sample


def test_redis_memory_shows_what_a_proof_of_delivery_costs(live_server: str) -> None:
    def used() -> float:
        text = httpx.get(f"{live_server}/metrics", headers=AUTH).text
        return parse(text)[("fleet_redis_used_memory_bytes", frozenset())]

    order_id = create(live_server)["order"]["id"]
    before = used()
    photo = b"\xff\xd8\xff\xe0" + os.urandom(600_000)  # a JPEG's first bytes, then noise
    added = httpx.post(f"{live_server}/orders/{order_id}/proofs", headers={**AUTH,
                       "Content-Type": "image/jpeg"}, content=photo)  # fmt: skip
    assert added.status_code == 201, added.text
    assert used() - before >= 600_000
    limit = parse(httpx.get(f"{live_server}/metrics", headers=AUTH).text)
    assert limit[("fleet_redis_maxmemory_bytes", frozenset())] >= 0


def test_the_text_format_escapes_label_values() -> None:
    lines = family("fleet_t", "counter", "A test.", [({"reason": 'a"b\\c\nd'}, 1.5)])
    assert lines[-1] == 'fleet_t{reason="a\\"b\\\\c\\nd"} 1.5'
    with pytest.raises(AssertionError):
        parse("fleet_undeclared 1\n")


async def test_each_process_adds_only_what_it_counted_since_its_last_flush(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    one = Ingestor(client, resolution=9, limits=Limits())
    two = Ingestor(client, resolution=9, limits=Limits())
    try:
        one.accepted, one.duplicates, two.accepted = 3, 1, 4
        await one.flush_counts()
        await two.flush_counts()
        one.accepted += 2
        await one.flush_counts()
        await one.flush_counts()  # nothing new: nothing added
        assert await client.hgetall(keys.PING_COUNTS) == {b"accepted": b"9", b"duplicates": b"1"}
    finally:
        await client.aclose()
