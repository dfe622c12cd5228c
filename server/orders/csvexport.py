"""Orders out to a CSV file (``GET /orders/export``): one order a row, for a spreadsheet.

The order's own fields are the columns ``POST /orders/import`` reads, named the same way
(``dropoff_lat``, ``window_start``, ``customer_phone``, ``size_parcels``, ``skills`` with ``;``,
…); before them, what happened to it: ``id``, ``status``, ``vehicle_id``, ``created``, the time
each status was first reached (``received_at`` … ``cancelled_at``), ``failures`` (failed
drop-off attempts), ``on_time`` (delivered by the window's end: ``yes``/``no``; empty while not
delivered), and the customer's ``rating`` and ``feedback``. Times are ISO 8601 in the fleet's
time zone. Free text that a spreadsheet would run as a formula (``=…``, ``@…``, ``-…`` but not
a phone number) gets a ``'`` before it. The import skips the first columns and takes such a
``'`` off again, so an export edited (tomorrow's windows, say) imports as new orders.

>>> import datetime as dt, zoneinfo
>>> from server.orders.model import Customer, Order, Place, Window
>>> at = dt.datetime(2026, 11, 29, 9, tzinfo=dt.UTC)
>>> order = Order(id="o-1", status="delivered", dropoff=Place(60.17, 24.94, "Katu 1"),
...               window=Window(at, at + dt.timedelta(hours=2)), pickup=None,
...               pickup_window=None, service_s=120.0, pickup_service_s=60.0,
...               size={"parcels": 2.0}, skills=["cold"], priority="normal",
...               customer=Customer("Aino", "+358 40 1"), reference="R-1", vehicle_id="van-1",
...               nodes={"received": at, "delivered": at + dt.timedelta(hours=1)}, created=at)
>>> header, rows = table([order], zoneinfo.ZoneInfo("Europe/Helsinki"))
>>> row = dict(zip(header, next(rows)))
>>> row["status"], row["delivered_at"], row["on_time"], row["size_parcels"], row["skills"]
('delivered', '2026-11-29T12:00:00+02:00', 'yes', '2', 'cold')
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator, Sequence
from zoneinfo import ZoneInfo

from server.orders.lifecycle import STATUSES
from server.orders.model import Order

EVENTS = (
    "id", "status", "vehicle_id", "created", *(f"{s}_at" for s in STATUSES), "failures",
    "on_time", "rating", "feedback",
)  # fmt: skip
#: The order's own fields, as the import names them (the sizes, ``size_<dimension>``, last).
FIELDS = (
    "reference", "priority", "customer_name", "customer_phone", "dropoff_lat", "dropoff_lon",
    "dropoff_address", "window_start", "window_end", "pickup_lat", "pickup_lon",
    "pickup_address", "pickup_window_start", "pickup_window_end", "service_s",
    "pickup_service_s", "skills", "notes",
)  # fmt: skip


# A cell a spreadsheet would run as a formula ("=HYPERLINK(…)", "@SUM(…)", "-2+3"): free text
# typed by customers and shops goes out with a "'" before it, which spreadsheets show as text
# and the import takes off again. A phone number ("+358 40 …") is not one.
_FORMULA = re.compile(r"^[=@\t\r]|^[+-](?![\d\s().]*$)")


def _text(value: str) -> str:
    """``value`` safe to open in a spreadsheet.

    >>> [_text(v) for v in ["Aino", "+358 40 123", "=HYPERLINK(0)", "-2+3", "@SUM(A1)"]]
    ['Aino', '+358 40 123', "'=HYPERLINK(0)", "'-2+3", "'@SUM(A1)"]
    """
    return "'" + value if _FORMULA.match(value) else value


def _number(value: float) -> str:
    return f"{value:g}" if value == int(value) else repr(value)


def table(orders: Sequence[Order], zone: ZoneInfo) -> tuple[list[str], Iterator[list[str]]]:
    """The header and the rows of ``orders``."""
    sizes = sorted({d for o in orders for d in o.size})
    header = [*EVENTS, *FIELDS, *(f"size_{d}" for d in sizes)]

    def when(moment: dt.datetime | None) -> str:
        return "" if moment is None else moment.astimezone(zone).isoformat()

    def row(o: Order) -> list[str]:
        delivered = o.nodes.get("delivered")
        on_time = "" if delivered is None else ("yes" if delivered <= o.window.end else "no")
        feedback = o.feedback
        pickup, pickup_window = o.pickup, o.pickup_window
        return [
            o.id, o.status, o.vehicle_id or "", when(o.created),
            *(when(o.nodes.get(s)) for s in STATUSES),
            str(o.failures), on_time,
            "" if feedback is None else str(feedback.rating),
            "" if feedback is None else _text(feedback.comment),
            _text(o.reference), o.priority, _text(o.customer.name), _text(o.customer.phone),
            _number(o.dropoff.lat), _number(o.dropoff.lon), _text(o.dropoff.address),
            when(o.window.start), when(o.window.end),
            "" if pickup is None else _number(pickup.lat),
            "" if pickup is None else _number(pickup.lon),
            "" if pickup is None else _text(pickup.address),
            when(pickup_window.start if pickup_window else None),
            when(pickup_window.end if pickup_window else None),
            _number(o.service_s), _number(o.pickup_service_s), _text(";".join(o.skills)),
            _text(o.notes),
            *("" if d not in o.size else _number(o.size[d]) for d in sizes),
        ]  # fmt: skip

    return header, (row(o) for o in orders)


def to_csv(orders: Sequence[Order], zone: ZoneInfo) -> str:
    """``orders`` as a CSV text (UTF-8 when encoded; a header row first)."""
    header, rows = table(orders, zone)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()
