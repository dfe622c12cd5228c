"""Order types on the wire (msgspec validates them; errors name the field)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

Lat = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Lon = Annotated[float, msgspec.Meta(ge=-180, le=180)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=24 * 3600)]
Priority = Literal["normal", "express"]
Notes = Annotated[str, msgspec.Meta(max_length=500)]


class Place(msgspec.Struct, forbid_unknown_fields=True):
    lat: Lat
    lon: Lon
    address: str = ""  # personal data: sealed at rest


class Window(msgspec.Struct, forbid_unknown_fields=True):
    start: dt.datetime
    end: dt.datetime


class Customer(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    phone: Annotated[str, msgspec.Meta(max_length=40)] = ""


class CustomerPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A change of the customer's contact: the fields given replace the stored ones, the others
    stay (a new phone number keeps the name)."""

    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=40)] | None = None


class OrderIn(msgspec.Struct, forbid_unknown_fields=True):
    dropoff: Place
    window: Window  # the promised delivery window
    pickup: Place | None = None  # None: from the vehicle's depot
    pickup_window: Window | None = None
    service_s: Seconds = 120.0
    pickup_service_s: Seconds = 60.0
    size: dict[str, Annotated[float, msgspec.Meta(ge=0)]] = msgspec.field(
        default_factory=lambda: {"parcels": 1.0}
    )
    skills: list[Annotated[str, msgspec.Meta(max_length=40)]] = msgspec.field(default_factory=list)
    priority: Priority = "normal"
    customer: Customer = msgspec.field(default_factory=Customer)
    reference: Annotated[str, msgspec.Meta(max_length=100)] = ""
    notes: Notes = ""  # for the driver: "door code 4521, 3rd floor"; personal data, sealed


class OrderPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    dropoff: Place | None = None  # (a corrected address: releases a held order)
    window: Window | None = None
    pickup_window: Window | None = None
    service_s: Seconds | None = None
    size: dict[str, Annotated[float, msgspec.Meta(ge=0)]] | None = None
    skills: list[str] | None = None
    priority: Priority | None = None
    customer: CustomerPatch | None = None
    notes: Notes | None = None


class Feedback(msgspec.Struct):
    """The customer's rating of a delivery (1 to 5) and their comment, from the tracking page."""

    rating: int
    comment: str
    at: dt.datetime


class FeedbackIn(msgspec.Struct, forbid_unknown_fields=True):
    rating: Annotated[int, msgspec.Meta(ge=1, le=5)]
    comment: Annotated[str, msgspec.Meta(max_length=500)] = ""


class Order(msgspec.Struct):
    """An order as the dispatcher API shows it (personal data decrypted)."""

    id: str
    status: str
    dropoff: Place
    window: Window
    pickup: Place | None
    pickup_window: Window | None
    service_s: float
    pickup_service_s: float
    size: dict[str, float]
    skills: list[str]
    priority: Priority
    customer: Customer
    reference: str
    vehicle_id: str | None
    nodes: dict[str, dt.datetime]  # status → when it was first reached
    created: dt.datetime
    failures: int = 0  # failed drop-off attempts so far
    held: str = ""  # the failure reason it waits for a dispatcher after ('' = not held)
    # the van out of service that still has the parcel, while ``vehicle_id`` is sent to
    # collect it ('' = none: the parcel is where the status says)
    transfer_from: str = ""
    notes: str = ""
    instructions: str = ""  # the customer's own, from the tracking page
    feedback: Feedback | None = None  # the customer's rating, once delivered


class StopDetails(msgspec.Struct):
    """What the driver of an order needs at its stops: the addresses, whom to ask for and how
    to reach them, the notes. Personal data: only its own driver (while the order is open) and
    staff read it."""

    id: str
    status: str
    reference: str
    pickup: Place | None
    pickup_window: Window | None
    dropoff: Place
    window: Window
    customer: Customer
    notes: str
    instructions: str
    size: dict[str, float]

    @classmethod
    def of(cls, order: Order) -> StopDetails:
        return cls(
            id=order.id, status=order.status, reference=order.reference, pickup=order.pickup,
            pickup_window=order.pickup_window, dropoff=order.dropoff, window=order.window,
            customer=order.customer, notes=order.notes, instructions=order.instructions,
            size=order.size,
        )  # fmt: skip


class InstructionsIn(msgspec.Struct, forbid_unknown_fields=True):
    """The customer's delivery instructions ("leave it with the neighbour at B 12")."""

    instructions: Annotated[str, msgspec.Meta(max_length=300)]


class ImportedOrder(msgspec.Struct):
    row: int  # the file's row (the header is row 1)
    id: str
    tracking_token: str
    new: bool  # false: created by an earlier upload under the same Idempotency-Key


class ImportResult(msgspec.Struct):
    created: int
    orders: list[ImportedOrder]


class OrderCreated(msgspec.Struct):
    order: Order
    tracking_token: str  # the customer's link key; ≥ 128 random bits


class AssignIn(msgspec.Struct, forbid_unknown_fields=True):
    vehicle_id: Annotated[str, msgspec.Meta(max_length=64)] | None  # None: the planner chooses


class ReasonIn(msgspec.Struct, forbid_unknown_fields=True):
    """Why a dispatcher moves an order (cancelled, returned, sent out again): for the audit."""

    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""


class Delivery(msgspec.Struct):
    """What the KPIs need of a delivered order (read without decrypting anything)."""

    delivered_at: dt.datetime
    window_end: dt.datetime
    promised_eta: dt.datetime | None  # the ETA shown at confirmation, when there was one
    nodes_ms: dict[str, int] = {}  # status → when the order first reached it (Unix ms)
    vehicle_id: str = ""  # the vehicle that delivered it
    rating: int | None = None  # the customer's, 1 to 5, if they gave one


class AuditEntry(msgspec.Struct):
    at: dt.datetime
    status: str
    previous: str | None
    by: str
    reason: str = ""
