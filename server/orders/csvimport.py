"""Orders from a CSV file (a spreadsheet's export): one order a row, every row checked first.

A column is a field of ``POST /orders``'s body, its path joined with ``_``: ``dropoff_lat``,
``dropoff_lon``, ``dropoff_address``, ``window_start``, ``window_end`` (ISO 8601 with a time
zone), ``pickup_lat``, ``pickup_lon``, ``pickup_address``, ``pickup_window_start``,
``pickup_window_end``, ``customer_name``, ``customer_phone``, ``size_<dimension>``
(``size_parcels``, ``size_kg``), ``skills`` (separated by ``;``), ``priority``, ``service_s``,
``pickup_service_s``, ``reference``, ``notes``. An empty cell is a field not given. Errors name
the row (the header is row 1) and the column: the first error of each row. The columns of an
export (:mod:`server.orders.csvexport`) that are not the order's (``id``, ``status``, the
times…) are skipped, and a ``'`` guarding a formula-like cell is taken off.

>>> text = "dropoff_lat,dropoff_lon,window_start,window_end,size_parcels,skills\\n"
>>> text += "60.17,24.94,2026-11-30T09:00Z,2026-11-30T11:00Z,2,cold;fragile\\n"
>>> text += "95,24.94,2026-11-30T09:00Z,,,\\n"
>>> orders, errors = parse(text)
>>> [(o.dropoff.lat, o.size, o.skills) for o in orders]
[(60.17, {'parcels': 2.0}, ['cold', 'fragile'])]
>>> [(e.row, e.column, e.message) for e in errors]
[(3, 'dropoff_lat', 'Expected `float` <= 90.0')]
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from typing import Any

import msgspec

from server.orders import csvexport
from server.orders.model import OrderIn

MAX_ROWS = 5000
TOP = ("notes", "reference", "priority", "service_s", "pickup_service_s", "skills")
NESTED = (  # column prefix → the object it fills (the longest prefix first)
    ("pickup_window_", "pickup_window"),
    ("dropoff_", "dropoff"),
    ("pickup_", "pickup"),
    ("window_", "window"),
    ("customer_", "customer"),
    ("size_", "size"),
)
REQUIRED = ("dropoff_lat", "dropoff_lon", "window_start", "window_end")


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # as a spreadsheet numbers it: the header is row 1
    column: str
    message: str


def _place(column: str) -> tuple[str, str | None] | None:
    """Where a column goes in the order's body: (top-level field, nested field or None)."""
    if column in TOP:
        return column, None
    for prefix, field in NESTED:
        if column.startswith(prefix) and len(column) > len(prefix):
            return field, column[len(prefix) :]
    return None


def _column_of(path: str) -> str:
    """The column behind a validation error's path: ``$.dropoff.lat`` → ``dropoff_lat``."""
    return re.sub(r"\[\d+\]", "", path.removeprefix("$.")).replace(".", "_")


def parse(text: str) -> tuple[list[OrderIn], list[RowError]]:
    """The orders of a CSV text, and every error found (with any, use none of the orders)."""
    reader = csv.DictReader(io.StringIO(text), skipinitialspace=True)
    header = [(name or "").strip() for name in reader.fieldnames or []]
    errors = [
        RowError(1, c, "unknown column")
        for c in header
        if _place(c) is None and c not in csvexport.EVENTS
    ]
    errors += [RowError(1, c, "missing column") for c in REQUIRED if c not in header]
    if len(set(header)) < len(header):
        errors.append(RowError(1, "", "a column is named twice"))
    if errors:
        return [], errors
    reader.fieldnames = header
    orders: list[OrderIn] = []
    for row, cells in enumerate(reader, start=2):
        if row - 1 > MAX_ROWS:
            errors.append(RowError(row, "", f"at most {MAX_ROWS} orders a file"))
            break
        if None in cells:  # more cells than columns
            errors.append(RowError(row, "", "more cells than the header has columns"))
            continue
        doc: dict[str, Any] = {}
        for column, raw in cells.items():
            value = (raw or "").strip()
            if column in csvexport.EVENTS or not value:
                continue  # (what happened to an exported order: not the new order's)
            if value[0] == "'" and value[1:2] in ("=", "+", "-", "@"):
                value = value[1:]  # a formula's guard, from an export
            field, inner = _place(column) or (column, None)
            if field in ("window", "pickup_window"):
                try:
                    when = dt.datetime.fromisoformat(value.replace("z", "Z"))
                except ValueError:
                    errors.append(RowError(row, column, "not an ISO 8601 time"))
                    break
                if when.tzinfo is None:
                    errors.append(RowError(row, column, "needs a time zone (Z, +02:00)"))
                    break
                doc.setdefault(field, {})[inner] = when
            elif field == "size":  # (a dict's errors do not name the key: checked here)
                try:
                    amount = float(value)
                except ValueError:
                    amount = -1.0
                if not amount >= 0:
                    errors.append(RowError(row, column, "must be a number, 0 or more"))
                    break
                doc.setdefault(field, {})[inner] = amount
            elif field == "skills":
                doc[field] = [s.strip() for s in value.split(";") if s.strip()]
            elif inner is None:
                doc[field] = value
            else:
                doc.setdefault(field, {})[inner] = value
        else:
            _convert(doc, row, orders, errors)
    return orders, errors


def _convert(doc: dict[str, Any], row: int, orders: list[OrderIn], errors: list[RowError]) -> None:
    """``doc`` as an order, or the (first) error in it."""
    try:
        orders.append(msgspec.convert(doc, OrderIn, strict=False))
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = message.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in message else ""
        errors.append(RowError(row, _column_of(path), message.split(" - at `")[0]))
