"""The order lifecycle and its time-node limits (pure: times passed in).

::

    received → processed (assigned) → departed → picked_up → arrived → delivered
        │            │                  │          │          └─→ failed → received (re-planned)
        └────────────┴──────────────────┴──────────┴─→ cancelled     └─→ returning → returned

(and, for an order back with the planner after a failed attempt, its parcel still on the van:
received, processed or departed → returning, or → returned when there is nowhere to take it)

Time-node limits, from the operating rules of the companies that run fleet (all configurable):
an order is *processed* within 2 h of receipt, *departed* within 3 h of processing, and its total
lead time (received → delivered) stays under 48 h. (Acknowledgement within 1 h of arrival is met
by construction: an order is received the moment the API accepts it.)

A failed drop-off goes back to the planner for another attempt, or its parcel goes back to the
sender (:func:`after_failure`): *returning* while the van carries it back to where it came from
(the shop, or the van's depot), *returned* once it is there.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

STATUSES = (
    "received", "processed", "departed", "picked_up", "arrived",
    "delivered", "failed", "returning", "returned", "cancelled",
)  # fmt: skip
FINAL = frozenset({"delivered", "returned", "cancelled"})
OPEN = frozenset(STATUSES) - FINAL

ALLOWED: dict[str, frozenset[str]] = {
    "received": frozenset({"processed", "cancelled", "returning", "returned"}),
    "processed": frozenset(
        {"received", "departed", "picked_up", "cancelled", "returning", "returned"}
    ),
    "departed": frozenset(
        {"picked_up", "arrived", "received", "cancelled", "failed", "returning", "returned"}
    ),
    "picked_up": frozenset({"arrived", "delivered", "failed"}),
    "arrived": frozenset({"delivered", "failed", "picked_up"}),
    "failed": frozenset({"processed", "received", "returning", "returned"}),
    "returning": frozenset({"returned", "received"}),  # (a dispatcher's new attempt)
    "delivered": frozenset(),
    "returned": frozenset(),
    "cancelled": frozenset(),
}


def parcel_on_van(status: str, nodes: Container[str]) -> bool:
    """Whether an open order's parcel is on a van: picked up and not delivered, or back with
    the planner after a failed attempt (the van that tried still has it). Such an order is not
    cancelled: its parcel goes back to the sender (``returning``) or out again.

    >>> parcel_on_van("received", {"received": 1}), parcel_on_van("received", {"failed": 5})
    (False, True)
    >>> parcel_on_van("picked_up", {}), parcel_on_van("returning", {"failed": 5})
    (True, False)
    """
    if status in ("picked_up", "arrived"):
        return True
    return status in ("received", "processed", "departed") and "failed" in nodes


class TransitionError(ValueError):
    """The order cannot move from its status to the one asked for."""


def check_transition(current: str, target: str) -> None:
    """Raise :class:`TransitionError` unless ``current → target`` is allowed.

    >>> check_transition("received", "processed")
    >>> check_transition("delivered", "cancelled")
    Traceback (most recent call last):
    ...
    server.orders.lifecycle.TransitionError: an order that is delivered cannot become cancelled
    """
    if target not in ALLOWED.get(current, frozenset()):
        raise TransitionError(f"an order that is {current} cannot become {target}")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeLimits:
    processing_s: float = 2 * 3600.0
    departure_s: float = 3 * 3600.0
    lead_time_s: float = 48 * 3600.0


RETRY, RETURN = "received", "returning"
HOLD = "held"  # received, but not planned until a dispatcher has looked at it


def after_failure(
    reason: str,
    failures: int,
    *,
    policy: str,
    max_attempts: int,
    return_on: frozenset[str],
    hold_on: frozenset[str] = frozenset(),
) -> str:
    """Where an order goes after its ``failures``-th failed drop-off (this one included):
    back to the planner (``received``) for another attempt, or back to the sender
    (``returning``) when the policy says so, the reason is one not worth another trip (a
    refusal, by default), or it was the last attempt allowed (``max_attempts``; 0: no limit).
    A reason in ``hold_on`` (a wrong address, by default), where another attempt would fail the
    same way, is ``held``: back with the planner, but not planned until a dispatcher corrects
    the address or sends it out again as it is.

    >>> rules = {"policy": "retry", "max_attempts": 3, "return_on": frozenset({"refused"}),
    ...          "hold_on": frozenset({"address_wrong"})}
    >>> after_failure("customer_absent", 1, **rules), after_failure("customer_absent", 3, **rules)
    ('received', 'returning')
    >>> after_failure("refused", 1, **rules), after_failure("address_wrong", 1, **rules)
    ('returning', 'held')
    >>> after_failure("address_wrong", 3, **rules)  # the last attempt: back to the sender
    'returning'
    """
    if policy == "return" or reason in return_on or 0 < max_attempts <= failures:
        return RETURN
    if reason in hold_on:
        return HOLD
    return RETRY


def breaches(nodes: dict[str, int], now_ms: int, limits: NodeLimits) -> list[str]:
    """Which limits the order's time nodes (status → first time, ms) have missed by ``now_ms``.

    A node not reached yet counts as reached now, so a late node is reported while it is late.
    """

    def at(node: str) -> int:
        return nodes.get(node, now_ms)

    found = []
    if "received" in nodes and at("processed") - nodes["received"] > limits.processing_s * 1000:
        found.append("processing")
    if "processed" in nodes and at("departed") - nodes["processed"] > limits.departure_s * 1000:
        found.append("departure")
    end = nodes.get("delivered", nodes.get("returned", nodes.get("cancelled", now_ms)))
    if "received" in nodes and end - nodes["received"] > limits.lead_time_s * 1000:
        found.append("lead_time")
    return found


FORWARD = ("received", "processed", "departed", "picked_up", "arrived", "delivered")


def steps_to(current: str, target: str) -> list[str]:
    """The statuses to pass through, in order, to move ``current`` to ``target``: a driver who
    reports a later node directly (``delivered`` while still ``processed``) passes the nodes in
    between, each timestamped then.

    >>> steps_to("processed", "arrived")
    ['departed', 'picked_up', 'arrived']
    >>> steps_to("processed", "failed")
    ['departed', 'picked_up', 'arrived', 'failed']
    """
    if target == "failed" and current in FORWARD[:4]:  # a delivery fails at the door
        return [*steps_to(current, "arrived"), "failed"]
    if current in FORWARD and target in FORWARD and FORWARD.index(current) < FORWARD.index(target):
        return list(FORWARD[FORWARD.index(current) + 1 : FORWARD.index(target) + 1])
    return [target]
