"""Orders from a CSV file: all rows or none, every error named by row and column."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from geo.roads import Roads
from tests.conftest import AUTH

CSV = {**AUTH, "Content-Type": "text/csv"}
HEADER = (
    "reference,dropoff_lat,dropoff_lon,dropoff_address,window_start,window_end,pickup_lat,"
    "pickup_lon,customer_name,customer_phone,size_parcels,skills,priority,notes\n"
)
ROWS = (
    'PO-1,60.1699,24.9384,"Mannerheimintie 1, Helsinki",2026-12-01T09:00:00+02:00,'
    "2026-12-01T11:00Z,,,Aino,+358401234567,2,,express,door code 4521\n"
    "PO-2,60.1710,24.9410,Aleksanterinkatu 9,2026-12-01T10:00Z,2026-12-01T12:00Z,60.168,"
    "24.94,,,1,cold;fragile,normal,\n"
    "PO-3,60.1650,24.9300,,2026-12-01 12:00+02:00,2026-12-01 14:00+02:00,,,,,,,,\n"
)


def post(base: str, body: bytes | str, **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/orders/import", content=body, headers={**CSV, **headers})


def count(base: str) -> int:
    return len(httpx.get(f"{base}/orders", headers=AUTH, params={"limit": 5000}).json())


def test_a_file_becomes_orders_once(live_server: str) -> None:
    base = live_server
    first = post(base, HEADER + ROWS, **{"Idempotency-Key": "upload-1"})
    assert first.status_code == 201, first.text
    answer = first.json()
    assert answer["created"] == 3
    assert [(o["row"], o["new"]) for o in answer["orders"]] == [(2, True), (3, True), (4, True)]
    one, two, three = (
        httpx.get(f"{base}/orders/{o['id']}", headers=AUTH).json() for o in answer["orders"]
    )
    assert one["reference"] == "PO-1"
    assert one["dropoff"] == {"lat": 60.1699, "lon": 24.9384,
                              "address": "Mannerheimintie 1, Helsinki"}  # fmt: skip
    assert one["customer"] == {"name": "Aino", "phone": "+358401234567"}
    assert (one["priority"], one["size"], one["notes"]) == ("express", {"parcels": 2.0},
                                                           "door code 4521")  # fmt: skip
    assert one["window"]["start"] == "2026-12-01T09:00:00+02:00"
    assert (two["pickup"]["lat"], two["skills"]) == (60.168, ["cold", "fragile"])
    assert three["window"]["end"] == "2026-12-01T14:00:00+02:00"
    assert answer["orders"][0]["tracking_token"]

    again = post(base, HEADER + ROWS, **{"Idempotency-Key": "upload-1"})
    assert again.status_code == 201
    assert again.json()["created"] == 0, "the same upload twice creates nothing new"
    assert [o["id"] for o in again.json()["orders"]] == [o["id"] for o in answer["orders"]]
    assert count(base) == 3


def test_a_file_with_errors_creates_nothing_and_names_each(live_server: str) -> None:
    base = live_server
    bad = (
        HEADER + ROWS
        + "PO-4,95,24.9,,2026-12-01T09:00Z,2026-12-01T11:00Z,,,,,,,,\n"
        + "PO-5,60.17,24.9,,2026-12-01T11:00Z,2026-12-01T09:00Z,,,,,,,,\n"
        + "PO-6,60.17,24.9,,tomorrow,2026-12-01T09:00Z,,,,,,,,\n"
        + "PO-7,60.17,24.9,,2026-12-01T09:00,2026-12-01T11:00Z,,,,,,,,\n"
        + "PO-8,60.17,24.9,,2026-12-01T09:00Z,2026-12-01T11:00Z,,,,,many,,,\n"
    )  # fmt: skip
    answer = post(base, bad)
    assert answer.status_code == 400, answer.text
    errors = [(e["row"], e["column"]) for e in answer.json()["error"]["details"]["errors"]]
    assert errors == [(5, "dropoff_lat"), (7, "window_start"), (8, "window_start"),
                      (9, "size_parcels")], answer.json()  # fmt: skip
    # (row 6's window, ending before it starts, is found once the types are right)
    assert count(base) == 0, "nothing was created"
    only_order = post(
        base, HEADER + ROWS + "PO-5,60.17,24.9,,2026-12-01T11:00Z,2026-12-01T09:00Z,,,,,,,,\n"
    )
    assert only_order.status_code == 400
    assert only_order.json()["error"]["details"]["errors"] == [
        {"row": 5, "column": "window", "message": "window.end must be after window.start"}
    ]

    columns = post(base, "dropoff_lat,dropoff_lon,window_start,colour\n60.1,24.9,x,red\n")
    assert [(e["row"], e["column"], e["message"]) for e in
            columns.json()["error"]["details"]["errors"]] == [
        (1, "colour", "unknown column"), (1, "window_end", "missing column")
    ]  # fmt: skip
    assert post(base, "").status_code == 400
    assert post(base, HEADER).status_code == 400, "no order in it"
    assert post(base, b"\xff\xfe" + HEADER.encode("utf-16-le")).status_code == 400
    assert post(base, "x" * (4 * 1024 * 1024 + 1)).status_code == 413
    assert httpx.post(f"{base}/orders/import", content=HEADER + ROWS).status_code == 401
    assert count(base) == 0


def test_rows_outside_the_service_area_are_named(
    server_factory: Callable[..., str], andorra: Roads
) -> None:
    base = server_factory(roads=andorra)
    andorra_row = "A-1,42.5078,1.5211,,2026-12-01T09:00Z,2026-12-01T11:00Z,,,,,,,,\n"
    answer = post(base, HEADER + andorra_row + ROWS)  # the ROWS are in Helsinki
    assert answer.status_code == 400
    details = answer.json()["error"]["details"]
    assert details["count"] == 4  # three drop-offs and one pickup
    assert [(e["row"], e["column"]) for e in details["errors"]] == [
        (3, "dropoff"), (4, "dropoff"), (4, "pickup"), (5, "dropoff")
    ]  # fmt: skip
    assert post(base, HEADER + andorra_row).json()["created"] == 1
