"""Orders in Redis: one hash per order, personal data sealed, every transition audited.

Writes that touch several keys go in one MULTI; a status change WATCHes the order so two
concurrent changes cannot both apply.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import json
import secrets
from collections.abc import Callable
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from server import clock, keys
from server.auth import token_hash
from server.bulk import hmget_each
from server.errors import Conflict, NotFound
from server.events import queue_event
from server.orders.crypto import Sealer
from server.orders.lifecycle import FINAL, OPEN, TransitionError, check_transition, steps_to
from server.orders.model import (
    AuditEntry,
    Customer,
    Delivery,
    Feedback,
    Order,
    OrderCreated,
    OrderIn,
    OrderPatch,
    Window,
)
from server.orders.outcomes import OUTCOMES, count_attempt
from server.orders.search import folded, matches, parse_query

IDEMPOTENCY_TTL_S = 24 * 3600
INSTRUCTABLE = ("received", "processed", "departed", "picked_up")  # before the van is at the door
MAX_INSTRUCTION_CHANGES = 20  # a tracking link is a bearer token: no unbounded writes through it
RATEABLE = ("delivered",)  # the customer rates a delivery once it is made
MAX_FEEDBACK_CHANGES = 5
SMALL_STATUS = 5000  # orders in the statuses asked for, at most, to read all their ids at once
SCAN_PAGE = 1000  # order ids looked at per round trip when a status holds more
SEARCH_SCAN = 10_000  # a search looks at the open orders and this many of the newest


@dataclasses.dataclass(slots=True)
class _CustomerChange:
    """What a change through a tracking link writes besides the personal data: plain hash
    fields, the audit's reason, the ``order`` event's own fields, alerts to raise."""

    fields: dict[str, int | str]
    reason: str
    event: dict[str, Any]
    alerts: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


class _StoredWindow(msgspec.Struct):
    """An order's stored document, read for its window alone (other fields skipped)."""

    window: Window


_doc = msgspec.json.Decoder(_StoredWindow).decode


def _when(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


class OrderStore:
    def __init__(self, redis: aioredis.Redis, sealer: Sealer) -> None:
        self.redis = redis
        self.sealer = sealer

    # -- writing -----------------------------------------------------------------------------

    async def create(
        self, data: OrderIn, *, idempotency_key: str | None, by: str
    ) -> tuple[OrderCreated, bool]:
        """Store a new order; ``(created, True)``, or the earlier answer for a repeated key."""
        order_id = "o-" + secrets.token_hex(6)
        if idempotency_key is not None:
            claimed = await self.redis.set(
                keys.idempotency(idempotency_key), order_id, nx=True, ex=IDEMPOTENCY_TTL_S
            )
            if not claimed:
                earlier = cast(
                    "bytes | None", await self.redis.get(keys.idempotency(idempotency_key))
                )
                if earlier is not None:
                    try:
                        return await self._created_answer(earlier.decode()), False
                    except NotFound:  # archived (fleet orders archive) within the key's 24 h
                        raise Conflict(
                            f"the order created under this Idempotency-Key, {earlier.decode()}, "
                            "has been archived",
                            details={"order_id": earlier.decode()},
                        ) from None
        token = secrets.token_urlsafe(24)  # 192 random bits
        now = clock.now_ms()
        doc = msgspec.to_builtins(data)
        pii = {
            "customer": doc.pop("customer"),
            "dropoff_address": doc["dropoff"].pop("address", ""),
            "pickup_address": (doc.get("pickup") or {}).pop("address", ""),
            "notes": doc.pop("notes"),
        }
        fields: dict[Any, Any] = {
            "doc": json.dumps(doc),
            "pii": self.sealer.seal("pii", json.dumps(pii)),
            "tracking": self.sealer.seal("tracking", token),
            "status": "received",
            "vehicle_id": "",
            "nodes": json.dumps({"received": now}),
            "created": now,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.order(order_id), mapping=fields)
            pipe.zadd(keys.ORDERS, {order_id: now})
            pipe.sadd(keys.orders_in("received"), order_id)
            pipe.set(keys.tracking_token(token_hash(token)), order_id)
            self._audit(pipe, order_id, "received", None, by, "", now)
            queue_event(pipe, {"type": "order", "order_id": order_id, "status": "received"})
            await pipe.execute()
        return OrderCreated(order=await self.get(order_id), tracking_token=token), True

    def _audit(
        self,
        pipe: Any,
        order_id: str,
        status: str,
        previous: str | None,
        by: str,
        reason: str,
        now: int,
    ) -> None:
        entry = {
            "status": status,
            "previous": previous or "",
            "by": by,
            "reason": reason,
            "at": now,
        }
        pipe.xadd(keys.order_audit(order_id), entry)

    async def transition(
        self,
        order_id: str,
        target: str,
        *,
        by: str,
        reason: str = "",
        vehicle_id: str | None = None,
    ) -> Order:
        """Move the order to ``target`` if the lifecycle allows it, atomically, audited."""
        key = keys.order(order_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    current_raw, nodes_raw = cast(
                        "list[bytes | None]", await pipe.hmget(key, ["status", "nodes"])
                    )
                    if current_raw is None or nodes_raw is None:
                        raise NotFound(f"no order {order_id}", details={"field": "id"})
                    current = current_raw.decode()
                    try:
                        check_transition(current, target)
                    except TransitionError as exc:
                        raise Conflict(str(exc), details={"status": current}) from None
                    now = clock.now_ms()
                    nodes = json.loads(nodes_raw)
                    nodes.setdefault(target, now)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    update: dict[Any, Any] = {"status": target, "nodes": json.dumps(nodes)}
                    if vehicle_id is not None:
                        update["vehicle_id"] = vehicle_id
                    pipe.hset(key, mapping=update)
                    if target != "received":  # held only while back with the planner
                        pipe.hdel(key, "held")
                    if target in FINAL:  # (a dispatcher closed it with a collection due)
                        pipe.hdel(key, "transfer_from")
                    pipe.smove(keys.orders_in(current), keys.orders_in(target), order_id)
                    if target in OUTCOMES:  # a drop-off attempt: what the error rate counts
                        count_attempt(pipe, target, now)
                    if target == "failed":
                        pipe.hincrby(key, "failures", 1)
                    self._audit(pipe, order_id, target, current, by, reason, now)
                    event = {"type": "order", "order_id": order_id, "status": target, "by": by}
                    queue_event(pipe, event)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        return await self.get(order_id)

    async def advance(self, order_id: str, target: str, *, by: str, reason: str = "") -> Order:
        """Move the order to ``target`` through the nodes in between (see ``steps_to``)."""
        order = await self.get(order_id)
        for status in steps_to(order.status, target):
            order = await self.transition(order_id, status, by=by, reason=reason)
        return order

    async def pin(self, order_id: str, vehicle_id: str | None, *, by: str) -> Order:
        """A dispatcher's choice of vehicle for an order not yet on its way (``None``: let the
        planner choose again). The planner keeps a pinned order on that vehicle while it is
        available; the order's ``vehicle_id`` follows at once, and an ``order`` event wakes it."""
        order = await self.get(order_id)
        if order.status not in ("received", "processed"):
            raise Conflict(f"an order that is {order.status} can no longer be reassigned")
        now = clock.now_ms()
        async with self.redis.pipeline(transaction=True) as pipe:
            if vehicle_id is None:
                pipe.hdel(keys.ORDER_PINS, order_id)
            else:
                pipe.hset(keys.ORDER_PINS, order_id, vehicle_id)
                if order.status == "processed":
                    pipe.hset(keys.order(order_id), "vehicle_id", vehicle_id)
            reason = f"assigned to {vehicle_id}" if vehicle_id else "assignment released"
            self._audit(pipe, order_id, order.status, order.status, by, reason, now)
            queue_event(
                pipe,
                {"type": "order", "order_id": order_id, "status": order.status,
                 "vehicle_id": vehicle_id, "action": "pin", "by": by},
            )  # fmt: skip
            await pipe.execute()
        return await self.get(order_id)

    async def pins(self) -> dict[str, str]:
        """Order id → the vehicle a dispatcher pinned it to."""
        raw = cast("dict[bytes, bytes]", await self.redis.hgetall(keys.ORDER_PINS))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def hand_over(self, order_id: str, vehicle_id: str, *, transfer_from: str = "") -> None:
        """Record that a re-plan moved an order to another vehicle (status unchanged);
        ``transfer_from``: the van out of service that has its parcel, for the new one to
        collect it from (none: the new one has it, or it is not on a van)."""
        key = keys.order(order_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "vehicle_id", vehicle_id)
            if transfer_from:
                pipe.hset(key, "transfer_from", transfer_from)
            else:
                pipe.hdel(key, "transfer_from")
            event = {"type": "order", "order_id": order_id, "vehicle_id": vehicle_id,
                     "action": "hand_over", "by": "planner"}  # fmt: skip
            if transfer_from:
                event["transfer_from"] = transfer_from
            queue_event(pipe, event)
            await pipe.execute()

    async def take_over(self, order_id: str, vehicle_id: str) -> Order:
        """The driver of ``vehicle_id`` has collected the order's parcel from the van out of
        service that had it (the order's ``transfer_from``); status unchanged, audited."""
        key = keys.order(order_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    status, assigned, source = (
                        None if v is None else v.decode()
                        for v in cast(
                            "list[bytes | None]",
                            await pipe.hmget(key, ["status", "vehicle_id", "transfer_from"]),
                        )
                    )
                    if status is None:
                        raise NotFound(f"no order {order_id}", details={"field": "id"})
                    if not source or assigned != vehicle_id:
                        raise Conflict(
                            f"{order_id} is not waiting for {vehicle_id} to collect it",
                            details={"status": status},
                        )
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hdel(key, "transfer_from")
                    why = f"taken over from {source}"
                    self._audit(pipe, order_id, status, status, vehicle_id, why, clock.now_ms())
                    queue_event(pipe, {"type": "order", "order_id": order_id, "status": status,
                                       "vehicle_id": vehicle_id, "transfer_from": source,
                                       "action": "take_over", "by": vehicle_id})  # fmt: skip
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        return await self.get(order_id)

    async def update(self, order_id: str, patch: OrderPatch) -> Order:
        """Change what may still change: what the plan depends on (the drop-off place
        included) only before the vehicle has left; the customer's contact and the notes for
        the driver while the order is open. A new drop-off place releases a held order."""
        order = await self.get(order_id)
        changes = msgspec.to_builtins(patch)
        personal = {k: changes.pop(k) for k in ("customer", "notes") if k in changes}
        if order.status in FINAL or (changes and order.status not in ("received", "processed")):
            raise Conflict(f"an order that is {order.status} can no longer be changed")
        if "dropoff" in changes:  # (its address is personal data: sealed with the rest)
            personal["dropoff_address"] = changes["dropoff"].pop("address", "")
        raw = cast("dict[bytes, bytes]", await self.redis.hgetall(keys.order(order_id)))
        doc = json.loads(raw[b"doc"])
        doc.update(changes)
        fields: dict[Any, Any] = {"doc": json.dumps(doc)}
        if personal:
            pii = json.loads(self.sealer.open("pii", raw[b"pii"].decode()))
            if "customer" in personal:  # merged: the fields not given stay as they are
                personal["customer"] = {**(pii.get("customer") or {}), **personal["customer"]}
            pii.update(personal)
            fields["pii"] = self.sealer.seal("pii", json.dumps(pii))
        changed = sorted({*changes, *personal} - {"dropoff_address"})
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.order(order_id), mapping=fields)
            if "dropoff" in changes and order.held:
                pipe.hdel(keys.order(order_id), "held")
                changed.append("released")
            if changed:  # consoles and the audit hear of it (which fields: not their values)
                reason = f"changed {', '.join(changed)}"
                self._audit(
                    pipe, order_id, order.status, order.status, "api", reason, clock.now_ms()
                )
                queue_event(
                    pipe,
                    {"type": "order", "order_id": order_id, "status": order.status,
                     "action": "update", "fields": changed, "by": "api"},
                )  # fmt: skip
            await pipe.execute()
        return await self.get(order_id)

    async def hold(self, order_id: str, reason: str) -> Order:
        """Keep a failed order back from the planner until a dispatcher has looked at it (a
        wrong address: another attempt would fail the same way); raises a ``held`` alert."""
        now = clock.now_ms()
        order = await self.get(order_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.order(order_id), "held", reason)
            why = f"held for a dispatcher after {reason}"
            self._audit(pipe, order_id, order.status, order.status, "policy", why, now)
            queue_event(pipe, {"type": "order", "order_id": order_id, "status": order.status,
                               "action": "hold", "reason": reason, "by": "policy"})  # fmt: skip
            alert = {"type": "alert", "kind": "held", "order_id": order_id, "reason": reason,
                     "at": now}  # fmt: skip
            queue_event(pipe, alert, also_log=keys.ALERTS)
            pipe.hincrby(keys.ALERT_COUNTS, "held", 1)
            await pipe.execute()
        return await self.get(order_id)

    async def release(self, order_id: str, *, by: str, reason: str = "") -> Order:
        """Send a held order out again as it is (the customer confirmed the address)."""
        key = keys.order(order_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    status, held = cast(
                        "list[bytes | None]", await pipe.hmget(key, ["status", "held"])
                    )
                    if status is None:
                        raise NotFound(f"no order {order_id}", details={"field": "id"})
                    if held is None:
                        raise Conflict(
                            f"{order_id} is not held", details={"status": status.decode()}
                        )
                    state = status.decode()
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hdel(key, "held")
                    why = "released" + (f": {reason}" if reason else "")
                    self._audit(pipe, order_id, state, state, by, why, clock.now_ms())
                    queue_event(pipe, {"type": "order", "order_id": order_id, "status": state,
                                       "action": "release", "by": by})  # fmt: skip
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        return await self.get(order_id)

    async def instruct(self, order_id: str, text: str) -> Order:
        """The customer's delivery instructions, until the driver is at the door (sealed with
        the rest of the personal data; at most ``MAX_INSTRUCTION_CHANGES`` changes an order)."""

        def change(pii: dict[str, Any], _rating: int | None) -> _CustomerChange:
            pii["instructions"] = text
            reason = "delivery instructions changed" if text else "instructions removed"
            return _CustomerChange({}, reason, {"action": "instructions"})

        return await self._by_customer(
            order_id, allowed=INSTRUCTABLE, refused="too late for instructions",
            counter="instructed", most=MAX_INSTRUCTION_CHANGES, change=change,
        )  # fmt: skip

    async def rate(self, order_id: str, rating: int, comment: str, *, low: int = 0) -> Order:
        """The customer's rating (1 to 5) and comment of a delivered order (the comment sealed
        with the personal data; at most ``MAX_FEEDBACK_CHANGES`` changes). A rating of ``low``
        or less, where the one before was not, raises a ``low_rating`` alert (``low`` 0: never)."""

        def change(pii: dict[str, Any], before: int | None) -> _CustomerChange:
            pii["feedback"] = comment
            now = clock.now_ms()
            alerts = []
            if rating <= low and not (before is not None and before <= low):
                alerts.append({"type": "alert", "kind": "low_rating", "order_id": order_id,
                               "rating": rating, "at": now})  # fmt: skip
            reason = f"rated {rating} of 5" + (" with a comment" if comment else "")
            return _CustomerChange(
                {"rating": rating, "rated_at": now}, reason,
                {"action": "feedback", "rating": rating}, alerts,
            )  # fmt: skip

        return await self._by_customer(
            order_id, allowed=RATEABLE, refused="feedback is for a delivered order",
            counter="rated", most=MAX_FEEDBACK_CHANGES, change=change,
        )  # fmt: skip

    async def _by_customer(
        self,
        order_id: str,
        *,
        allowed: tuple[str, ...],
        refused: str,
        counter: str,
        most: int,
        change: Callable[[dict[str, Any], int | None], _CustomerChange],
    ) -> Order:
        """A change made through the order's tracking link: only while the order is in one of
        ``allowed`` (409 ``the order is …: {refused}`` otherwise), at most ``most`` times
        (counted in the hash's ``counter``: a link is a bearer token, writes through it are
        bounded). ``change`` edits the personal data (given the stored rating, if any) and says
        what else to write; it is audited ``by customer`` and announced as an ``order`` event."""
        key = keys.order(order_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    status, sealed, changes, rating = cast(
                        "list[bytes | None]",
                        await pipe.hmget(key, ["status", "pii", counter, "rating"]),
                    )
                    if status is None or sealed is None:
                        raise NotFound(f"no order {order_id}")
                    state = status.decode()
                    if state not in allowed:
                        raise Conflict(
                            f"the order is {state}: {refused}", details={"status": state}
                        )
                    if int(changes or 0) >= most:
                        raise Conflict(f"changed {most} times already: no more changes")
                    pii = json.loads(self.sealer.open("pii", sealed.decode()))
                    done = change(pii, int(rating) if rating else None)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    sealed_now = self.sealer.seal("pii", json.dumps(pii))
                    mapping: dict[Any, Any] = {**done.fields, "pii": sealed_now}
                    pipe.hset(key, mapping=mapping)
                    pipe.hincrby(key, counter, 1)
                    now = clock.now_ms()
                    self._audit(pipe, order_id, state, state, "customer", done.reason, now)
                    queue_event(
                        pipe,
                        {"type": "order", "order_id": order_id, "status": state, **done.event,
                         "by": "customer"},
                    )  # fmt: skip
                    for alert in done.alerts:
                        queue_event(pipe, alert, also_log=keys.ALERTS)
                        pipe.hincrby(keys.ALERT_COUNTS, alert["kind"], 1)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        return await self.get(order_id)

    # -- reading -----------------------------------------------------------------------------

    async def get(self, order_id: str) -> Order:
        raw = cast("dict[bytes, bytes]", await self.redis.hgetall(keys.order(order_id)))
        if not raw:
            raise NotFound(f"no order {order_id}", details={"field": "id"})
        return self._decode(order_id, raw)

    def _decode(self, order_id: str, raw: dict[bytes, bytes]) -> Order:
        doc = json.loads(raw[b"doc"])
        pii = json.loads(self.sealer.open("pii", raw[b"pii"].decode()))
        doc["dropoff"]["address"] = pii["dropoff_address"]
        if doc.get("pickup"):
            doc["pickup"]["address"] = pii["pickup_address"]
        doc["customer"] = pii["customer"]
        doc["notes"] = pii.get("notes", "")  # (orders made before notes have none)
        data = msgspec.convert(doc, OrderIn)
        nodes = {k: _when(v) for k, v in json.loads(raw[b"nodes"]).items()}
        return Order(
            id=order_id,
            status=raw[b"status"].decode(),
            dropoff=data.dropoff,
            window=data.window,
            pickup=data.pickup,
            pickup_window=data.pickup_window,
            service_s=data.service_s,
            pickup_service_s=data.pickup_service_s,
            size=data.size,
            skills=data.skills,
            priority=data.priority,
            customer=data.customer if isinstance(data.customer, Customer) else Customer(),
            reference=data.reference,
            vehicle_id=raw[b"vehicle_id"].decode() or None,
            nodes=nodes,
            created=_when(int(raw[b"created"])),
            failures=int(raw.get(b"failures", b"0")),
            held=raw.get(b"held", b"").decode(),
            transfer_from=raw.get(b"transfer_from", b"").decode(),
            notes=data.notes,
            instructions=pii.get("instructions", ""),
            feedback=Feedback(
                rating=int(raw[b"rating"]),
                comment=pii.get("feedback", ""),
                at=_when(int(raw[b"rated_at"])),
            )
            if b"rating" in raw
            else None,
        )

    async def _created_answer(self, order_id: str) -> OrderCreated:
        sealed = cast("bytes | None", await self.redis.hget(keys.order(order_id), "tracking"))
        if sealed is None:
            raise NotFound(f"no order {order_id}")
        token = self.sealer.open("tracking", sealed.decode())
        return OrderCreated(order=await self.get(order_id), tracking_token=token)

    async def find(
        self, *, status: str | None, limit: int, open_only: bool = False
    ) -> builtins.list[Order]:
        """The newest ``limit`` orders (of ``status``; not ended, with ``open_only``), newest
        first. Only those are read and decoded: the history of ended orders grows without
        bound, and an open order stays open however many orders came after it."""
        if status is None:
            statuses = sorted(OPEN) if open_only else None
        else:
            statuses = [status] if status in OPEN or not open_only else []
        ids = await self._newest(statuses, limit)
        async with self.redis.pipeline(transaction=False) as pipe:
            for order_id in ids:
                pipe.hgetall(keys.order(order_id))
            rows = cast("list[dict[bytes, bytes]]", await pipe.execute())
        orders = [self._decode(i, row) for i, row in zip(ids, rows, strict=True) if row]
        if open_only:  # one may have ended between finding it and reading it
            orders = [o for o in orders if o.status in OPEN]
        return orders  # newest first, as _newest found them

    async def created_between(
        self, start_ms: int, end_ms: int, *, limit: int
    ) -> builtins.list[Order] | None:
        """The orders created from ``start_ms`` up to ``end_ms``, oldest first; None when there
        are more than ``limit``."""
        ids = [
            i.decode()
            for i in cast(
                "list[bytes]",
                await self.redis.zrangebyscore(keys.ORDERS, start_ms, end_ms, 0, limit + 1),
            )
        ]
        if len(ids) > limit:
            return None
        out: builtins.list[Order] = []
        for first in range(0, len(ids), SCAN_PAGE):
            page = ids[first : first + SCAN_PAGE]
            async with self.redis.pipeline(transaction=False) as pipe:
                for order_id in page:
                    pipe.hgetall(keys.order(order_id))
                rows = cast("list[dict[bytes, bytes]]", await pipe.execute())
            out += [self._decode(i, row) for i, row in zip(page, rows, strict=True) if row]
        return out

    async def search_scope(self, scan: int = SEARCH_SCAN) -> builtins.list[str]:
        """The ids a search looks at, newest first: every open order and the newest ``scan``."""
        open_now = cast("set[bytes]", await self.redis.sunion([keys.orders_in(s) for s in OPEN]))
        ids = {*(i.decode() for i in open_now), *await self._newest(None, scan)}
        scores = await self.redis.zmscore(keys.ORDERS, list(ids)) if ids else []
        return [i for _, i in sorted(zip(scores, ids, strict=True), key=lambda p: -(p[0] or 0))]

    async def search(
        self, text: str, *, limit: int, scan: int = SEARCH_SCAN
    ) -> builtins.list[Order]:
        """The newest ``limit`` orders that match ``text`` (:mod:`server.orders.search`: the
        customer's name or phone, an address, the reference, the id), newest first, among every
        open order and the newest ``scan`` orders. ``ValueError`` for a query too short."""
        query = parse_query(text)
        newest = await self.search_scope(scan)
        found: builtins.list[str] = []
        for first in range(0, len(newest), SCAN_PAGE):
            page = newest[first : first + SCAN_PAGE]
            rows = await hmget_each(self.redis, [keys.order(i) for i in page], ("doc", "pii"))
            for order_id, (doc, sealed) in zip(page, rows, strict=True):
                if doc is None or sealed is None:
                    continue  # archived meanwhile
                pii = msgspec.json.decode(self.sealer.open("pii", sealed.decode()))
                customer = pii.get("customer") or {}
                phone = customer.get("phone", "")
                reference = msgspec.json.decode(doc).get("reference", "")
                words = (order_id, reference, customer.get("name", ""),
                         pii.get("dropoff_address", ""), pii.get("pickup_address", ""))  # fmt: skip
                if matches(query, phone, folded(" ".join(words))):
                    found.append(order_id)
            if len(found) >= limit:
                break
        found = found[:limit]
        async with self.redis.pipeline(transaction=False) as pipe:
            for order_id in found:
                pipe.hgetall(keys.order(order_id))
            rows_all = cast("list[dict[bytes, bytes]]", await pipe.execute())
        return [self._decode(i, row) for i, row in zip(found, rows_all, strict=True) if row]

    async def deliveries(self, limit: int) -> builtins.list[Delivery]:
        """The newest ``limit`` delivered orders' outcomes, newest first: five fields each and
        no personal data decrypted (the KPIs read them every 10 s per console)."""
        ids = await self._newest(["delivered"], limit)
        fields = ("nodes", "doc", "promised_eta", "vehicle_id", "rating")
        out = []
        for nodes_raw, doc, promised, vehicle, rating in await hmget_each(
            self.redis, [keys.order(i) for i in ids], fields
        ):
            nodes = json.loads(nodes_raw) if nodes_raw else {}
            if "delivered" not in nodes or doc is None:
                continue
            out.append(Delivery(
                delivered_at=_when(nodes["delivered"]),
                window_end=_doc(doc).window.end,
                promised_eta=_when(int(promised)) if promised else None,
                nodes_ms=nodes,
                vehicle_id=vehicle.decode() if vehicle else "",
                rating=int(rating) if rating else None,
            ))  # fmt: skip
        return out

    async def _newest(self, statuses: builtins.list[str] | None, limit: int) -> builtins.list[str]:
        """The ids of the newest ``limit`` orders in any of ``statuses`` (None: of all)."""
        if statuses is None:
            found = await self.redis.zrevrange(keys.ORDERS, 0, limit - 1)
            return [i.decode() for i in cast("list[bytes]", found)]
        if not statuses:
            return []
        sets = [keys.orders_in(s) for s in statuses]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in sets:
                pipe.scard(key)
            sizes = cast("list[int]", await pipe.execute())
        if sum(sizes) <= max(limit, SMALL_STATUS):  # the open ones, a rare status: read them all
            members = cast("set[bytes]", await self.redis.sunion(sets))
            ids = [i.decode() for i in members]
            scores = await self.redis.zmscore(keys.ORDERS, ids) if ids else []
            newest = sorted(zip(scores, ids, strict=True), key=lambda p: -(p[0] or 0.0))
            return [order_id for _, order_id in newest[:limit]]
        # A common status (delivered, after months of them): walk the orders newest first.
        out: builtins.list[str] = []
        first = 0
        while len(out) < limit:
            page = cast("list[bytes]", await self.redis.zrevrange(
                keys.ORDERS, first, first + SCAN_PAGE - 1))  # fmt: skip
            if not page:
                break
            first += SCAN_PAGE
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in sets:
                    pipe.smismember(key, page)
                flags = cast("list[list[int]]", await pipe.execute())
            out += [i.decode() for i, *hit in zip(page, *flags, strict=True) if any(hit)]
        return out[:limit]

    async def audit(self, order_id: str) -> builtins.list[AuditEntry]:
        await self.get(order_id)
        entries = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            await self.redis.xrange(keys.order_audit(order_id)),
        )
        return [
            AuditEntry(
                at=_when(int(f[b"at"])),
                status=f[b"status"].decode(),
                previous=f[b"previous"].decode() or None,
                by=f[b"by"].decode(),
                reason=f[b"reason"].decode(),
            )
            for _, f in entries
        ]

    async def order_for_tracking_token(self, token: str) -> str | None:
        found = cast("bytes | None", await self.redis.get(keys.tracking_token(token_hash(token))))
        return found.decode() if found else None
