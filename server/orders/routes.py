"""``/orders``: the dispatcher's order API (staff token required)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from litestar import Controller, Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody, Parameter, QueryParameter

from geo.errors import OutsideServiceArea
from geo.roads import Roads
from server import clock, keys
from server.auth import staff_only, staff_or_vehicle
from server.bodies import read_body
from server.errors import ApiError, BadRequest, Conflict, NotFound
from server.orders import csvexport, csvimport
from server.orders.alerts import recent_alerts
from server.orders.lifecycle import FINAL, STATUSES, parcel_on_van
from server.orders.model import (
    AssignIn,
    AuditEntry,
    ImportedOrder,
    ImportResult,
    Order,
    OrderCreated,
    OrderIn,
    OrderPatch,
    Place,
    ReasonIn,
    StopDetails,
    Window,
)
from server.orders.proofs import (
    CONTENT_TYPES,
    NotYourOrder,
    Proof,
    ProofKind,
    ProofStore,
    check_image,
)
from server.orders.store import OrderStore
from server.settings import Settings
from server.tracking.stops import back_to_sender

IMPORT_MAX_BYTES = 4 * 1024 * 1024  # about 20,000 rows: more than an import takes (5,000)
MAX_EXPORT = 20_000  # orders in one export


def _check_window(window: Window | None, field: str) -> None:
    if window is None:
        return
    if window.start.tzinfo is None or window.end.tzinfo is None:
        raise BadRequest(f"{field} times need a time zone (e.g. Z)", details={"field": field})
    if window.end <= window.start:
        raise BadRequest(f"{field}.end must be after {field}.start", details={"field": field})


class Unsnappable(ApiError):
    status, code = 422, "outside_service_area"


def _check_snappable(roads: Roads | None, place: Place, field: str) -> None:
    """422 naming the field when the place is too far from any road (with a road network)."""
    if roads is None:
        return
    try:
        roads.snap(place.lat, place.lon)
    except OutsideServiceArea as exc:
        raise Unsnappable(str(exc), details={"field": field}) from None


def _row_errors(row: int, data: OrderIn, roads: Roads | None) -> list[csvimport.RowError]:
    """What ``POST /orders`` would refuse in one imported row, as row errors."""
    checks: list[Callable[[], None]] = [
        lambda: _check_window(data.window, "window"),
        lambda: _check_window(data.pickup_window, "pickup_window"),
        lambda: _check_snappable(roads, data.dropoff, "dropoff"),
    ]
    if data.pickup is not None:
        pickup = data.pickup
        checks.append(lambda: _check_snappable(roads, pickup, "pickup"))
    found = []
    for check in checks:
        try:
            check()
        except ApiError as exc:
            found.append(csvimport.RowError(row, exc.details["field"], exc.message))
    return found


async def _move(orders: OrderStore, order_id: str, target: str, data: ReasonIn | None) -> Order:
    """A dispatcher's status change, with the reason given (if any) for the audit."""
    return await orders.transition(
        order_id, target, by="api", reason=data.reason if data is not None else ""
    )


class OrdersController(Controller):
    path = "/orders"
    tags = ["orders"]  # noqa: RUF012 - Litestar reads this class attribute
    guards = [staff_only]  # noqa: RUF012

    @post(
        "/",
        summary="Create an order; repeat with the same Idempotency-Key to get the same answer",
        status_code=201,
        responses={
            200: ResponseSpec(
                data_container=OrderCreated,
                description="This Idempotency-Key's order, created before: nothing new",
            )
        },
    )
    async def create(
        self,
        data: JSONBody[OrderIn],
        orders: NamedDependency[OrderStore],
        state: State,
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", max_length=200)
        ] = None,
    ) -> Response[OrderCreated]:
        _check_window(data.window, "window")
        _check_window(data.pickup_window, "pickup_window")
        _check_snappable(state.get("roads"), data.dropoff, "dropoff")
        if data.pickup is not None:
            _check_snappable(state.get("roads"), data.pickup, "pickup")
        created, new = await orders.create(data, idempotency_key=idempotency_key, by="api")
        return Response(created, status_code=201 if new else 200)

    @post(
        "/import",
        summary="Create orders from a CSV file: all of them, or none and every error",
        description="One order a row; the columns are `POST /orders`'s fields, their path "
        "joined with `_` (`dropoff_lat`, `window_start`, `customer_phone`, `size_parcels`, "
        "…; see docs/PROTOCOL.md). With an Idempotency-Key, the same upload again creates "
        "nothing new.",
        status_code=201,
        raw_body=("text/csv",),
        responses={
            400: ResponseSpec(
                None, description="Rows with errors (`details.errors`: row, column, message)"
            ),
            413: ResponseSpec(None, description="Larger than 4 MiB"),
        },
    )
    async def import_csv(
        self,
        request: Request[Any, Any, Any],
        orders: NamedDependency[OrderStore],
        state: State,
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", max_length=180)
        ] = None,
    ) -> ImportResult:
        try:
            text = (await read_body(request, IMPORT_MAX_BYTES)).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadRequest("the file must be UTF-8 text (CSV)") from None
        parsed, errors = csvimport.parse(text, csvimport.ORDERS)
        if not parsed and not errors:
            raise BadRequest("the file holds no order: a header row, then one row per order")
        if not errors:  # what POST /orders checks beyond the types, row by row
            for row, data in enumerate(parsed, start=2):
                errors += _row_errors(row, data, state.get("roads"))
        if errors:
            raise csvimport.rejected(errors, "no order was created")
        imported = []
        for start in range(0, len(parsed), 50):  # 50 at a time: a 5,000-row file in seconds
            rows = list(enumerate(parsed[start : start + 50], start=start + 2))
            idem = [f"{idempotency_key}:{row}" if idempotency_key else None for row, _ in rows]
            answers = await asyncio.gather(*(
                orders.create(data, idempotency_key=key, by="import")
                for (_, data), key in zip(rows, idem, strict=True)
            ))  # fmt: skip
            imported += [
                ImportedOrder(
                    row=row, id=made.order.id, tracking_token=made.tracking_token, new=new
                )
                for (row, _), (made, new) in zip(rows, answers, strict=True)
            ]
        return ImportResult(created=sum(o.new for o in imported), orders=imported)

    @get(
        "/search",
        summary="Orders by the customer's name or phone, an address, the reference or the id",
        description="Every word of `q` must be found (case- and accent-blind); a phone number "
        "matches however it is written. Looks at every open order and the newest 10,000.",
    )
    async def search(
        self,
        orders: NamedDependency[OrderStore],
        q: Annotated[str, QueryParameter(max_length=200)],
        limit: int = Parameter(default=20, ge=1, le=200),
    ) -> list[Order]:
        try:
            return await orders.search(q, limit=limit)
        except ValueError as exc:
            raise BadRequest(str(exc), details={"field": "q"}) from None

    @get(
        "/export",
        summary="The orders created in a time range, as a CSV file",
        description="One order a row, oldest first: what happened to it (status, vehicle, the "
        "time of each status, failures, on time, the customer's rating), then its fields as "
        "`POST /orders/import` names them (personal data included). `from` and `to` are "
        "ISO 8601 times with a zone; by default the last 24 hours. At most 20,000 orders.",
        media_type="text/csv",
    )
    async def export(
        self,
        orders: NamedDependency[OrderStore],
        settings: NamedDependency[Settings],
        start: Annotated[dt.datetime | None, QueryParameter(name="from")] = None,
        end: Annotated[dt.datetime | None, QueryParameter(name="to")] = None,
    ) -> Response[bytes]:
        for name, moment in (("from", start), ("to", end)):
            if moment is not None and moment.tzinfo is None:
                raise BadRequest(f"`{name}` needs a time zone (e.g. Z)", details={"field": name})
        end_ms = int(end.timestamp() * 1000) if end else clock.now_ms()
        start_ms = int(start.timestamp() * 1000) if start else end_ms - 24 * 3600 * 1000
        if start_ms > end_ms:
            raise BadRequest("`from` is after `to`", details={"field": "from"})
        found = await orders.created_between(start_ms, end_ms, limit=MAX_EXPORT)
        if found is None:
            raise BadRequest(
                f"more than {MAX_EXPORT:,} orders in that range: export a shorter one",
                details={"field": "from"},
            )
        zone = ZoneInfo(settings.time_zone)
        day = dt.datetime.fromtimestamp(start_ms / 1000, tz=zone).date().isoformat()
        return Response(
            csvexport.to_csv(found, zone).encode(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="orders-{day}.csv"'},
        )

    @get("/", summary="Orders, newest first, optionally by status")
    async def list_orders(
        self,
        orders: NamedDependency[OrderStore],
        status: str | None = Parameter(
            default=None, description="|".join(STATUSES), schema_extra={"enum": list(STATUSES)}
        ),
        open_only: Annotated[bool, QueryParameter(name="open")] = False,
        limit: int = Parameter(default=200, ge=1, le=5000),
    ) -> list[Order]:
        if status is not None and status not in STATUSES:
            raise BadRequest(
                f"status must be one of {', '.join(STATUSES)}", details={"field": "status"}
            )
        return await orders.find(status=status, limit=limit, open_only=open_only)

    @get("/{order_id:str}", summary="One order")
    async def get_order(
        self, order_id: FromPath[str], orders: NamedDependency[OrderStore]
    ) -> Order:
        return await orders.get(order_id)

    @patch(
        "/{order_id:str}",
        summary="Change an order: what planning uses until the van leaves (a new drop-off "
        "place releases a held order), the customer's contact and notes while it is open",
    )
    async def update(
        self,
        order_id: FromPath[str],
        data: JSONBody[OrderPatch],
        orders: NamedDependency[OrderStore],
        state: State,
    ) -> Order:
        _check_window(data.window, "window")
        _check_window(data.pickup_window, "pickup_window")
        if data.dropoff is not None:
            _check_snappable(state.get("roads"), data.dropoff, "dropoff")
        return await orders.update(order_id, data)

    @post("/{order_id:str}/cancel", summary="Cancel an order", status_code=200)
    async def cancel(
        self,
        order_id: FromPath[str],
        orders: NamedDependency[OrderStore],
        data: JSONBody[ReasonIn | None] = None,  # the reason is optional, and so is the body
    ) -> Order:
        order = await orders.get(order_id)
        if parcel_on_van(order.status, order.nodes):
            raise Conflict(
                f"the parcel of {order_id} is on {order.vehicle_id or 'a van'}: send it back to "
                "its sender (POST /orders/{id}/return) or out again (retry), not cancelled",
                details={"status": order.status, "vehicle_id": order.vehicle_id},
            )
        return await _move(orders, order_id, "cancelled", data)

    @post(
        "/{order_id:str}/return",
        summary="Send the parcel of an order back with the planner after a failed attempt "
        "(held, say) back to its sender",
        status_code=200,
    )
    async def send_back(
        self,
        order_id: FromPath[str],
        orders: NamedDependency[OrderStore],
        redis: NamedDependency[aioredis.Redis],
        data: JSONBody[ReasonIn | None] = None,
    ) -> Order:
        order = await orders.get(order_id)
        if order.status not in ("received", "processed", "departed") or "failed" not in order.nodes:
            raise Conflict(
                "only an order back with the planner after a failed attempt (its parcel on the "
                f"van that tried) is sent back this way; this one is {order.status}",
                details={"status": order.status},
            )
        reason = data.reason if data is not None and data.reason else "sent back by a dispatcher"
        return await back_to_sender(orders, redis, order, by="api", why=reason)

    @post(
        "/{order_id:str}/returned",
        summary="Record that a returning order's parcel is back with its sender",
        status_code=200,
    )
    async def returned(
        self,
        order_id: FromPath[str],
        orders: NamedDependency[OrderStore],
        data: JSONBody[ReasonIn | None] = None,
    ) -> Order:
        order = await orders.get(order_id)
        if order.status != "returning":
            raise Conflict(
                f"only a returning order's parcel is recorded back; this one is {order.status}",
                details={"status": order.status},
            )
        return await _move(orders, order_id, "returned", data)

    @post(
        "/{order_id:str}/retry",
        summary="Send a returning or held order out for another attempt (from the van that has it)",
        status_code=200,
    )
    async def retry(
        self,
        order_id: FromPath[str],
        orders: NamedDependency[OrderStore],
        data: JSONBody[ReasonIn | None] = None,
    ) -> Order:
        order = await orders.get(order_id)
        if order.held:
            reason = data.reason if data is not None else ""
            return await orders.release(order_id, by="api", reason=reason)
        if order.status != "returning":
            raise Conflict(
                f"only a returning or held order can be sent out again; this one is {order.status}",
                details={"status": order.status},
            )
        return await _move(orders, order_id, "received", data)

    @post("/{order_id:str}/assign", summary="Put an order on a chosen vehicle", status_code=200)
    async def assign(
        self,
        order_id: FromPath[str],
        data: JSONBody[AssignIn],
        orders: NamedDependency[OrderStore],
        redis: NamedDependency[aioredis.Redis],
    ) -> Order:
        if data.vehicle_id is not None and not await redis.hexists(keys.VEHICLES, data.vehicle_id):
            raise NotFound(f"no vehicle {data.vehicle_id}", details={"field": "vehicle_id"})
        return await orders.pin(order_id, data.vehicle_id, by="api")

    @get("/{order_id:str}/audit", summary="Every status change of the order, oldest first")
    async def audit(
        self, order_id: FromPath[str], orders: NamedDependency[OrderStore]
    ) -> list[AuditEntry]:
        return await orders.audit(order_id)


IMAGE_HEADERS = {
    "Cache-Control": "private, max-age=86400",  # a proof never changes
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
}


def image_response(proof: Proof, image: bytes) -> Response[bytes]:
    return Response(image, media_type=proof.content_type, headers=IMAGE_HEADERS)


class ProofsController(Controller):
    """Proof of delivery: ``POST`` takes the driver's token of the order's vehicle (or a staff
    token); reading proofs takes a staff token."""

    path = "/orders/{order_id:str}/proofs"
    tags = ["orders"]  # noqa: RUF012 - Litestar reads this class attribute

    @post(
        "/",
        summary="Add a photo or a signature to an order (the image is the body)",
        status_code=201,
        responses={
            409: ResponseSpec(
                None, description="Six proofs already, or the order is not on its way (a driver)"
            ),
            413: ResponseSpec(None, description="Larger than FLEET_PROOF_MAX_BYTES"),
            415: ResponseSpec(None, description="Not JPEG, PNG or WebP"),
        },
        raw_body=tuple(CONTENT_TYPES),
        bearer=True,
    )
    async def add(
        self,
        order_id: FromPath[str],
        request: Request[Any, Any, Any],
        proofs: NamedDependency[ProofStore],
        settings: NamedDependency[Settings],
        kind: Annotated[ProofKind, QueryParameter(description="photo | signature")] = "photo",
    ) -> Proof:
        vehicle_id = await staff_or_vehicle(request)
        image = await read_body(request, settings.proof_max_bytes)
        if not image:
            raise BadRequest("the body must be the image (JPEG, PNG or WebP)")
        media = check_image(request.headers.get("content-type", ""), image)
        return await proofs.add(
            order_id, kind=kind, content_type=media, image=image, vehicle_id=vehicle_id
        )

    @get("/", summary="An order's proofs of delivery, oldest first", guards=[staff_only])
    async def list_proofs(
        self, order_id: FromPath[str], proofs: NamedDependency[ProofStore]
    ) -> list[Proof]:
        return await proofs.list(order_id)

    @get(
        "/{proof_id:str}",
        summary="A proof's image",
        guards=[staff_only],
        media_type="image/*",
    )
    async def image(
        self, order_id: FromPath[str], proof_id: FromPath[str], proofs: NamedDependency[ProofStore]
    ) -> Response[bytes]:
        return image_response(*await proofs.image(order_id, proof_id))


class StopDetailsController(Controller):
    path = "/orders/{order_id:str}/stop-details"
    tags = ["orders"]  # noqa: RUF012 - Litestar reads this class attribute

    @get(
        "/",
        summary="What the order's driver needs at its stops: addresses, customer, notes",
        description="For the driver token of the order's vehicle while the order is open "
        "(403 `not_your_order` otherwise), or a staff token.",
        responses={403: ResponseSpec(None, description="Not this vehicle's order, or ended")},
        bearer=True,
    )
    async def details(
        self,
        order_id: FromPath[str],
        request: Request[Any, Any, Any],
        orders: NamedDependency[OrderStore],
    ) -> StopDetails:
        vehicle_id = await staff_or_vehicle(request)
        order = await orders.get(order_id)
        if vehicle_id is not None and (order.vehicle_id != vehicle_id or order.status in FINAL):
            # (the same answer either way: a driver learns nothing of others' orders)
            raise NotYourOrder(f"{order_id} is not an open order of {vehicle_id}")
        return StopDetails.of(order)


class AlertsController(Controller):
    path = "/alerts"
    tags = ["alerts"]  # noqa: RUF012 - Litestar reads this class attribute
    guards = [staff_only]  # noqa: RUF012

    @get("/", summary="The newest alerts, newest first")
    async def recent(
        self,
        redis: NamedDependency[aioredis.Redis],
        limit: int = Parameter(default=100, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        return await recent_alerts(redis, limit)
