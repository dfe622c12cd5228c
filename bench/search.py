"""``fleet bench search``: what finding an order by the customer's name or phone costs.

The personal data is sealed at rest, so a search opens it in memory for every order it looks
at (every open order and the newest 10,000: :meth:`server.orders.store.OrderStore.search`). A
private Redis; ``orders`` orders created through ``OrderStore`` (as the API does), each with
its own customer, phone and street, a quarter of them delivered; then each query below is run
``repeat`` times and timed (wall clock and this process's CPU: the server's share). The query
that matches nothing looks at every order it may: the worst case.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import redis.asyncio as aioredis

from server import keys
from server.orders.crypto import Sealer
from server.orders.lifecycle import OPEN
from server.orders.model import OrderIn
from server.orders.store import OrderStore
from server.redis_process import PrivateRedis


def _order(i: int) -> OrderIn:
    return msgspec.convert(
        {
            "dropoff": {"lat": 60.17, "lon": 24.94, "address": f"Katu {i}, {i % 90} B"},
            "window": {"start": "2026-11-29T10:00:00Z", "end": "2026-11-29T12:00:00Z"},
            "customer": {"name": f"Asiakas Numero{i}", "phone": f"+358 40 {i:07d}"},
            "reference": f"shop-{i:06d}",
        },
        OrderIn,
    )


async def _run(url: str, orders: int, repeat: int, progress: Callable[[str], None]) -> Any:
    client = aioredis.Redis.from_url(url)
    store = OrderStore(client, Sealer(b"s" * 32))
    limit = asyncio.Semaphore(64)
    made = 0

    async def one(i: int) -> None:
        nonlocal made
        async with limit:
            created, _ = await store.create(_order(i), idempotency_key=None, by="bench")
            if i % 4 == 0:
                await store.advance(created.order.id, "delivered", by="bench")
            made += 1
            if made % 5000 == 0:
                progress(f"  {made:,} orders made")

    try:
        await asyncio.gather(*(one(i) for i in range(orders)))
        last = orders - 1
        queries = {
            "nothing_matches": "nobody here",
            "one_by_name": f"numero{last}",
            "one_by_phone": f"040 {last:07d}",
            "many_by_name": "asiakas",
        }
        figures: dict[str, Any] = {}
        for name, text in queries.items():
            walls, cpus, found = [], [], 0
            for _ in range(repeat):
                wall, cpu = time.perf_counter(), time.process_time()
                found = len(await store.search(text, limit=20))
                walls.append((time.perf_counter() - wall) * 1000)
                cpus.append((time.process_time() - cpu) * 1000)
            wall_ms, cpu_ms = statistics.median(walls), statistics.median(cpus)
            figures[name] = {"query": text, "found": found, "wall_ms": round(wall_ms, 1),
                             "cpu_ms": round(cpu_ms, 1)}  # fmt: skip
            progress(f"{name:16} {text!r:22} found {found:2}: {wall_ms:6.1f} ms wall, "
                     f"{cpu_ms:6.1f} ms CPU (median of {repeat})")  # fmt: skip
        open_orders = await client.sunion([keys.orders_in(s) for s in OPEN])
        return figures, len(open_orders), len(await store.search_scope())
    finally:
        await client.aclose()


def run(orders: int = 20_000, repeat: int = 5, progress: Callable[[str], None] = print) -> Any:
    with (
        tempfile.TemporaryDirectory(prefix="fleet-bench-search-") as tmp,
        PrivateRedis(Path(tmp)) as private,
    ):
        progress(f"making {orders:,} orders (a quarter delivered) in a private Redis")
        figures, open_orders, looked_at = asyncio.run(_run(private.url, orders, repeat, progress))
    worst = figures["nothing_matches"]["cpu_ms"]
    return {
        "orders": orders,
        "open_orders": open_orders,
        "looked_at": looked_at,
        "queries": figures,
        "cpu_us_per_order_looked_at": round(worst * 1000 / looked_at, 1),
    }
