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
>>> orders, errors = parse(text, ORDERS)
>>> [(o.dropoff.lat, o.size, o.skills) for o in orders]
[(60.17, {'parcels': 2.0}, ['cold', 'fragile'])]
>>> [(e.row, e.column, e.message) for e in errors]
[(3, 'dropoff_lat', 'Expected `float` <= 90.0')]
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from server.errors import BadRequest
from server.orders import csvexport
from server.orders.model import OrderIn

T = TypeVar("T")

MAX_ROWS = 5000


@dataclass(frozen=True, slots=True, kw_only=True)
class Spec(Generic[T]):
    """How a CSV file maps onto a request body: its top-level columns, the column prefixes
    of its nested objects (the longest prefix first), the columns every file needs, the
    nested objects of ISO 8601 times and of amounts (numbers, 0 or more), the list fields
    (separated by ``;``), the columns read and skipped, and what a row becomes."""

    target: type[T]
    noun: str
    top: tuple[str, ...]
    nested: tuple[tuple[str, str], ...]
    required: tuple[str, ...] = ()
    times: tuple[str, ...] = ()
    amounts: tuple[str, ...] = ()
    lists: tuple[str, ...] = ("skills",)
    skipped: tuple[str, ...] = ()

    def place(self, column: str) -> tuple[str, str | None] | None:
        """Where a column goes in the body: (top-level field, nested field or None)."""
        if column in self.top:
            return column, None
        for prefix, field in self.nested:
            if column.startswith(prefix) and len(column) > len(prefix):
                return field, column[len(prefix) :]
        return None


ORDERS = Spec(
    target=OrderIn,
    noun="order",
    top=("notes", "reference", "priority", "service_s", "pickup_service_s", "skills"),
    nested=(
        ("pickup_window_", "pickup_window"),
        ("dropoff_", "dropoff"),
        ("pickup_", "pickup"),
        ("window_", "window"),
        ("customer_", "customer"),
        ("size_", "size"),
    ),
    required=("dropoff_lat", "dropoff_lon", "window_start", "window_end"),
    times=("window", "pickup_window"),
    amounts=("size",),
    skipped=csvexport.EVENTS,  # (what happened to an exported order: not the new order's)
)


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # as a spreadsheet numbers it: the header is row 1
    column: str
    message: str


def _column_of(path: str) -> str:
    """The column behind a validation error's path: ``$.dropoff.lat`` → ``dropoff_lat``."""
    return re.sub(r"\[\d+\]", "", path.removeprefix("$.")).replace(".", "_")


def rejected(errors: list[RowError], nothing_done: str) -> BadRequest:
    """The 400 for a file with ``errors``: at most 100 listed, and how many in all."""
    return BadRequest(
        f"{len(errors)} error(s) in the file: {nothing_done}",
        details={"errors": [dataclasses.asdict(e) for e in errors[:100]], "count": len(errors)},
    )


def parse(text: str, spec: Spec[T]) -> tuple[list[T], list[RowError]]:
    """The rows of a CSV text as ``spec`` reads them (orders: :data:`ORDERS`), and every error
    found (with any, use none of the rows)."""
    reader = csv.DictReader(io.StringIO(text), skipinitialspace=True)
    header = [(name or "").strip() for name in reader.fieldnames or []]
    errors = [
        RowError(1, c, "unknown column")
        for c in header
        if spec.place(c) is None and c not in spec.skipped
    ]
    errors += [RowError(1, c, "missing column") for c in spec.required if c not in header]
    if len(set(header)) < len(header):
        errors.append(RowError(1, "", "a column is named twice"))
    if errors:
        return [], errors
    reader.fieldnames = header
    orders: list[T] = []
    for row, cells in enumerate(reader, start=2):
        if row - 1 > MAX_ROWS:
            errors.append(RowError(row, "", f"at most {MAX_ROWS} {spec.noun}s a file"))
            break
        if None in cells:  # more cells than columns
            errors.append(RowError(row, "", "more cells than the header has columns"))
            continue
        doc: dict[str, Any] = {}
        for column, raw in cells.items():
            value = (raw or "").strip()
            if column in spec.skipped or not value:
                continue
            if value[0] == "'" and value[1:2] in ("=", "+", "-", "@"):
                value = value[1:]  # a formula's guard, from an export
            field, inner = spec.place(column) or (column, None)
            if field in spec.times:
                try:
                    when = dt.datetime.fromisoformat(value.replace("z", "Z"))
                except ValueError:
                    errors.append(RowError(row, column, "not an ISO 8601 time"))
                    break
                if when.tzinfo is None:
                    errors.append(RowError(row, column, "needs a time zone (Z, +02:00)"))
                    break
                doc.setdefault(field, {})[inner] = when
            elif field in spec.amounts:  # (a dict's errors do not name the key: checked here)
                try:
                    amount = float(value)
                except ValueError:
                    amount = -1.0
                if not amount >= 0:
                    errors.append(RowError(row, column, "must be a number, 0 or more"))
                    break
                doc.setdefault(field, {})[inner] = amount
            elif field in spec.lists:
                doc[field] = [s.strip() for s in value.split(";") if s.strip()]
            elif inner is None:
                doc[field] = value
            else:
                doc.setdefault(field, {})[inner] = value
        else:
            _convert(doc, row, orders, errors, spec.target)
    return orders, errors


def _convert(
    doc: dict[str, Any], row: int, out: list[T], errors: list[RowError], target: type[T]
) -> None:
    """``doc`` as a ``target``, or the (first) error in it."""
    try:
        out.append(msgspec.convert(doc, target, strict=False))
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = message.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in message else ""
        errors.append(RowError(row, _column_of(path), message.split(" - at `")[0]))
