"""``fleet bench archive``: what an ended order costs Redis, and how fast orders leave and return.

A private Redis; ``orders`` orders created through ``OrderStore`` (as the API does: personal data
sealed, audited) and delivered (six audit entries each); Redis's ``used_memory`` before and
after gives the bytes an order holds. Then ``fleet orders archive``'s code moves them all to a
file, timed, and ``restore`` puts them back, timed; the orders back are counted against those
archived and one is compared field by field with what was archived.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import msgspec
import redis
import redis.asyncio as aioredis

from server import keys
from server.orders.archive import archive_orders, restore_orders
from server.orders.crypto import Sealer
from server.orders.model import OrderIn
from server.orders.store import OrderStore
from server.redis_process import PrivateRedis

ORDER = {
    "dropoff": {"lat": 60.1699, "lon": 24.9384, "address": "Mannerheimintie 1, Helsinki"},
    "window": {"start": "2026-11-29T10:00:00Z", "end": "2026-11-29T12:00:00Z"},
    "size": {"kg": 3.5, "parcels": 1},
    "customer": {"name": "Aino Virtanen", "phone": "+358401234567"},
    "reference": "shop-order-000000",
}


async def _make(url: str, sealer: Sealer, orders: int, progress: Callable[[str], None]) -> None:
    client = aioredis.Redis.from_url(url)
    store = OrderStore(client, sealer)
    data = msgspec.convert(ORDER, OrderIn)
    limit = asyncio.Semaphore(64)
    done = 0

    async def one() -> None:
        nonlocal done
        async with limit:
            made, _ = await store.create(data, idempotency_key=None, by="bench")
            await store.advance(made.order.id, "delivered", by="bench")
            done += 1
            if done % 5000 == 0:
                progress(f"  {done:,} orders made and delivered")

    try:
        await asyncio.gather(*(one() for _ in range(orders)))
    finally:
        await client.aclose()


def run(orders: int = 20_000, progress: Callable[[str], None] = print) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="fleet-bench-archive-") as tmp,
        PrivateRedis(Path(tmp)) as private,
    ):
        client = redis.Redis.from_url(private.url)
        sealer = Sealer(b"b" * 32)
        try:
            before = int(client.info("memory")["used_memory"])
            started = time.perf_counter()
            asyncio.run(_make(private.url, sealer, orders, progress))
            made_s = time.perf_counter() - started
            held = int(client.info("memory")["used_memory"])
            progress(f"{orders:,} orders delivered in {made_s:.1f} s; Redis holds "
                     f"{(held - before) / orders:,.0f} bytes an order")  # fmt: skip
            archive = Path(tmp) / "orders.jsonl"
            started = time.perf_counter()
            with archive.open("ab") as out:
                moved = archive_orders(
                    client, sealer, out, ended_before_ms=int(time.time() * 1000) + 60_000
                )
            archive_s = time.perf_counter() - started
            after = int(client.info("memory")["used_memory"])
            left = int(client.zcard(keys.ORDERS))
            progress(f"archived {moved.archived:,} in {archive_s:.1f} s "
                     f"({moved.archived / archive_s:,.0f}/s); {left} left in Redis")  # fmt: skip
            with archive.open("rb") as file:
                sample = file.readline()
            started = time.perf_counter()
            back = restore_orders(client, sealer, archive)
            restore_s = time.perf_counter() - started
            first = msgspec.json.decode(sample)
            stored = cast("dict[bytes, bytes]", client.hgetall(keys.order(first["id"])))
            again = {k.decode(): v.decode() for k, v in stored.items()}
            progress(f"restored {back.restored:,} in {restore_s:.1f} s "
                     f"({back.restored / restore_s:,.0f}/s)")  # fmt: skip
            return {
                "orders": orders,
                "redis_bytes_per_delivered_order": round((held - before) / orders),
                "freed_bytes_per_order": round((held - after) / orders),
                "archive_bytes_per_order": round(archive.stat().st_size / orders),
                "archived": moved.archived,
                "archived_per_s": round(moved.archived / archive_s),
                "left_in_redis": left,
                "restored": back.restored,
                "restored_per_s": round(back.restored / restore_s),
                "restored_equal": again == first["order"],
                "orders_in_redis_after_restore": int(client.zcard(keys.ORDERS)),
            }
        finally:
            client.close()
