"""Stop events from the driver socket: arrived, picked up, delivered, failed (with a reason).

Only the vehicle an order is assigned to may report on it. A reported node moves the order
through the nodes in between (each timestamped and audited). A failure is counted by reason
(``fleet:stats:failures``) and, by ``FLEET_FAILED_POLICY``, sent back to the planner for a new
attempt (``retry``: the order returns to ``received``) or returned to the depot (``return``).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from server import keys
from server.errors import ApiError
from server.orders.store import OrderStore
from server.tracking.wire import StopAck, StopEvent, encode, error_frame


class StopHandler:
    def __init__(
        self, orders: OrderStore, redis: aioredis.Redis, vehicle_id: str, failed_policy: str
    ) -> None:
        self.orders = orders
        self.redis = redis
        self.vehicle_id = vehicle_id
        self.failed_policy = failed_policy

    async def handle(self, event: StopEvent) -> bytes:
        """Apply the event; the frame to answer with (``stop_ack`` or ``error``)."""
        try:
            order = await self.orders.get(event.order_id)
        except ApiError:
            return error_frame("unknown_order", f"no order {event.order_id}", event.seq)
        if order.vehicle_id != self.vehicle_id:
            return error_frame(
                "not_your_order", f"{event.order_id} is not assigned to you", event.seq
            )
        if event.event == "arrived" and order.status == "arrived":
            # Arrival is also noticed by the server (the vehicle within a radius of the stop).
            return encode(StopAck(seq=event.seq, order_id=order.id, status=order.status))
        # A failure's reason is what the audit and the customer's timeline show; a proof (a
        # photo of the closed door, say) is noted beside it.
        proof = f"proof {event.proof}" if event.proof else ""
        note = f"{event.reason} ({proof})" if event.reason and proof else event.reason or proof
        try:
            order = await self.orders.advance(
                order.id, event.event, by=self.vehicle_id, reason=note
            )
            if event.event == "failed":
                await self.redis.hincrby(keys.FAILURES, event.reason or "other", 1)
                follow = "received" if self.failed_policy == "retry" else "returned"
                order = await self.orders.transition(
                    order.id, follow, by="policy", reason=f"after {event.reason}"
                )
        except ApiError as exc:
            return error_frame("invalid_transition", exc.message, event.seq)
        return encode(StopAck(seq=event.seq, order_id=order.id, status=order.status))
