"""Ended orders out of Redis into an archive file, and back (``fleet orders archive|restore``).

Redis keeps every order a server has taken, with its audit stream and tracking token: memory
grows with the history, a few KiB an order. An operator moves the orders that ended (delivered,
returned, cancelled) before a cut-off into a JSON Lines file, from cron for instance, and can put
them back. One line an order::

    {"v": 1, "id": "o-…", "order": {hash fields}, "audit": [["<entry id>", {fields}], …],
     "proofs": {"p-…": {"meta": "<JSON as stored>", "image": "<base64 of the sealed bytes>"}}}

(``proofs`` only for an order with proofs of delivery.) Personal data and proof images stay
sealed exactly as Redis held them: the archive reads back only with the installation's key
(``<data_dir>/keys/pii.key``), which also finds each order's tracking-token key to remove and
restore.

Nothing is lost on the way: a page of orders is WATCHed, read (one round trip), appended to the
file and fsynced, and only then removed in one MULTI. If one of them changed in between (WATCH
fired) the page's lines are cut from the file again and the page is read anew. A crash between
the fsync and the MULTI leaves orders both in the file and in Redis: archiving again appends them
a second time, and restoring skips an order Redis still holds, so neither copy is lost or
doubled in Redis.

Only one archiver writes a file at a time (an exclusive ``flock``): the cut after a WATCH that
fired must never take another writer's lines with it. With ``FLEET_ARCHIVE_AFTER_DAYS`` set,
the servers archive by themselves (:func:`archive_ended`): one process at a time, under a lease,
every ``SWEEP_S``, into ``<data_dir>/archive/orders.jsonl``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import redis
from redis.exceptions import WatchError

from server import clock, keys
from server.auth import token_hash
from server.orders.crypto import DecryptionError, Sealer
from server.orders.lifecycle import FINAL

log = logging.getLogger("fleet.archive")

FORMAT = 1
PAGE = 500  # orders read, written and removed at a time
SWEEP_S = 3600.0  # how often a server archives by itself (FLEET_ARCHIVE_AFTER_DAYS)
_AUDIT_ID = re.compile(r"[0-9]+-[0-9]+")


class ArchiveError(ValueError):
    """An archive line cannot be restored (the message names the line and why), or the file is
    being written by another archiver."""


@contextlib.contextmanager
def open_for_append(path: Path) -> Iterator[IO[bytes]]:
    """``path`` opened to append, its folder made, held by this archiver alone (``flock``);
    ``ArchiveError`` while another holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as out:
        try:
            fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArchiveError(f"another archiver is writing {path}: try again later") from None
        yield out  # the lock goes with the file's closing


async def archive_ended(redis_url: str, sealer: Sealer, path: Path, older_than_s: float) -> int:
    """Archive into ``path`` the orders that ended more than ``older_than_s`` ago (a server's
    own sweep, in a thread: the archiver is synchronous); how many were archived."""
    cutoff_ms = clock.now_ms() - int(older_than_s * 1000)

    def run() -> ArchiveResult:
        client = redis.Redis.from_url(redis_url)
        try:
            with open_for_append(path) as out:
                return archive_orders(client, sealer, out, ended_before_ms=cutoff_ms)
        finally:
            client.close()

    try:
        done = await asyncio.to_thread(run)
    except ArchiveError as exc:
        log.warning("archiving ended orders: %s", exc)
        return 0
    if done.archived:
        log.info("archived %d ended orders to %s", done.archived, path)
    return done.archived


@dataclass(slots=True)
class ArchiveResult:
    looked_at: int = 0  # orders created before the cut-off
    archived: int = 0
    retries: int = 0  # pages read again because an order changed while being archived


@dataclass(slots=True)
class RestoreResult:
    restored: int = 0
    present: int = 0  # already in Redis: left as they are


def _ended_at(status: str | None, nodes: str | bytes | None) -> int | None:
    """When an order entered its final status (ms), or None for an order still open."""
    if status not in FINAL or nodes is None:
        return None
    ended = json.loads(nodes).get(status)
    return int(ended) if ended is not None else None


def _text(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def _tracking_key(sealer: Sealer, fields: dict[str, str]) -> str | None:
    sealed = fields.get("tracking")
    return keys.tracking_token(token_hash(sealer.open("tracking", sealed))) if sealed else None


def archive_orders(
    client: redis.Redis,
    sealer: Sealer,
    out: IO[bytes],
    *,
    ended_before_ms: int,
    dry_run: bool = False,
    progress: Callable[[ArchiveResult], None] = lambda _: None,
    page_size: int = PAGE,
) -> ArchiveResult:
    """Move every order that ended before ``ended_before_ms`` from Redis to ``out`` (a file
    opened with ``"ab"``); with ``dry_run``, count them and change nothing. ``progress`` is
    called after each page."""
    result = ArchiveResult()
    offset = 0  # into the orders created before the cut-off, oldest first
    while True:
        page = cast("list[bytes]", client.zrangebyscore(
            keys.ORDERS, "-inf", ended_before_ms, start=offset, num=page_size))  # fmt: skip
        if not page:
            return result
        ids = [i.decode() for i in page]
        with client.pipeline(transaction=False) as pipe:
            for order_id in ids:
                pipe.hmget(keys.order(order_id), ["status", "nodes"])
            rows = cast("list[list[bytes | None]]", pipe.execute())
        ended = [
            order_id
            for order_id, (status, nodes) in zip(ids, rows, strict=True)
            if (at := _ended_at(status.decode() if status else None, nodes)) is not None
            and at < ended_before_ms
        ]
        result.looked_at += len(ids)
        moved = 0
        if ended and not dry_run:
            moved = _move(client, sealer, out, ended, result)
        elif dry_run:
            result.archived += len(ended)
        offset += len(ids) - moved  # the removed ones no longer come before the rest
        progress(result)


def _move(
    client: redis.Redis, sealer: Sealer, out: IO[bytes], ids: list[str], result: ArchiveResult
) -> int:
    """Archive and remove ``ids``; how many were removed (some may have been restored to open
    or removed by another archiver meanwhile: they stay or are gone, not archived twice)."""
    watched = [key for i in ids for key in _keys_of(i)]
    while True:
        start = out.tell()
        pipe: Any = client.pipeline(transaction=True)
        with pipe:
            try:
                pipe.watch(*watched)
                # Read after the WATCH, in one round trip on another connection: a change made
                # from now on, by anyone, still makes the EXEC below fail.
                with client.pipeline(transaction=False) as reads:
                    for order_id in ids:
                        reads.hgetall(keys.order(order_id))
                        reads.xrange(keys.order_audit(order_id))
                        reads.hgetall(keys.order_proof_meta(order_id))
                        reads.hgetall(keys.order_proofs(order_id))
                    raw = reads.execute()
                read = [
                    _record(sealer, order_id, *raw[4 * n : 4 * n + 4])
                    for n, order_id in enumerate(ids)
                ]
                records = [r for r in read if r is not None]
                for record, _ in records:
                    out.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
                out.flush()
                os.fsync(out.fileno())
                pipe.multi()
                for record, tracking in records:
                    _remove(pipe, record, tracking)
                pipe.execute()
            except WatchError:
                out.truncate(start)
                out.seek(start)
                result.retries += 1
                continue
        result.archived += len(records)
        return len(records)


def _keys_of(order_id: str) -> tuple[str, ...]:
    """The keys that hold an order (its tracking-token key aside)."""
    return (
        keys.order(order_id),
        keys.order_audit(order_id),
        keys.order_proof_meta(order_id),
        keys.order_proofs(order_id),
    )


def _record(
    sealer: Sealer,
    order_id: str,
    stored: dict[bytes, bytes],
    audit: list[tuple[bytes, dict[bytes, bytes]]],
    proof_meta: dict[bytes, bytes],
    proof_images: dict[bytes, bytes],
) -> tuple[dict[str, Any], str | None] | None:
    """The archive line of an order as read and the key of its tracking token; None for an order
    that is gone or no longer ended."""
    fields = _text(stored)
    if _ended_at(fields.get("status"), fields.get("nodes")) is None:
        return None
    record: dict[str, Any] = {
        "v": FORMAT,
        "id": order_id,
        "order": fields,
        "audit": [[entry_id.decode(), _text(entry)] for entry_id, entry in audit],
    }
    if proof_meta:
        record["proofs"] = {
            pid.decode(): {
                "meta": meta.decode(),
                "image": base64.b64encode(proof_images.get(pid, b"")).decode(),
            }
            for pid, meta in proof_meta.items()
        }
    try:
        return record, _tracking_key(sealer, fields)
    except DecryptionError as exc:  # nothing of this page is written or removed
        raise ArchiveError(
            f"order {order_id}: {exc}: archive with the data dir of the servers that made it"
        ) from None


def _remove(pipe: Any, record: dict[str, Any], tracking: str | None) -> None:
    order_id = record["id"]
    pipe.delete(*_keys_of(order_id))
    pipe.zrem(keys.ORDERS, order_id)
    pipe.srem(keys.orders_in(record["order"]["status"]), order_id)
    pipe.hdel(keys.ORDER_PINS, order_id)
    if tracking is not None:
        pipe.delete(tracking)


def read_archive(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of each line of an archive file."""
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ArchiveError(f"{path}:{number}: not JSON ({exc.msg})") from None
            yield number, record


_Proofs = dict[str, tuple[bytes, bytes]]  # proof id → (meta JSON, sealed image)


def _checked(
    path: Path, number: int, record: Any
) -> tuple[str, dict[str, str], list[Any], _Proofs]:
    where = f"{path}:{number}"
    if not isinstance(record, dict) or record.get("v") != FORMAT:
        raise ArchiveError(f"{where}: not an order archive line of format {FORMAT}")
    order_id, fields, audit = record.get("id"), record.get("order"), record.get("audit")
    if not isinstance(order_id, str) or not isinstance(fields, dict) or not isinstance(audit, list):
        raise ArchiveError(f"{where}: needs an id, an order and an audit list")
    missing = {"status", "created", "nodes", "doc", "pii"} - fields.keys()
    if missing:
        raise ArchiveError(f"{where}: the order lacks {', '.join(sorted(missing))}")
    if not all(isinstance(v, str) for v in fields.values()) or not fields["created"].isdigit():
        raise ArchiveError(f"{where}: the order's fields must be text, created a number (ms)")
    for entry in audit:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and _AUDIT_ID.fullmatch(entry[0]) and isinstance(entry[1], dict)
                and all(isinstance(v, str) for v in entry[1].values())):  # fmt: skip
            raise ArchiveError(f'{where}: an audit entry is not ["<ms>-<n>", {{text fields}}]')
    return order_id, cast("dict[str, str]", fields), audit, _checked_proofs(where, record)


def _checked_proofs(where: str, record: dict[str, Any]) -> _Proofs:
    proofs = record.get("proofs", {})
    wrong = ArchiveError(f'{where}: proofs must be {{"p-…": {{"meta": text, "image": base64}}}}')
    if not isinstance(proofs, dict):
        raise wrong
    checked: _Proofs = {}
    for proof_id, proof in proofs.items():
        if not (isinstance(proof, dict) and isinstance(proof.get("meta"), str)
                and isinstance(proof.get("image"), str)):  # fmt: skip
            raise wrong
        try:
            image = base64.b64decode(proof["image"], validate=True)
        except binascii.Error:
            raise wrong from None
        checked[proof_id] = (proof["meta"].encode(), image)
    return checked


_Line = tuple[str, dict[str, str], list[Any], _Proofs, str | None]  # … tracking key


def restore_orders(
    client: redis.Redis,
    sealer: Sealer,
    path: Path,
    *,
    progress: Callable[[RestoreResult], None] = lambda _: None,
) -> RestoreResult:
    """Put the orders of an archive file back in Redis, ``PAGE`` at a time; an order Redis holds
    is left alone (and of an order archived twice, the first line is put back)."""
    result = RestoreResult()
    page: list[_Line] = []
    for number, record in read_archive(path):
        order_id, fields, audit, proofs = _checked(path, number, record)
        try:
            tracking = _tracking_key(sealer, fields)
        except DecryptionError as exc:
            where = f"{path}:{number}"
            raise ArchiveError(f"{where}: {exc} (another installation's archive?)") from None
        page.append((order_id, fields, audit, proofs, tracking))
        if len(page) == PAGE:
            _put_back(client, page, result)
            page = []
            progress(result)
    if page:
        _put_back(client, page, result)
    progress(result)
    return result


def _put_back(client: redis.Redis, page: list[_Line], result: RestoreResult) -> None:
    first: dict[str, _Line] = {}
    for line in page:
        first.setdefault(line[0], line)
    order_keys = [keys.order(i) for i in first]
    while True:
        pipe: Any = client.pipeline(transaction=True)
        with pipe:
            try:
                pipe.watch(*order_keys)
                with client.pipeline(transaction=False) as reads:  # after the WATCH, as above
                    for key in order_keys:
                        reads.exists(key)
                    held = reads.execute()
                missing = [line for line, h in zip(first.values(), held, strict=True) if not h]
                pipe.multi()
                for order_id, fields, audit, proofs, tracking in missing:
                    pipe.delete(*_keys_of(order_id)[1:])
                    pipe.hset(keys.order(order_id), mapping=fields)
                    pipe.zadd(keys.ORDERS, {order_id: int(fields["created"])})
                    pipe.sadd(keys.orders_in(fields["status"]), order_id)
                    for entry_id, entry in audit:
                        pipe.xadd(keys.order_audit(order_id), entry, id=entry_id)
                    if proofs:
                        meta = {pid: m for pid, (m, _) in proofs.items()}
                        images = {pid: image for pid, (_, image) in proofs.items()}
                        pipe.hset(keys.order_proof_meta(order_id), mapping=meta)
                        pipe.hset(keys.order_proofs(order_id), mapping=images)
                    if tracking is not None:
                        pipe.set(tracking, order_id)
                pipe.execute()
            except WatchError:  # one was created meanwhile: look again (that one stays)
                continue
        result.restored += len(missing)
        result.present += len(page) - len(missing)
        return
