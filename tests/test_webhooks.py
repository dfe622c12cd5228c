"""Webhooks end to end: a real server POSTs signed events to a real HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from server import keys
from server.auth import token_hash
from server.events import queue_event
from server.orders.crypto import Sealer
from server.webhooks import WebhookIn, WebhookSender, create_webhook
from tests.conftest import AUTH
from tests.orders.test_orders_api import create
from tests.web.conftest import wait_for

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Receiver:
    """An HTTP endpoint that records what it is sent and answers with the codes queued."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []  # every request: headers, body, the code answered
        self.codes: list[int] = []  # answered in turn, then 204 for ever
        self.delay_s = 0.0  # how long each answer takes
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.monotonic()
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(outer.delay_s)
                code = outer.codes.pop(0) if outer.codes else 204
                outer.got.append(
                    {"headers": dict(self.headers), "body": body, "code": code, "at": at}
                )
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def taken(self) -> list[dict[str, Any]]:
        """The bodies of the deliveries answered 2xx, in order."""
        return [json.loads(r["body"]) for r in self.got if 200 <= r["code"] < 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()
    found.server.server_close()


@pytest.fixture
def admin(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.hset(keys.staff_token(token_hash(ADMIN_TOKEN)), mapping={"role": "admin"})
    client.close()


def test_order_events_reach_the_receiver_signed_in_order_and_once(
    server_factory: Any, receiver: Receiver, admin: None
) -> None:
    base = server_factory(webhook_retry_s=0.2)
    refused = httpx.post(
        f"{base}/webhooks", headers=AUTH, json={"url": receiver.url, "events": ["order"]}
    )
    assert refused.status_code == 403  # a dispatcher may not send data out
    made = httpx.post(
        f"{base}/webhooks", headers=ADMIN, json={"url": receiver.url, "events": ["order"]}
    )
    assert made.status_code == 201, made.text
    hook = made.json()
    receiver.codes = [500, 503]  # the first two tries fail
    order_id = create(base)["order"]["id"]
    httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": "van-w"}).raise_for_status()
    patched = httpx.patch(f"{base}/vehicles/van-w", headers=AUTH, json={"status": "maintenance"})
    assert patched.status_code == 200  # a vehicle event: not one this webhook wants
    assert httpx.post(f"{base}/orders/{order_id}/cancel", headers=AUTH).status_code == 200
    wait_for(lambda: len(receiver.taken()) == 2, "both order events delivered")
    taken = receiver.taken()
    assert [(b["type"], b["data"]["status"]) for b in taken] == [
        ("order", "received"), ("order", "cancelled")
    ]  # fmt: skip
    assert len(receiver.got) == 4, "two failed tries, then each event once"
    for request in receiver.got:
        headers, body = request["headers"], request["body"]
        assert headers["Fleet-Event-Id"] == json.loads(body)["id"]
        stamp = int(headers["Fleet-Signature"].split(",")[0].removeprefix("t="))
        mac = hmac.new(hook["secret"].encode(), f"{stamp}.".encode() + body, hashlib.sha256)
        assert headers["Fleet-Signature"] == f"t={stamp},v1={mac.hexdigest()}"
        assert abs(stamp - time.time()) < 60
    listed = httpx.get(f"{base}/webhooks", headers=ADMIN).json()
    assert [(w["id"], w["failures"], w["last_error"]) for w in listed] == [(hook["id"], 0, None)]
    assert listed[0]["last_success_at"] is not None
    assert "secret" not in listed[0]

    assert httpx.delete(f"{base}/webhooks/{hook['id']}", headers=ADMIN).status_code == 204
    create(base)
    time.sleep(1.5)  # several delivery rounds (every 0.5 s): nothing more after the removal
    assert len(receiver.got) == 4
    assert httpx.delete(f"{base}/webhooks/{hook['id']}", headers=ADMIN).status_code == 404


def test_a_receiver_away_longer_than_the_log_is_told_of_the_gap(
    redis_url: str, receiver: Receiver
) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url)
        sealer = Sealer(b"w" * 32)
        sender = WebhookSender(client, sealer)
        try:
            async with client.pipeline(transaction=False) as pipe:
                queue_event(pipe, {"type": "order", "order_id": "o-0", "status": "received"})
                await pipe.execute()
            hook = await create_webhook(client, sealer, WebhookIn(receiver.url, ["*"]))
            ids = []
            for n in range(1, 4):
                ids.append(
                    await client.xadd(keys.EVENTS_LOG, {"e": json.dumps({"type": "order", "n": n})})
                )
            await client.xtrim(keys.EVENTS_LOG, minid=ids[2], approximate=False)  # 1, 2 lost
            assert await sender.deliver() == 1
            await sender.deliver()
            got = receiver.taken()
            assert [b["type"] for b in got] == ["gap", "order"]
            assert got[0]["data"]["missed"] == 2  # o-0 was sent before the webhook existed
            assert got[1]["data"]["n"] == 3
            assert hook.secret.startswith("whsec_")
        finally:
            await sender.close()
            await client.aclose()

    asyncio.run(run())


def test_a_slow_receiver_holds_back_only_its_own_events(redis_url: str) -> None:
    slow, slower, fast = Receiver(), Receiver(), Receiver()
    slow.delay_s = slower.delay_s = 1.0

    async def run() -> float:
        client = aioredis.Redis.from_url(redis_url)
        sealer = Sealer(b"w" * 32)
        sender = WebhookSender(client, sealer)
        try:
            for receiver in (slow, slower, fast):
                await create_webhook(client, sealer, WebhookIn(receiver.url, ["order"]))
            async with client.pipeline(transaction=False) as pipe:
                for n in range(3):
                    queue_event(pipe, {"type": "order", "order_id": f"o-{n}", "status": "received"})
                await pipe.execute()
            started = time.monotonic()
            assert await sender.deliver() == 9
            return started
        finally:
            await sender.close()
            await client.aclose()

    try:
        started = asyncio.run(run())
        for receiver in (slow, slower, fast):
            assert [b["data"]["order_id"] for b in receiver.taken()] == ["o-0", "o-1", "o-2"]
        # Side by side: every receiver had its first event at once, whatever the order they
        # were taken in; one after the other, one of them would have waited 3 s (or 6).
        firsts = [r.got[0]["at"] - started for r in (slow, slower, fast)]
        assert max(firsts) < 0.8, firsts
        assert fast.got[-1]["at"] - started < 0.8, "the fast receiver did not wait for the slow"
    finally:
        for receiver in (slow, slower, fast):
            receiver.server.shutdown()
            receiver.server.server_close()


def test_bad_webhooks_are_refused_with_the_field(
    server_factory: Any, receiver: Receiver, admin: None
) -> None:
    base = server_factory()
    for body, field in (
        ({"url": "ftp://example.com/x", "events": ["order"]}, "url"),
        ({"url": receiver.url, "events": ["orders"]}, "events"),
        ({"url": receiver.url, "events": []}, "events"),
        ({"url": receiver.url}, "events"),
    ):
        answer = httpx.post(f"{base}/webhooks", headers=ADMIN, json=body)
        assert answer.status_code == 400, body
        assert field in answer.text
    assert httpx.get(f"{base}/webhooks").status_code == 401
    assert httpx.get(f"{base}/webhooks", headers=ADMIN).json() == []


def test_order_etas_are_sent_when_new_or_moved_by_a_minute(
    redis_url: str, receiver: Receiver
) -> None:
    """What a shop texts its customer: a drop-off's ETA, again only when it moves."""

    def eta_event(kind: str, *stops: tuple[str, str, int]) -> dict[str, Any]:
        return {"type": kind, "vehicle_id": "van-1",
                "stops": [{"order_id": o, "kind": k, "eta": t, "late_risk": False}
                          for o, k, t in stops]}  # fmt: skip

    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url)
        sealer = Sealer(b"w" * 32)
        sender = WebhookSender(client, sealer)
        try:
            await create_webhook(client, sealer, WebhookIn(receiver.url, ["order_eta"]))
            t = 1_800_000_000_000
            updates = [
                eta_event("route", ("o-1", "pickup", t - 600_000), ("o-1", "dropoff", t)),
                eta_event("eta", ("o-1", "dropoff", t + 30_000), ("o-2", "dropoff", t + 900_000)),
                eta_event("eta", ("o-1", "dropoff", t + 90_000), ("o-2", "dropoff", t + 930_000)),
            ]
            async with client.pipeline(transaction=False) as pipe:
                for update in updates:
                    queue_event(pipe, update)
                queue_event(pipe, {"type": "order", "order_id": "o-1", "status": "departed"})
                await pipe.execute()
            await sender.deliver()
            got = [(b["data"]["order_id"], b["data"]["eta"]) for b in receiver.taken()]
            assert got == [("o-1", t), ("o-2", t + 900_000), ("o-1", t + 90_000)]
            assert {b["type"] for b in receiver.taken()} == {"order_eta"}
            ids = [r["headers"]["Fleet-Event-Id"] for r in receiver.got]
            assert len(set(ids)) == 3
        finally:
            await sender.close()
            await client.aclose()

    asyncio.run(run())
