"""Quality KPIs from delivered orders (pure: the orders and the time are passed in).

The brief's figures beside the on-time rate: how long each time node takes, how many orders a
vehicle delivers a day, order accuracy as the share delivered at the first attempt, and what
the customers made of their deliveries (their ratings on the tracking page).
"""

from __future__ import annotations

from collections.abc import Sequence

from server.orders.model import Delivery

DAY_MS = 86_400_000

#: Each node's duration: from the first status to the second.
NODES = {
    "processing": ("received", "processed"),
    "departure": ("processed", "departed"),
    "delivery": ("departed", "delivered"),
    "lead_time": ("received", "delivered"),
}


def node_times_s(delivered: Sequence[Delivery]) -> dict[str, float | None]:
    """The mean seconds each node took over ``delivered`` (None: no order went through it)."""
    out: dict[str, float | None] = {}
    for node, (start, end) in NODES.items():
        spans = [
            (d.nodes_ms[end] - d.nodes_ms[start]) / 1000
            for d in delivered
            if start in d.nodes_ms and end in d.nodes_ms
        ]
        out[node] = sum(spans) / len(spans) if spans else None
    return out


def first_attempt_rate(delivered: Sequence[Delivery]) -> float | None:
    """The share of ``delivered`` that no attempt failed before (None: none delivered): the
    brief's "order accuracy" as a fleet can act on it, since a failed attempt is an address
    wrong, a customer absent or a refusal.

    >>> from datetime import datetime, UTC
    >>> at = datetime(2026, 11, 29, tzinfo=UTC)
    >>> done = [Delivery(delivered_at=at, window_end=at, promised_eta=None,
    ...                  nodes_ms={"delivered": 1, **failed})
    ...         for failed in [{}, {}, {"failed": 0}, {}]]
    >>> first_attempt_rate(done), first_attempt_rate([])
    (0.75, None)
    """
    if not delivered:
        return None
    return sum(1 for d in delivered if "failed" not in d.nodes_ms) / len(delivered)


def orders_per_vehicle_day(delivered: Sequence[Delivery], now_ms: int) -> float | None:
    """Orders delivered in the last 24 h per vehicle that delivered any (None: none did)."""
    recent = [d for d in delivered if now_ms - DAY_MS < d.nodes_ms.get("delivered", 0) <= now_ms]
    vehicles = {d.vehicle_id for d in recent}
    return len(recent) / len(vehicles) if vehicles else None


def ratings(delivered: Sequence[Delivery]) -> dict[str, float | int | None]:
    """The customers' mean rating of ``delivered`` (1 to 5; None: none rated), how many rated,
    and the share of the deliveries they rated.

    >>> from datetime import datetime, UTC
    >>> at = datetime(2026, 11, 29, tzinfo=UTC)
    >>> done = [Delivery(delivered_at=at, window_end=at, promised_eta=None, rating=r)
    ...         for r in [5, None, 2, 4]]
    >>> ratings(done)
    {'average': 3.6666666666666665, 'count': 3, 'share': 0.75}
    >>> ratings([])
    {'average': None, 'count': 0, 'share': None}
    """
    given = [d.rating for d in delivered if d.rating is not None]
    return {
        "average": sum(given) / len(given) if given else None,
        "count": len(given),
        "share": len(given) / len(delivered) if delivered else None,
    }
