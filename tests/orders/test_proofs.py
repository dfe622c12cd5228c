"""Proof of delivery over real HTTP with a real Redis: who may add, what is taken, who sees it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from server import keys
from server.orders.crypto import DecryptionError, Sealer, load_key
from server.orders.store import OrderStore
from tests.conftest import AUTH
from tests.orders.test_orders_api import create
from tests.tracking.test_driver_socket import register


def png(width: int = 4, height: int = 3, seed: int = 0) -> bytes:
    """A real, decodable PNG (grey noise, which does not compress): what a signature pad
    sends."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    noise = random.Random(seed)
    rows = b"".join(b"\x00" + noise.randbytes(width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(
    base: str,
    order_id: str,
    token: str,
    body: bytes,
    content_type: str = "image/png",
    **params: Any,
) -> httpx.Response:
    return httpx.post(
        f"{base}/orders/{order_id}/proofs",
        headers={**bearer(token), "Content-Type": content_type},
        params=params,
        content=body,
    )


def on_vehicle(redis_url: str, data_dir: Path, order_id: str, vehicle: str, status: str) -> None:
    """Move the order onto ``vehicle`` and on to ``status``, as the planner and driver would."""

    async def move() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            store = OrderStore(client, Sealer(load_key(data_dir)))
            await store.transition(order_id, "processed", by="planner", vehicle_id=vehicle)
            await store.advance(order_id, status, by=vehicle)
        finally:
            await client.aclose()

    asyncio.run(move())


@pytest.fixture
def van_order(
    live_server: str, redis_url: str, tmp_path: Path
) -> tuple[str, str, dict[str, Any], str]:
    """(base URL, van-1's driver token, an order created for it and now arrived, van-2's
    token)."""
    mine, other = register(live_server, "van-1"), register(live_server, "van-2")
    created = create(live_server)
    on_vehicle(redis_url, tmp_path, created["order"]["id"], "van-1", "arrived")
    return live_server, mine, created, other


def test_a_driver_adds_a_photo_that_staff_and_then_the_customer_see(
    van_order: tuple[str, str, dict[str, Any], str], redis_url: str, tmp_path: Path
) -> None:
    base, token, created, other = van_order
    order_id, link = created["order"]["id"], created["tracking_token"]
    image = png(seed=7)
    answer = upload(base, order_id, token, image, kind="signature")
    assert answer.status_code == 201, answer.text
    proof = answer.json()
    assert proof["order_id"] == order_id
    assert (proof["kind"], proof["content_type"], proof["bytes"]) == ("signature", "image/png",
                                                                      len(image))  # fmt: skip
    assert proof["by"] == "vehicle:van-1"
    listed = httpx.get(f"{base}/orders/{order_id}/proofs", headers=AUTH).json()
    assert listed == [proof]
    got = httpx.get(f"{base}/orders/{order_id}/proofs/{proof['id']}", headers=AUTH)
    assert got.status_code == 200
    assert got.content == image
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    # Sealed at rest, and only as this order's proof.
    with redis.Redis.from_url(redis_url) as r:
        stored = r.hget(keys.order_proofs(order_id), proof["id"])
    assert isinstance(stored, bytes)
    assert image not in stored
    assert len(stored) == len(image) + 28  # nonce and tag: raw bytes, no base64
    sealer = Sealer(load_key(tmp_path))
    assert sealer.open_bytes(f"proof:{order_id}:{proof['id']}", stored) == image
    with pytest.raises(DecryptionError):
        sealer.open_bytes(f"proof:o-other:{proof['id']}", stored)
    # Another van's driver, no token, a driver reading: refused.
    refused = upload(base, order_id, other, png())
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "not_your_order")
    anonymous = httpx.post(f"{base}/orders/{order_id}/proofs", content=png(),
                           headers={"Content-Type": "image/png"})  # fmt: skip
    assert anonymous.status_code == 401
    assert httpx.get(f"{base}/orders/{order_id}/proofs", headers=bearer(token)).status_code == 403
    # The customer sees nothing before the delivery, the proof after it.
    view = httpx.get(f"{base}/track/{link}").json()
    assert view["proofs"] == []
    early = httpx.get(f"{base}/track/{link}/proofs/{proof['id']}")
    assert early.status_code == 404
    on_delivered(redis_url, tmp_path, order_id)
    view = httpx.get(f"{base}/track/{link}").json()
    url = f"/track/{link}/proofs/{proof['id']}"
    at = int(dt.datetime.fromisoformat(proof["at"]).timestamp() * 1000)
    assert view["proofs"] == [{"id": proof["id"], "kind": "signature", "at": at, "url": url}]
    assert httpx.get(base + url).content == image
    assert httpx.get(f"{base}/track/{link}/proofs/p-000000000000").status_code == 404
    # The driver may still add a photo after the delivery; staff may add one any time.
    assert upload(base, order_id, token, png(seed=1)).status_code == 201
    staff = upload(base, order_id, "test-dispatcher-token", b"\xff\xd8\xff\xe0" + b"0" * 64,
                   content_type="image/jpeg")  # fmt: skip
    assert staff.status_code == 201, staff.text
    assert staff.json()["by"] == "staff"
    kinds = [p["kind"] for p in httpx.get(f"{base}/orders/{order_id}/proofs", headers=AUTH).json()]
    assert kinds == ["signature", "photo", "photo"]


def on_delivered(redis_url: str, data_dir: Path, order_id: str) -> None:
    async def deliver() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await OrderStore(client, Sealer(load_key(data_dir))).advance(
                order_id, "delivered", by="van-1"
            )
        finally:
            await client.aclose()

    asyncio.run(deliver())


@pytest.mark.parametrize(
    ("body", "content_type", "params", "status", "code"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", {}, 415,
         "unsupported_media_type"),
        (b"<html><script>alert(1)</script></html>", "image/png", {}, 400, "bad_request"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "image/webp", {}, 400, "bad_request"),
        (b"", "image/png", {}, 400, "bad_request"),
        (png(), "image/png", {"kind": "video"}, 400, "validation_failed"),
        (png(200, 200), "image/png", {}, 413, "too_large"),
    ],
)  # fmt: skip
def test_what_is_not_a_small_image_is_refused_with_a_reason(
    server_factory: Callable[..., str],
    redis_url: str,
    tmp_path: Path,
    body: bytes,
    content_type: str,
    params: dict[str, str],
    status: int,
    code: str,
) -> None:
    base = server_factory(proof_max_bytes=1024)
    token = register(base, "van-1")
    order_id = create(base)["order"]["id"]
    on_vehicle(redis_url, tmp_path, order_id, "van-1", "arrived")
    answer = upload(base, order_id, token, body, content_type, **params)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert httpx.get(f"{base}/orders/{order_id}/proofs", headers=AUTH).json() == []


def test_a_body_too_large_is_refused_while_it_streams(
    server_factory: Callable[..., str], redis_url: str, tmp_path: Path
) -> None:
    """Without a Content-Length (chunked), the server stops reading at the limit."""
    base = server_factory(proof_max_bytes=1024)
    token = register(base, "van-1")
    order_id = create(base)["order"]["id"]
    on_vehicle(redis_url, tmp_path, order_id, "van-1", "arrived")

    def chunks() -> Any:
        yield b"\x89PNG\r\n\x1a\n"
        for _ in range(64):
            yield b"0" * 256

    answer = httpx.post(
        f"{base}/orders/{order_id}/proofs",
        headers={**bearer(token), "Content-Type": "image/png"},
        content=chunks(),
    )
    assert answer.status_code == 413
    assert "passes 1024 bytes" in answer.json()["error"]["message"]


def test_limits_on_which_orders_and_how_many(
    van_order: tuple[str, str, dict[str, Any], str], redis_url: str, tmp_path: Path
) -> None:
    base, token, created, _ = van_order
    order_id = created["order"]["id"]
    for k in range(6):
        assert upload(base, order_id, token, png(seed=k)).status_code == 201
    seventh = upload(base, order_id, token, png())
    assert (seventh.status_code, seventh.json()["error"]["code"]) == (409, "too_many_proofs")
    missing = upload(base, "o-000000000000", token, png())
    assert missing.status_code == 404
    # An order not on its way any more (cancelled) takes no proof from a driver.
    waiting = create(base)["order"]["id"]
    on_vehicle(redis_url, tmp_path, waiting, "van-1", "departed")
    cancel = httpx.post(f"{base}/orders/{waiting}/cancel", headers=AUTH, json={})
    assert cancel.status_code == 200
    late = upload(base, waiting, token, png())
    assert (late.status_code, late.json()["error"]["code"]) == (409, "conflict")
    assert "cancelled" in late.json()["error"]["message"]


def test_a_proof_is_announced_to_consoles(
    van_order: tuple[str, str, dict[str, Any], str], redis_url: str
) -> None:
    base, token, created, _ = van_order
    with redis.Redis.from_url(redis_url) as r:
        before = r.xlen(keys.EVENTS_LOG)
        proof = upload(base, created["order"]["id"], token, png()).json()
        entries = r.xrange(keys.EVENTS_LOG)[before:]
    events = [json.loads(fields[b"e"]) for _, fields in entries]
    assert {"type": "order_proof", "order_id": created["order"]["id"], "proof_id": proof["id"],
            "kind": "photo", "by": "vehicle:van-1"} in events  # fmt: skip
