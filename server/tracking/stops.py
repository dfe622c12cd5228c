"""Stop events from the driver socket: arrived, picked up, delivered, failed (with a reason),
returned (the parcel of a failed delivery handed back where it came from).

Only the vehicle an order is assigned to may report on it. A reported node moves the order
through the nodes in between (each timestamped and audited). A failure is counted by reason
(``fleet:stats:failures``) and goes, by :func:`server.orders.lifecycle.after_failure`, back to
the planner for another attempt (``received``) or back to the sender (``returning``: the planner
routes the van that has the parcel to the order's pickup place, or to its depot for an order
loaded there; with neither, there is no trip to plan and the order is ``returned`` at once),
or, for a reason in ``FLEET_HOLD_ON`` (a wrong address), held for a dispatcher: ``received``
but not planned, with a ``held`` alert, until the address is corrected or the order released.
A parcel on a van out of service is collected by the van the planner sends (the order's
``transfer_from`` names the first): that van's ``picked_up`` takes it over, status unchanged;
nothing else is taken from it before.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from server import keys
from server.errors import ApiError
from server.orders.lifecycle import HOLD, RETRY, RETURN, after_failure
from server.orders.model import Order
from server.orders.store import OrderStore
from server.settings import Settings
from server.tracking.vehicles import get_vehicle
from server.tracking.wire import StopAck, StopEvent, encode, error_frame


class StopHandler:
    def __init__(
        self, orders: OrderStore, redis: aioredis.Redis, vehicle_id: str, settings: Settings
    ) -> None:
        self.orders = orders
        self.redis = redis
        self.vehicle_id = vehicle_id
        self.settings = settings

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
        if order.transfer_from:  # its parcel is on a van out of service: collected first
            if event.event != "picked_up":
                return error_frame(
                    "invalid_transition",
                    f"{order.id} is still on {order.transfer_from}: collect it first",
                    event.seq,
                )
            try:
                order = await self.orders.take_over(order.id, self.vehicle_id)
            except ApiError as exc:
                return error_frame("invalid_transition", exc.message, event.seq)
            return encode(StopAck(seq=event.seq, order_id=order.id, status=order.status))
        if event.event == "returned" and order.status != "returning":
            return error_frame(
                "invalid_transition",
                f"only a parcel going back to its sender is handed back; {order.id} is "
                f"{order.status}",
                event.seq,
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
                order = await self._after_failure(order, event.reason or "other")
        except ApiError as exc:
            return error_frame("invalid_transition", exc.message, event.seq)
        return encode(
            StopAck(seq=event.seq, order_id=order.id, status=order.status, held=order.held)
        )

    async def _after_failure(self, order: Order, reason: str) -> Order:
        await self.redis.hincrby(keys.FAILURES, reason, 1)
        s = self.settings
        follow = after_failure(
            reason, order.failures, policy=s.failed_policy, max_attempts=s.max_attempts,
            return_on=s.return_on, hold_on=s.hold_on,
        )  # fmt: skip
        why = f"after {reason}, attempt {order.failures}"
        if follow == HOLD:  # back with the planner, which leaves it be until a dispatcher acts
            await self.orders.transition(order.id, RETRY, by="policy", reason=why)
            return await self.orders.hold(order.id, reason)
        if follow == RETURN:
            return await back_to_sender(self.orders, self.redis, order, by="policy", why=why)
        return await self.orders.transition(order.id, follow, by="policy", reason=why)


async def back_to_sender(
    orders: OrderStore, redis: aioredis.Redis, order: Order, *, by: str, why: str
) -> Order:
    """Send the parcel of ``order`` (on its vehicle) back to where it came from: ``returning``
    (the planner routes the van to the pickup place, or to its depot for an order loaded there),
    or ``returned`` at once when there is neither (the driver takes it home)."""
    if order.pickup is None:
        try:
            depot = (await get_vehicle(redis, order.vehicle_id or "")).depot
        except ApiError:  # no vehicle, or one retired meanwhile
            depot = None
        if depot is None:
            why = f"{why}; no pickup place or depot to take it back to"
            return await orders.transition(order.id, "returned", by=by, reason=why)
    return await orders.transition(order.id, RETURN, by=by, reason=why)
