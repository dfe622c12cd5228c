"""Finding orders as a customer on the phone describes them: name, phone, street, reference."""

from __future__ import annotations

from pathlib import Path

import httpx

from server.orders.search import parse_query
from tests.conftest import AUTH
from tests.dispatch.test_planning_service import order_store
from tests.orders.test_orders_api import create, order_body

SEARCH_CUSTOMERS = [
    ({"name": "Äinö Virtanen", "phone": "+358 40 123 4567"}, "Mannerheimintie 5 B 12", "SHOP-881"),
    ({"name": "Matti Korhonen", "phone": "050-765 4321"}, "Aleksanterinkatu 9", "SHOP-882"),
    ({"name": "Aino Laine", "phone": "+358 40 999 0000"}, "Mannerheimintie 40", ""),
]


def found(base: str, q: str, **params: object) -> list[str]:
    answer = httpx.get(f"{base}/orders/search", headers=AUTH, params={"q": q, **params})
    assert answer.status_code == 200, answer.text
    return [o["id"] for o in answer.json()]


async def test_orders_are_found_by_name_phone_street_reference_and_id(
    live_server: str, redis_url: str, tmp_path: Path
) -> None:
    base = live_server
    ids = []
    for customer, street, reference in SEARCH_CUSTOMERS:
        body = order_body(customer=customer, reference=reference)
        body["dropoff"]["address"] = street
        ids.append(create(base, **{k: v for k, v in body.items() if k != "window"})["order"]["id"])
    aino, matti, laine = ids
    assert found(base, "aino") == [laine, aino], "accent-blind, newest first"
    assert found(base, "AINO virtanen") == [aino], "every word"
    assert found(base, "040 1234567") == [aino], "the phone as the customer says it"
    assert found(base, "+35840 123 45 67") == [aino]
    assert found(base, "0507654321") == [matti]
    assert found(base, "mannerheimintie") == [laine, aino]
    assert found(base, "mannerheimintie 40") == [laine]
    assert found(base, "shop-882") == [matti]
    assert found(base, matti[2:8]) == [matti], "part of the id"
    assert found(base, "korhonen 4321") == [matti], "a name and the phone's end"
    assert found(base, "aino", limit=1) == [laine]
    assert found(base, "nobody here") == []

    # Ended orders are found too: the customer calls about yesterday's parcel.
    client, orders = order_store(redis_url, tmp_path)
    async with client:
        await orders.transition(matti, "cancelled", by="api")
        assert found(base, "korhonen") == [matti]
        # Beyond the newest `scan` orders only the open ones are looked at.
        assert [o.id for o in await orders.search("mannerheimintie", limit=5, scan=1)] == [
            laine,
            aino,
        ]
        assert [o.id for o in await orders.search("korhonen", limit=5, scan=1)] == []

    for bad in ("", " a ", "x" * 201):
        answer = httpx.get(f"{base}/orders/search", headers=AUTH, params={"q": bad})
        assert answer.status_code == 400, (bad, answer.text)
    assert httpx.get(f"{base}/orders/search", params={"q": "aino"}).status_code == 401
    assert parse_query("aino").phone == ""
