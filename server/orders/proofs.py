"""Proof of delivery: the photos and signatures a driver takes at the door, sealed in Redis.

A driver's page uploads the image before it reports the stop (``POST /orders/{id}/proofs``),
then names the proof's id in the stop event, so the order's audit says which proof goes with
the delivery or the failed attempt. Dispatchers see every proof of an order; the customer sees
them on the tracking page once the order is delivered.

An image is personal data (a doorstep, a name signed): it is sealed with the installation's
key like addresses, bound to its order and proof id, and stored as raw bytes
(``fleet:proofs:{order}``); what it is (kind, type, size, SHA-256 of the image, when, by whom)
is kept beside it in clear (``fleet:proofmeta:{order}``) so lists never read the images. Only
JPEG, PNG and WebP are taken, and the bytes must be what the ``Content-Type`` says: an image is
served back to browsers, so nothing else (SVG, HTML) may get in under an image's name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any, Literal, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from server import clock, keys
from server.errors import ApiError, BadRequest, Conflict, NotFound
from server.events import queue_event
from server.orders.crypto import Sealer

ProofKind = Literal["photo", "signature"]
KINDS: tuple[ProofKind, ...] = ("photo", "signature")
MAX_PER_ORDER = 6
#: The image types taken, by the first bytes each must start with (WebP: ``RIFF????WEBP``).
CONTENT_TYPES = {
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/webp": b"RIFF",
}
#: Statuses in which the driver of the order's vehicle may add a proof (staff: any); while
#: returning, of the parcel handed back (the shop's signature, say).
DRIVER_STATUSES = frozenset(
    {"processed", "departed", "picked_up", "arrived", "delivered", "returning"}
)


class UnsupportedType(ApiError):
    status, code = 415, "unsupported_media_type"


class TooMany(ApiError):
    status, code = 409, "too_many_proofs"


class NotYourOrder(ApiError):
    status, code = 403, "not_your_order"


class Proof(msgspec.Struct):
    """What is known of a proof without its image."""

    id: str
    order_id: str
    kind: ProofKind
    content_type: str
    bytes: int
    sha256: str  # of the image: what was taken is what is shown
    at: dt.datetime
    by: str  # "vehicle:<id>" or "staff"


_meta = msgspec.json.Decoder(Proof)


def check_image(content_type: str, data: bytes) -> str:
    """The media type of ``data`` (parameters dropped), if it is one taken and the bytes are
    that type's; otherwise the error to answer.

    >>> check_image("image/png; charset=x", b"\\x89PNG\\r\\n\\x1a\\n...")
    'image/png'
    >>> check_image("image/png", b"<svg/>")
    Traceback (most recent call last):
    ...
    server.errors.BadRequest: the body's bytes are not image/png
    """
    media = content_type.split(";", 1)[0].strip().lower()
    magic = CONTENT_TYPES.get(media)
    if magic is None:
        raise UnsupportedType(
            f"Content-Type must be one of {', '.join(CONTENT_TYPES)}", details={"field": "body"}
        )
    webp = media != "image/webp" or data[8:12] == b"WEBP"
    if not data.startswith(magic) or not webp:
        raise BadRequest(f"the body's bytes are not {media}", details={"field": "body"})
    return media


class ProofStore:
    def __init__(self, redis: aioredis.Redis, sealer: Sealer) -> None:
        self.redis = redis
        self.sealer = sealer

    def _context(self, order_id: str, proof_id: str) -> str:
        """What a proof's image is sealed for: it opens only as this order's proof."""
        return f"proof:{order_id}:{proof_id}"

    async def add(
        self,
        order_id: str,
        *,
        kind: ProofKind,
        content_type: str,
        image: bytes,
        vehicle_id: str | None,
    ) -> Proof:
        """Store a proof for the order; ``vehicle_id`` is the uploading driver's vehicle
        (``None``: staff), which must be the order's, in one of ``DRIVER_STATUSES``."""
        order_key = keys.order(order_id)
        meta_key = keys.order_proof_meta(order_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(order_key, meta_key)
                    status, assigned = cast(
                        "list[bytes | None]", await pipe.hmget(order_key, ["status", "vehicle_id"])
                    )
                    if status is None:
                        raise NotFound(f"no order {order_id}", details={"field": "id"})
                    if vehicle_id is not None:
                        _check_driver(order_id, status.decode(), (assigned or b"").decode(),
                                      vehicle_id)  # fmt: skip
                    if await pipe.hlen(meta_key) >= MAX_PER_ORDER:
                        raise TooMany(f"order {order_id} has {MAX_PER_ORDER} proofs already")
                    proof = Proof(
                        id="p-" + secrets.token_hex(6),
                        order_id=order_id,
                        kind=kind,
                        content_type=content_type,
                        bytes=len(image),
                        sha256=hashlib.sha256(image).hexdigest(),
                        at=dt.datetime.fromtimestamp(clock.now_ms() / 1000, tz=dt.UTC),
                        by="staff" if vehicle_id is None else f"vehicle:{vehicle_id}",
                    )
                    sealed = self.sealer.seal_bytes(self._context(order_id, proof.id), image)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(keys.order_proofs(order_id), proof.id, sealed)
                    pipe.hset(meta_key, proof.id, msgspec.json.encode(proof))
                    queue_event(pipe, _event(proof))
                    await pipe.execute()
                    return proof
                except WatchError:
                    continue

    async def list(self, order_id: str) -> list[Proof]:
        """The order's proofs, oldest first; 404 for an order Redis does not hold."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.order(order_id))
            pipe.hgetall(keys.order_proof_meta(order_id))
            exists, raw = cast("tuple[int, dict[bytes, bytes]]", await pipe.execute())
        if not exists:
            raise NotFound(f"no order {order_id}", details={"field": "id"})
        return sorted((_meta.decode(v) for v in raw.values()), key=lambda p: (p.at, p.id))

    async def image(self, order_id: str, proof_id: str) -> tuple[Proof, bytes]:
        """A proof and its image; 404 when the order has no such proof."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.order_proof_meta(order_id), proof_id)
            pipe.hget(keys.order_proofs(order_id), proof_id)
            meta, sealed = cast("list[bytes | None]", await pipe.execute())
        if meta is None or sealed is None:
            raise NotFound(f"order {order_id} has no proof {proof_id}", details={"field": "id"})
        return _meta.decode(meta), self.sealer.open_bytes(self._context(order_id, proof_id), sealed)


def _check_driver(order_id: str, status: str, assigned: str, vehicle_id: str) -> None:
    if assigned != vehicle_id:
        raise NotYourOrder(f"{order_id} is not assigned to vehicle {vehicle_id}")
    if status not in DRIVER_STATUSES:
        raise Conflict(
            f"a proof cannot be added to an order that is {status}", details={"status": status}
        )


def _event(proof: Proof) -> dict[str, Any]:
    return {"type": "order_proof", "order_id": proof.order_id, "proof_id": proof.id,
            "kind": proof.kind, "by": proof.by}  # fmt: skip


def proof_summary(proof: Proof, url: str) -> dict[str, Any]:
    """A proof as the customer's page shows it: no hash, no uploader."""
    return {"id": proof.id, "kind": proof.kind, "at": int(proof.at.timestamp() * 1000), "url": url}
