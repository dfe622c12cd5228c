"""Webhooks: the events a shop's own systems want, POSTed to their URL, signed, in order.

An admin registers a URL and the event types it wants (``order`` status changes, ``eta``
updates, ``alert``s, …, or ``*``: every type logged), and ``order_eta``, made here from routes
and ETA updates: one per drop-off whose ETA is new or moved by a minute or more (what a shop
texts its customer); the answer holds a secret, shown once. One process at a time
(lease ``fleet:lease:webhooks``) reads ``fleet:events:log`` from each webhook's cursor and POSTs
every wanted event, one request each, oldest first (each webhook in order, the webhooks side by
side, so a slow receiver delays only its own events)::

    POST <url>
    Content-Type: application/json
    Fleet-Event-Id: 1764065990000-0
    Fleet-Signature: t=1764065990,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>

    {"id": "1764065990000-0", "type": "order", "data": {"type": "order", "order_id": …}}

A 2xx answer moves the cursor past the event; anything else (or no answer within 5 s) leaves it
there and the webhook is tried again after ``FLEET_WEBHOOK_RETRY_S``, doubling up to 10 minutes
while it keeps failing. Delivery is at least once (the cursor is saved after each answer: a
process that dies between the two sends that event again): receivers deduplicate by
``Fleet-Event-Id``. The log keeps about the last 10,000 events; a receiver away for longer gets a
``{"type": "gap", "after", "missed"}`` event first (how many events it missed, from the log's
``entries-added`` and length), and should reload what it keeps over the REST API.

Keys: ``fleet:webhooks`` (hash: id → JSON, the secret sealed) and ``fleet:webhook:{id}`` (hash:
``cursor``, ``seen``: events ever logged up to the cursor, ``failures``, ``last_error``,
``last_success_at``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import msgspec
import redis.asyncio as aioredis
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from redis.exceptions import ResponseError

from server import keys
from server.auth import admin_only
from server.errors import BadRequest, NotFound
from server.lease import Lease, run_leased
from server.orders.crypto import DecryptionError, Sealer
from server.orders.store import OrderStore

log = logging.getLogger("fleet.webhooks")

EVENT_TYPES = (
    "order", "order_proof", "eta", "route", "alert", "status", "vehicle", "vehicle_token",
    "geofence", "off_route", "plan", "traffic",
)  # fmt: skip
#: Derived for webhooks from ``eta`` and ``route`` events: one per drop-off whose ETA is new or
#: moved by ``ORDER_ETA_MOVE_MS`` or more since it was last sent (what a customer is texted).
ORDER_ETA = "order_eta"
ORDER_ETA_MOVE_MS = 60_000
BATCH = 200  # events looked at per webhook per round (the round budget bounds the time)
TIMEOUT_S = 5.0
MAX_BACKOFF_S = 600.0
ROUND_BUDGET_S = 10.0  # a round's sending stops after this (the lease lasts three times as long)


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    events: list[str]
    description: str = ""


class Webhook(msgspec.Struct):
    id: str
    url: str
    events: list[str]
    description: str
    created: int  # Unix ms
    failures: int = 0  # consecutive failed deliveries
    last_error: str | None = None
    last_success_at: int | None = None
    cursor: str = ""  # the id of the last event looked at


class WebhookCreated(msgspec.Struct):
    id: str
    url: str
    events: list[str]
    description: str
    created: int
    secret: str  # signs every delivery; shown once


class _Stored(msgspec.Struct):
    id: str
    url: str
    events: list[str]
    description: str
    created: int
    secret: str  # sealed


def _check(data: WebhookIn) -> None:
    parts = urlsplit(data.url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(data.url) > 2000:
        raise BadRequest("url must be an http(s) URL with a host", details={"field": "url"})
    unknown = sorted(set(data.events) - {*EVENT_TYPES, ORDER_ETA, "*"})
    if not data.events or unknown:
        raise BadRequest(
            f"events must be some of {', '.join((*EVENT_TYPES, ORDER_ETA))}, or *"
            + (f" (not {', '.join(unknown)})" if unknown else ""),
            details={"field": "events"},
        )
    if len(data.description) > 200:
        raise BadRequest("description: at most 200 characters", details={"field": "description"})


async def _log_position(redis: aioredis.Redis) -> tuple[str, int, int]:
    """The event log's newest id, how many events were ever added to it, and how many of them
    its cap has dropped (``("0-0", 0, 0)`` before the first event)."""
    try:
        info = await redis.xinfo_stream(keys.EVENTS_LOG)
    except ResponseError:  # no event logged yet
        return "0-0", 0, 0
    newest = info.get("last-generated-id") or b"0-0"
    added = int(info.get("entries-added", info.get("length", 0)))
    return (
        newest.decode() if isinstance(newest, bytes) else str(newest),
        added,
        added - int(info.get("length", 0)),
    )


async def create_webhook(redis: aioredis.Redis, sealer: Sealer, data: WebhookIn) -> WebhookCreated:
    """Register a webhook; it receives the events logged from now on."""
    _check(data)
    webhook_id = "wh-" + secrets.token_hex(6)
    secret = "whsec_" + secrets.token_urlsafe(24)
    stored = _Stored(
        id=webhook_id, url=data.url, events=sorted(set(data.events)),
        description=data.description, created=int(time.time() * 1000),
        secret=sealer.seal("webhook", secret),
    )  # fmt: skip
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.WEBHOOKS, webhook_id, msgspec.json.encode(stored))
        newest, added, _ = await _log_position(redis)
        pipe.hset(keys.webhook_state(webhook_id), mapping={"cursor": newest, "seen": added})
        await pipe.execute()
    return WebhookCreated(
        id=webhook_id, url=stored.url, events=stored.events, description=stored.description,
        created=stored.created, secret=secret,
    )  # fmt: skip


async def list_webhooks(redis: aioredis.Redis) -> list[Webhook]:
    raw = cast("dict[bytes, bytes]", await redis.hgetall(keys.WEBHOOKS))
    out = []
    for blob in raw.values():
        stored = msgspec.json.decode(blob, type=_Stored)
        state = cast("dict[bytes, bytes]", await redis.hgetall(keys.webhook_state(stored.id)))
        success = state.get(b"last_success_at")
        error = state.get(b"last_error")
        out.append(Webhook(
            id=stored.id, url=stored.url, events=stored.events, description=stored.description,
            created=stored.created, failures=int(state.get(b"failures", b"0")),
            last_error=error.decode() if error else None,
            last_success_at=int(success) if success else None,
            cursor=state.get(b"cursor", b"").decode(),
        ))  # fmt: skip
    return sorted(out, key=lambda w: (w.created, w.id))


async def delete_webhook(redis: aioredis.Redis, webhook_id: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hdel(keys.WEBHOOKS, webhook_id)
        pipe.delete(keys.webhook_state(webhook_id))
        removed, _ = await pipe.execute()
    if not removed:
        raise NotFound(f"no webhook {webhook_id}")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Fleet-Signature`` header of a delivery (receivers compute the same and compare)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class WebhookSender:
    """Delivers the logged events to every webhook; run under a lease by one process."""

    def __init__(
        self,
        redis: aioredis.Redis,
        sealer: Sealer,
        *,
        retry_s: float = 5.0,
        interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.sealer = sealer
        self.retry_s = retry_s
        self.interval_s = interval_s
        self.clock = clock
        self.lease = Lease(redis, keys.WEBHOOKS_LEASE, ttl_s=3 * ROUND_BUDGET_S)
        self._round_ends = 0.0  # a round stops sending then: the lease must not run out on it
        self._not_before: dict[str, float] = {}  # webhook id → when to try it again
        # webhook id → order id → the drop-off ETA last sent (ms): kept by the process that
        # delivers; one taking over may send an unchanged ETA once more (at least once).
        self._sent_etas: dict[str, dict[str, int]] = {}
        self._client: httpx.AsyncClient | None = None

    async def deliver(self) -> int:
        """One round over every webhook; how many events were delivered."""
        raw = cast("dict[bytes, bytes]", await self.redis.hgetall(keys.WEBHOOKS))
        if not raw:
            return 0
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False)
        _, _, dropped = await _log_position(self.redis)
        self._round_ends = time.monotonic() + ROUND_BUDGET_S

        async def one(hook: _Stored) -> int:
            try:
                return await self._deliver_to(hook, dropped)
            except DecryptionError as exc:  # another installation's key: say so, keep going
                await self._failed(hook, f"cannot sign: {exc}")
                return 0

        # Each webhook in order, the webhooks side by side: a slow or dead receiver (up to
        # TIMEOUT_S a request) holds back its own events, not everyone's.
        hooks = [msgspec.json.decode(blob, type=_Stored) for blob in raw.values()]
        due = [h for h in hooks if self.clock() >= self._not_before.get(h.id, 0.0)]
        return sum(await asyncio.gather(*(one(h) for h in due)))

    async def _deliver_to(self, hook: _Stored, dropped: int) -> int:
        """Deliver what ``hook`` wants after its cursor. ``seen`` counts the events ever logged
        up to the cursor; the log's cap drops the oldest first, so ``dropped - seen`` of them
        went before this webhook got them."""
        state_key = keys.webhook_state(hook.id)
        cursor_raw, seen_raw = cast(
            "list[bytes | None]", await self.redis.hmget(state_key, ["cursor", "seen"])
        )
        cursor = cursor_raw.decode() if cursor_raw else "0-0"
        seen = int(seen_raw or 0)
        if dropped > seen:
            gap = {"type": "gap", "after": cursor, "missed": dropped - seen}
            if not await self._post(hook, f"{cursor}-gap{dropped}", gap):
                return 0
            seen = dropped
            await self.redis.hset(state_key, "seen", seen)
        entries = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            await self.redis.xrange(keys.EVENTS_LOG, f"({cursor}", "+", count=BATCH),
        )
        sent = 0
        wanted = set(hook.events)
        for raw_id, fields in entries:
            if time.monotonic() > self._round_ends:  # slow receivers: the rest next round
                break
            entry_id = raw_id.decode()
            event = json.loads(fields[b"e"])
            if "*" in wanted or event.get("type") in wanted:
                if not await self._post(hook, entry_id, event):
                    return sent
                sent += 1
            if ORDER_ETA in wanted and event.get("type") in ("eta", "route"):
                for order_eta in self._order_etas(hook.id, event):
                    if not await self._post(hook, f"{entry_id}:{order_eta['order_id']}", order_eta):
                        return sent  # the entry again next time; those sent are not repeated
                    self._sent_etas.setdefault(hook.id, {})[order_eta["order_id"]] = order_eta[
                        "eta"
                    ]
                    sent += 1
            seen += 1
            await self.redis.hset(state_key, mapping={"cursor": entry_id, "seen": seen})
        return sent

    def _order_etas(self, webhook_id: str, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The ``order_eta`` events a route or ETA update makes for one webhook: its drop-offs
        whose ETA is new to it or moved by ``ORDER_ETA_MOVE_MS``."""
        sent = self._sent_etas.setdefault(webhook_id, {})
        if len(sent) > 100_000:  # long-finished orders: forget them (a repeat at worst)
            sent.clear()
        out = []
        for stop in event.get("stops") or ():
            if not isinstance(stop, dict) or stop.get("kind") != "dropoff":
                continue
            order_id, eta = stop.get("order_id"), stop.get("eta")
            if not isinstance(order_id, str) or not isinstance(eta, int):
                continue
            before = sent.get(order_id)
            if before is None or abs(eta - before) >= ORDER_ETA_MOVE_MS:
                out.append({
                    "type": ORDER_ETA, "order_id": order_id, "eta": eta,
                    "vehicle_id": event.get("vehicle_id"),
                    "late_risk": bool(stop.get("late_risk", False)),
                })  # fmt: skip
        return out

    async def _post(self, hook: _Stored, event_id: str, event: dict[str, Any]) -> bool:
        """POST one event; whether it was taken (2xx). A failure is recorded and backs off."""
        assert self._client is not None
        body = json.dumps(
            {"id": event_id, "type": event.get("type"), "data": event}, separators=(",", ":")
        ).encode()
        now_s = int(time.time())  # real time, even under a simulated clock: receivers check it
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "fleet-webhooks/1",
            "Fleet-Event-Id": event_id,
            "Fleet-Signature": signature(self.sealer.open("webhook", hook.secret), now_s, body),
        }
        state_key = keys.webhook_state(hook.id)
        try:
            answer = await self._client.post(hook.url, content=body, headers=headers)
            error = None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
        if error is None:
            self._not_before.pop(hook.id, None)
            await self.redis.hset(
                state_key, mapping={"failures": 0, "last_success_at": now_s * 1000}
            )
            await self.redis.hdel(state_key, "last_error")
            return True
        await self._failed(hook, error)
        return False

    async def _failed(self, hook: _Stored, error: str) -> None:
        """Record a failed delivery and when to try again (doubling while it keeps failing)."""
        state_key = keys.webhook_state(hook.id)
        failures = int(await self.redis.hincrby(state_key, "failures", 1))
        await self.redis.hset(state_key, "last_error", error)
        delay = min(MAX_BACKOFF_S, self.retry_s * 2 ** (failures - 1))
        self._not_before[hook.id] = self.clock() + delay
        log.warning("webhook %s (%s): %s; next try in %.0f s", hook.id, hook.url, error, delay)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run(self) -> None:
        try:
            await run_leased(self.lease, self.deliver, interval_s=self.interval_s, log=log)
        finally:
            await self.close()


class WebhooksController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]  # noqa: RUF012 - Litestar reads this class attribute
    guards = [admin_only]  # noqa: RUF012

    @post("/", summary="Register a webhook; the answer holds its signing secret (shown once)")
    async def create(
        self,
        data: JSONBody[WebhookIn],
        redis: NamedDependency[aioredis.Redis],
        orders: NamedDependency[OrderStore],
    ) -> WebhookCreated:
        return await create_webhook(redis, orders.sealer, data)

    @get("/", summary="Every webhook, with how its deliveries go")
    async def list_all(self, redis: NamedDependency[aioredis.Redis]) -> list[Webhook]:
        return await list_webhooks(redis)

    @delete("/{webhook_id:str}", summary="Stop and remove a webhook")
    async def remove(
        self, webhook_id: FromPath[str], redis: NamedDependency[aioredis.Redis]
    ) -> None:
        await delete_webhook(redis, webhook_id)
