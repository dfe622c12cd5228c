"""``GET /metrics``: Prometheus's text format, with figures that follow what happened."""

from __future__ import annotations

import os
import re

import httpx
import pytest
from websockets.asyncio.client import connect

from server.metrics import family
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
    assert value("fleet_dropoff_attempts", outcome="failed") == 0
    assert value("fleet_process_driver_sockets", pid=str(os.getpid())) == 1
    assert ("fleet_alerts_total", frozenset()) not in got  # no alert yet: no sample


def test_the_text_format_escapes_label_values() -> None:
    lines = family("fleet_t", "counter", "A test.", [({"reason": 'a"b\\c\nd'}, 1.5)])
    assert lines[-1] == 'fleet_t{reason="a\\"b\\\\c\\nd"} 1.5'
    with pytest.raises(AssertionError):
        parse("fleet_undeclared 1\n")
