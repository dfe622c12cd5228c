"""Orders out to a spreadsheet: what happened to each, its fields as the import names them,
formula-like text guarded, and an edited export imports as new orders."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import httpx

from tests.conftest import AUTH
from tests.dispatch.test_planning_service import order_store
from tests.orders.test_orders_api import create, order_body


def export(base: str, **params: str) -> httpx.Response:
    return httpx.get(f"{base}/orders/export", headers=AUTH, params=params)


def rows_of(answer: httpx.Response) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(answer.text)))


async def test_an_export_says_what_happened_and_imports_again(
    live_server: str, redis_url: str, tmp_path: Path
) -> None:
    base = live_server
    first = create(base, reference="R-1")["order"]
    mean = {"name": '=HYPERLINK("http://x")', "phone": "+358 40 1234567"}
    second = create(base, customer=mean, notes="-2+3", size={"parcels": 2, "kg": 1.5})["order"]
    client, orders = order_store(redis_url, tmp_path)
    async with client:
        await orders.transition(first["id"], "processed", by="planner", vehicle_id="van-1")
        await orders.advance(first["id"], "delivered", by="van-1")
        await orders.transition(second["id"], "cancelled", by="api", reason="customer asked")

    rows = rows_of(export(base))
    assert [r["id"] for r in rows] == [first["id"], second["id"]], "oldest first"
    done, gone = rows
    assert (done["status"], done["vehicle_id"], done["on_time"]) == ("delivered", "van-1", "yes")
    assert done["delivered_at"]
    assert not done["cancelled_at"]
    assert dt.datetime.fromisoformat(done["delivered_at"]).utcoffset() is not None, "zoned"
    assert (done["reference"], done["customer_name"], done["dropoff_address"]) == (
        "R-1", "Aino Virtanen", "Mannerheimintie 1",
    )  # fmt: skip
    assert (gone["status"], gone["on_time"], gone["cancelled_at"] != "") == ("cancelled", "", True)
    assert gone["customer_name"] == '\'=HYPERLINK("http://x")', "a formula goes out as text"
    assert gone["customer_phone"] == "+358 40 1234567", "a phone number is no formula"
    assert gone["notes"] == "'-2+3"
    assert (gone["size_parcels"], gone["size_kg"], done["size_kg"]) == ("2", "1.5", "3.5")

    # Tomorrow's windows in the spreadsheet, and back in as new orders (the guard taken off).
    text = export(base).text
    reader = csv.DictReader(io.StringIO(text))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [])
    writer.writeheader()
    for row in reader:
        for column in ("window_start", "window_end"):
            row[column] = (
                dt.datetime.fromisoformat(row[column]) + dt.timedelta(days=1)
            ).isoformat()
        writer.writerow(row)
    imported = httpx.post(f"{base}/orders/import", headers={**AUTH, "Content-Type": "text/csv"},
                          content=out.getvalue().encode())  # fmt: skip
    assert imported.status_code == 201, imported.text
    new_ids = [o["id"] for o in imported.json()["orders"]]
    assert len(new_ids) == 2
    assert not {first["id"], second["id"]} & set(new_ids), "new orders, not the old ones"
    again = httpx.get(f"{base}/orders/{new_ids[1]}", headers=AUTH).json()
    assert (again["status"], again["customer"]["name"], again["notes"]) == (
        "received", mean["name"], "-2+3",
    )  # fmt: skip
    assert again["size"] == {"parcels": 2.0, "kg": 1.5}


def test_export_ranges(live_server: str) -> None:
    base = live_server
    made = create(base)["order"]
    created = dt.datetime.fromisoformat(made["created"])
    before = (created - dt.timedelta(minutes=1)).isoformat()
    after = (created + dt.timedelta(minutes=1)).isoformat()
    assert [r["id"] for r in rows_of(export(base, **{"from": before, "to": after}))] == [made["id"]]
    later = (created + dt.timedelta(hours=1)).isoformat()
    assert rows_of(export(base, **{"from": after, "to": later})) == []
    assert rows_of(export(base, to=before)) == [], "the 24 hours before `to`"
    header = export(base, to=before).text.splitlines()[0]
    assert header.startswith("id,status,vehicle_id,created,received_at,")
    for bad in ({"from": after, "to": before}, {"from": "2026-11-29T10:00:00"}, {"to": "soon"}):
        assert export(base, **bad).status_code == 400, bad
    assert httpx.get(f"{base}/orders/export").status_code == 401
    assert order_body()["window"]  # (the shared order's fields are what the export carries)
