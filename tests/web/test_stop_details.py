"""What the driver needs at a stop, and what the dispatcher does with it: the phone reads the
next stop's address, customer and notes (``GET /orders/{id}/stop-details``, its own open orders
only) and reads them again when its route changes or they are a minute old; the console edits
the notes and the customer's phone in place, closes or re-sends a parcel going back to its
sender, takes notes in the new-order form, and offers Cancel only where the server allows it."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from tests.conftest import AUTH, scaled
from tests.web.conftest import Driver, click_map, open_console, open_phone, order_body, wait_for

START = (42.5078, 1.5211)  # Andorra la Vella
SHOP = (42.5063, 1.5300)  # where parcels are picked up, and go back to
DROP = (42.5105, 1.5350)
ELSEWHERE = (42.4990, 1.5080)
DEPOT = (42.5110, 1.5290)

SHOP_ADDRESS = "Avinguda Meritxell 10"
DROP_ADDRESS = "Carrer Major 5, 2n"
CUSTOMER = {"name": "Aina Puig", "phone": "+376 612 345"}
NOTES = "door code 4521, third floor"


NOTHING = {"address": None, "customer": None, "notes": None, "instructions": None, "tel": None}


# ---------- helpers ----------
def order(base: str, order_id: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()
    return found


def create(base: str, body: dict[str, Any], *, replan: bool = True) -> str:
    order_id: str = created(base, body, replan=replan)["order"]["id"]
    return order_id


def created(base: str, body: dict[str, Any], *, replan: bool = True) -> dict[str, Any]:
    """The ``POST /orders`` answer (the order and its tracking token), planned unless told."""
    answer = httpx.post(f"{base}/orders", headers=AUTH, json=body)
    assert answer.status_code == 201, answer.text
    if replan:
        httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    made: dict[str, Any] = answer.json()
    return made


def parcel(
    drop: tuple[float, float] = DROP,
    *,
    shop: bool = True,
    customer: dict[str, str] = CUSTOMER,
    notes: str = NOTES,
    address: str = DROP_ADDRESS,
    **extra: Any,
) -> dict[str, Any]:
    """An order with an address, a customer and notes (picked up at SHOP unless told)."""
    body = order_body(*drop, customer=customer, notes=notes, **extra)
    body["dropoff"]["address"] = address
    if shop:
        body["pickup"] = {"lat": SHOP[0], "lon": SHOP[1], "address": SHOP_ADDRESS}
    return body


def details_as(base: str, token: str, order_id: str) -> httpx.Response:
    return httpx.get(
        f"{base}/orders/{order_id}/stop-details", headers={"Authorization": f"Bearer {token}"}
    )


def located(base: str, vehicle_id: str) -> bool:
    fleet = httpx.get(f"{base}/web/fleet", headers=AUTH).json()["vehicles"]
    return any(v["id"] == vehicle_id and v.get("position") for v in fleet)


def van_with_phone(
    base: str, new_page: Callable[..., Any], vehicle_id: str, at: tuple[float, float], **extra: Any
) -> tuple[str, Any]:
    """A registered van (its driver token) and its driver's page, located on the server."""
    answer = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": vehicle_id, **extra})
    answer.raise_for_status()
    token: str = answer.json()["token"]
    phone = open_phone(new_page, base, token, at)
    wait_for(lambda: located(base, vehicle_id), f"{vehicle_id}'s position on the server")
    return token, phone


def shown(phone: Any) -> dict[str, str | None]:
    """What the next stop's card shows beyond its title: the visible address, customer line,
    notes, the customer's own instructions and phone link (``None`` for what is not shown)."""
    found: dict[str, str | None] = phone.evaluate(
        """() => {
          const text = (sel) => {
            const n = document.querySelector(sel);
            return n && n.offsetParent !== null && n.innerText.trim() ? n.innerText.trim() : null;
          };
          const tel = [...document.querySelectorAll('#next a[href^="tel:"]')]
            .find((a) => a.offsetParent !== null);
          return {address: text('#next-address'), customer: text('#next-customer'),
                  notes: text('#next-notes'), instructions: text('#next-instructions'),
                  tel: tel ? tel.getAttribute('href') : null};
        }"""
    )
    return found


def title(phone: Any) -> str:
    text: str = phone.inner_text("#next-title")
    return text


def everything_on(phone: Any) -> str:
    """The page's text, its markup (links included) and what it keeps in the browser's storage."""
    stored: str = phone.evaluate(
        "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    return f"{phone.inner_text('body')}\n{phone.content()}\n{stored}"


def report(phone: Any, event: str, reason: str | None = None) -> None:
    """Press the next stop's button for ``event`` on the driver's page."""
    phone.click(f"#actions [data-event={event}]")
    if event == "failed":
        phone.select_option("#fail-form [name=reason]", reason or "other")
        phone.click("#fail-form [type=submit]")
    elif event == "delivered":
        phone.click("#proof-deliver")


def has_status(base: str, order_id: str, status: str) -> Callable[[], bool]:
    return lambda: order(base, order_id)["status"] == status


def shows(locator: Any, text: str) -> Callable[[], bool]:
    return lambda: bool(locator.inner_text() == text)


def row_of(console: Any, order_id: str) -> Any:
    return console.locator(f"#order-list [data-order='{order_id}']")


def row_actions(console: Any, order_id: str) -> list[str]:
    """The visible buttons of an order's row in the console's order list, by their text."""
    row = row_of(console, order_id)
    if row.count() == 0:
        return []
    texts: list[str] = row.locator("button").evaluate_all(
        "(bs) => bs.filter((b) => b.offsetParent !== null).map((b) => b.innerText.trim())"
    )
    return texts


# ---------- the phone ----------
def test_the_phone_shows_the_next_stops_address_customer_and_notes_and_their_changes(
    fleet_server: Callable[..., str], new_page: Callable[..., Any], artifacts: Path
) -> None:
    base = fleet_server()
    _, phone = van_with_phone(base, new_page, "van-1", START)
    made = created(base, parcel(reference="PO-77"))
    order_id = made["order"]["id"]
    words = "leave it with the neighbour at B 12"  # the customer's, from the tracking page
    left = httpx.put(
        f"{base}/track/{made['tracking_token']}/instructions", json={"instructions": words}
    )
    assert left.status_code == 200, left.text

    # At the shop: its address and the notes; the customer is for the door.
    phone.wait_for_selector(f"#next-title:text-is('Pick up {order_id}')")
    wait_for(lambda: shown(phone)["address"] == SHOP_ADDRESS, "the shop's address on the phone")
    assert shown(phone) == {
        "address": SHOP_ADDRESS, "customer": None, "notes": NOTES, "instructions": None, "tel": None
    }  # fmt: skip

    # At the door: the drop-off's address, whom to ask for with a phone link, the notes.
    report(phone, "picked_up")
    phone.wait_for_selector(f"#next-title:text-is('Deliver {order_id}')")
    wait_for(lambda: shown(phone)["address"] == DROP_ADDRESS, "the drop-off's address")
    at_door = shown(phone)
    assert at_door["notes"] == NOTES
    assert at_door["tel"] == "tel:+376612345"
    assert CUSTOMER["name"] in (at_door["customer"] or "")
    assert CUSTOMER["phone"] in (at_door["customer"] or "")
    phone.screenshot(path=artifacts / "driver-stop-details.png")
    stored = phone.evaluate(
        "() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    )
    for secret in (DROP_ADDRESS, SHOP_ADDRESS, NOTES, CUSTOMER["name"], "612 345", words):
        assert secret not in stored, f"{secret!r} kept in the phone's storage"

    # The dispatcher changes the notes and the customer's phone in the order's detail.
    console = open_console(new_page, base)
    console.click(".tab[data-tab=orders]")
    row_of(console, order_id).locator("button.details").click()
    console.wait_for_selector(f"#order-notes:text-is('{NOTES}')")
    console.click("#order-edit")
    new_notes, new_phone = "ring twice; the dog is friendly", "+376 699 000"
    console.fill("#order-edit-form [name=notes]", new_notes)
    console.fill("#order-edit-form [name=phone]", new_phone)
    console.click("#order-edit-form [type=submit]")
    console.wait_for_selector(f"#order-notes:text-is('{new_notes}')")  # the detail, refreshed
    assert new_phone in console.inner_text("#order-detail")
    saved = order(base, order_id)
    assert saved["notes"] == new_notes
    assert saved["customer"] == {"name": CUSTOMER["name"], "phone": new_phone}  # name kept
    console.screenshot(path=artifacts / "console-order-notes.png")
    assert shown(phone)["notes"] == NOTES  # read a moment ago, and the route has not changed

    # The next route push (another order for the van, later in the day) brings them.
    version = phone.evaluate("() => fleetDriver.route.version")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    window = {"start": later.isoformat(), "end": (later + dt.timedelta(hours=2)).isoformat()}
    create(base, order_body(*ELSEWHERE, window=window))
    wait_for(
        lambda: phone.evaluate("() => fleetDriver.route.version") > version, "a new route version"
    )
    assert title(phone) == f"Deliver {order_id}"
    wait_for(lambda: shown(phone)["notes"] == new_notes, "the new notes on the phone", 10)
    assert shown(phone)["tel"] == "tel:+376699000"
    assert shown(phone)["instructions"] == words  # left by the customer, for the door

    # With no route change, they are read again once they are old (a minute; here a second).
    phone.evaluate("() => { fleetDriver.detailsMaxAgeMs = 1000; }")
    third = "parcel fits through the letterbox"
    patched = httpx.patch(f"{base}/orders/{order_id}", headers=AUTH, json={"notes": third})
    assert patched.status_code == 200, patched.text
    wait_for(lambda: shown(phone)["notes"] == third, "the notes read again", 10)

    # Delivered from elsewhere (another socket of the van): the phone's route still lists the
    # stop, the server now refuses its details (403), and the page shows none of them.
    refused: list[int] = []
    phone.on(
        "response",
        lambda r: refused.append(r.status) if r.url.endswith(f"/{order_id}/stop-details") else None,
    )
    token = phone.evaluate("() => fleetDriver.token")
    with connect(base.replace("http", "ws", 1) + f"/ws/driver?token={token}") as other:
        other.send(json.dumps({"type": "stop", "seq": 1, "order_id": order_id,
                               "event": "delivered"}))  # fmt: skip
        deadline = time.monotonic() + scaled(10)
        while time.monotonic() < deadline:
            reply = json.loads(other.recv(timeout=scaled(10)))
            if reply.get("seq") == 1:
                assert reply == {"type": "stop_ack", "seq": 1, "order_id": order_id,
                                 "status": "delivered"}  # fmt: skip
                break
    wait_for(lambda: shown(phone)["address"] is None, "the delivered order's details to go")
    assert shown(phone) == NOTHING
    if title(phone) == f"Deliver {order_id}":  # the stop still listed: the details were refused
        assert 403 in refused
    text = everything_on(phone)
    for secret in (DROP_ADDRESS, third, words, CUSTOMER["name"], new_phone, "+376699000"):
        assert secret not in text, f"{secret!r} still on the phone"
    assert phone.locator("#conn.ok").count() == 1  # the page works on


def test_another_vans_phone_never_gets_the_details(
    fleet_server: Callable[..., str], new_page: Callable[..., Any]
) -> None:
    base = fleet_server()
    token_1, phone_1 = van_with_phone(base, new_page, "van-1", START)
    token_2, phone_2 = van_with_phone(base, new_page, "van-2", ELSEWHERE)
    mine = create(base, parcel(shop=False), replan=False)
    theirs = create(
        base,
        parcel(ELSEWHERE, shop=False, customer={"phone": "+376 655 111"},
               notes="leave it at the bakery", address="Carrer de la Unio 3"),
        replan=False,
    )  # fmt: skip
    for order_id, van in ((mine, "van-1"), (theirs, "van-2")):
        pinned = httpx.post(
            f"{base}/orders/{order_id}/assign", headers=AUTH, json={"vehicle_id": van}
        )
        assert pinned.status_code == 200, pinned.text
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()

    phone_1.wait_for_selector(f"#next-title:text-is('Deliver {mine}')")
    phone_2.wait_for_selector(f"#next-title:text-is('Deliver {theirs}')")
    wait_for(lambda: shown(phone_1)["notes"] == NOTES, "van-1's own notes")
    wait_for(lambda: shown(phone_2)["notes"] == "leave it at the bakery", "van-2's own notes")
    assert shown(phone_2)["address"] == "Carrer de la Unio 3"
    assert shown(phone_2)["customer"] == "+376 655 111"  # (no name given)
    assert shown(phone_2)["tel"] == "tel:+376655111"

    # van-2's token is refused van-1's order; its page shows nothing of it.
    refused = details_as(base, token_2, mine)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "not_your_order"
    assert DROP_ADDRESS not in refused.text
    assert details_as(base, token_1, mine).status_code == 200
    assert details_as(base, token_1, theirs).status_code == 403
    secrets = (DROP_ADDRESS, NOTES, CUSTOMER["name"], CUSTOMER["phone"], "+376612345")
    text = everything_on(phone_2)
    for secret in secrets:
        assert secret not in text, f"{secret!r} on the other van's phone"

    # The dispatcher moves the order to van-2: van-1 loses it, details and all.
    moved = httpx.post(f"{base}/orders/{mine}/assign", headers=AUTH, json={"vehicle_id": "van-2"})
    assert moved.status_code == 200, moved.text
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    phone_1.wait_for_selector("#next-title:text-is('No stops left')")
    wait_for(lambda: details_as(base, token_1, mine).status_code == 403, "van-1 refused")
    assert shown(phone_1) == NOTHING
    text = everything_on(phone_1)
    for secret in secrets:
        assert secret not in text, f"{secret!r} left on the phone of the van that lost the order"
    wait_for(lambda: phone_2.locator(f"#stops li:has-text('{mine}')").count() == 1, "on van-2")
    assert details_as(base, token_2, mine).status_code == 200


# ---------- the console ----------
def test_a_parcel_going_back_is_closed_or_sent_out_again_from_the_console(
    fleet_server: Callable[..., str], new_page: Callable[..., Any], artifacts: Path
) -> None:
    base = fleet_server()
    depot = {"lat": DEPOT[0], "lon": DEPOT[1]}
    _, phone = van_with_phone(base, new_page, "van-1", START, depot=depot)
    console = open_console(new_page, base)
    console.click(".tab[data-tab=orders]")

    # Picked up at the shop and refused at the door: back to the shop, whose address the
    # phone shows; the dispatcher closes it with "Returned".
    first = create(base, parcel())
    phone.wait_for_selector(f"#next-title:text-is('Pick up {first}')")
    report(phone, "picked_up")
    phone.wait_for_selector(f"#next-title:text-is('Deliver {first}')")
    report(phone, "arrived")
    wait_for(lambda: order(base, first)["status"] == "arrived", "the arrival")
    report(phone, "failed", "refused")
    phone.wait_for_selector(f"#next-title:text-is('Return {first}')")
    wait_for(lambda: shown(phone)["address"] == SHOP_ADDRESS, "the shop's address for the return")
    assert shown(phone)["customer"] is None
    wait_for(lambda: "Returned" in row_actions(console, first), "the row's Returned button")
    assert "Deliver again" in row_actions(console, first)
    assert "Cancel" not in row_actions(console, first)  # refused by the server for a return
    row_of(console, first).locator("button:text-is('Returned')").click()
    console.wait_for_selector(f".toast:has-text('{first}'):has-text('returned')")
    wait_for(lambda: order(base, first)["status"] == "returned", "the order to be returned")
    wait_for(lambda: row_of(console, first).count() == 0, "the order to leave the open list")

    # Loaded at the depot and refused: back to "your depot"; sent out again from its detail.
    second = create(base, parcel(shop=False))
    phone.wait_for_selector(f"#next-title:text-is('Pick up {second}')")
    wait_for(lambda: shown(phone)["address"] == "the depot", "the depot to load it at")
    report(phone, "picked_up")
    phone.wait_for_selector(f"#next-title:text-is('Deliver {second}')")
    report(phone, "arrived")
    wait_for(lambda: order(base, second)["status"] == "arrived", "the arrival")
    report(phone, "failed", "refused")
    phone.wait_for_selector(f"#next-title:text-is('Return {second}')")
    wait_for(lambda: shown(phone)["address"] == "your depot", "the depot for the return")
    wait_for(lambda: row_of(console, second).count() == 1, "the returning order's row")
    row_of(console, second).locator("button.details").click()
    console.wait_for_selector("#order-detail button:text-is('Deliver again')")
    console.screenshot(path=artifacts / "console-return-actions.png")
    console.click("#order-detail button:text-is('Deliver again')")
    console.wait_for_selector(f".toast:has-text('{second}'):has-text('goes out again')")
    assert order(base, second)["status"] in ("received", "processed")  # (planned at once)
    audit = httpx.get(f"{base}/orders/{second}/audit", headers=AUTH).json()
    assert [a["status"] for a in audit if a["previous"] == "returning"] == ["received"]
    wait_for(
        lambda: console.locator("#order-detail button:text-is('Deliver again')").count() == 0,
        "the detail refreshed",
    )
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    phone.wait_for_selector(f"#next-title:text-is('Deliver {second}')")
    wait_for(lambda: shown(phone)["address"] == DROP_ADDRESS, "the drop-off's address again")
    assert shown(phone)["tel"] == "tel:+376612345"

    # Neither action is offered, or taken, for an order that is not going back.
    again = httpx.post(f"{base}/orders/{second}/returned", headers=AUTH)
    assert again.status_code == 409
    console.click("#order-detail button:has-text('Close')")
    wait_for(lambda: "Details" in row_actions(console, second), "the order's row")
    assert "Returned" not in row_actions(console, second)
    assert "Deliver again" not in row_actions(console, second)


def test_the_new_order_forms_notes_and_cancel_only_where_the_server_allows_it(
    fleet_server: Callable[..., str], drivers: Callable[..., Driver], new_page: Callable[..., Any]
) -> None:
    base = fleet_server()
    van = drivers(base, "van-1")
    van.ping(*START)
    console = open_console(new_page, base)
    console.evaluate("() => fleetConsole.map.setView([42.508, 1.528], 15, {animate: false})")
    console.wait_for_timeout(300)
    console.click("#tool-order")
    click_map(console, *DROP)
    notes = "leave it with the neighbour at number 7"
    console.fill("#order-form [name=notes]", notes)
    console.fill("#order-form [name=name]", "Marta Soler")
    console.click("#order-form button[type=submit]")
    console.wait_for_selector("#tracking-link")
    order_id = console.evaluate("() => fleetConsole.lastCreated.id")
    made = order(base, order_id)
    assert made["notes"] == notes
    assert made["customer"]["name"] == "Marta Soler"

    # Open and not yet in the van: it may be cancelled.
    wait_for(lambda: "Cancel" in row_actions(console, order_id), "Cancel on the new order")
    row_of(console, order_id).locator("button.details").click()
    console.wait_for_selector(f"#order-notes:text-is('{notes}')")
    console.click("#order-detail button:has-text('Close')")

    # In the van (picked up, then at the door): the server refuses to cancel, so no Cancel.
    # (On the van's route: a route of the van's may have been stored before the order came.)
    wait_for(lambda: order(base, order_id)["vehicle_id"] == "van-1", "the order on the van")
    badge = row_of(console, order_id).locator(".badge").last  # the order's status
    for event in ("picked_up", "arrived"):
        van.report(order_id, event)
        wait_for(has_status(base, order_id, event), f"the order {event}")
        wait_for(shows(badge, event.replace("_", " ")), f"the row {event}")
        assert "Details" in row_actions(console, order_id)
        assert "Cancel" not in row_actions(console, order_id)
        refused = httpx.post(f"{base}/orders/{order_id}/cancel", headers=AUTH)
        assert refused.status_code == 409, refused.text
