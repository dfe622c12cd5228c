"""Held orders in the console: a delivery failed on a wrong address shows held (in the order
list, as an alert that opens the order, in its detail) until the dispatcher corrects the
address (a place clicked on the map and the address text), sends it out again as it is, or
sends the parcel back to its sender (never cancelled: the parcel is on the van); and the orders
of a day downloaded as a CSV file."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

import httpx

from tests.conftest import AUTH
from tests.web.conftest import (
    PHONE,
    Driver,
    click_map,
    open_console,
    open_phone,
    order_body,
    wait_for,
)
from tests.web.test_returns import create, located, order, stops_of
from tests.web.test_vehicle_depot import metres

VAN = (42.5078, 1.5211)  # Andorra la Vella
DROP = (42.5105, 1.5350)  # the address the order gave: a street 1.2 km east of the van
RIGHT = (42.5110, 1.5290)  # the right place, on a street 700 m north-east of the van
SHOP = (42.5063, 1.5300)  # where the second order's parcel is picked up
OFF_ROAD = (42.5128, 1.5151)  # a hillside 680 m from the nearest road (the limit: 500 m)
# Markup in an address stays text.
ADDRESS = "Carrer <b>Major</b> 7 & co"
CORRECTED = "Avinguda Meritxell 12, 2n"
HELD_ALERT = "held: wrong address \N{EM DASH} correct it or send it out again"


def held_order(base: str, van: Driver, **extra: Any) -> str:
    """An order to DROP (at ADDRESS) planned on ``van``, then failed there on a wrong address
    (picked up first when it has a pickup): held. Its id."""
    body = order_body(*DROP, **extra)
    body["dropoff"]["address"] = ADDRESS
    answer = httpx.post(f"{base}/orders", headers=AUTH, json=body)
    assert answer.status_code == 201, answer.text
    order_id: str = answer.json()["order"]["id"]
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    on_route = lambda: order_id in [s["order_id"] for s in stops_of(base, van.id)]  # noqa: E731
    wait_for(on_route, "the order on the van's route")
    if "pickup" in extra:
        assert van.report(order_id, "picked_up") == "picked_up"
    assert van.report(order_id, "arrived") == "arrived"
    assert van.report(order_id, "failed", reason="address_wrong") == "received"
    assert order(base, order_id)["held"] == "address_wrong"
    return order_id


def click_place(page: Any, lat: float, lon: float) -> None:
    """Click the console's map at a place, panned into view first."""
    page.evaluate("(at) => fleetConsole.map.panTo(at, {animate: false})", [lat, lon])
    click_map(page, lat, lon)


def fix_marker(page: Any) -> list[list[float]]:
    """Where the markers of the place being corrected are on the map."""
    found: list[list[float]] = page.evaluate(
        "() => fleetConsole.fixLayer.getLayers().map((m) => [m.getLatLng().lat, m.getLatLng().lng])"
    )
    return found


def test_a_held_order_is_shown_and_its_address_corrected_on_the_map(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Driver],
    new_page: Callable[..., Any],
    artifacts: Path,
) -> None:
    base = fleet_server()
    van = drivers(base, "van-1")
    van.ping(*VAN)
    order_id = held_order(base, van)
    page = open_console(new_page, base)

    # Held: a badge in the order list, and an alert that opens the order.
    page.click(".tab[data-tab=orders]")
    badge = page.locator(f"#order-list [data-order='{order_id}'] .badge.held")
    assert badge.inner_text() == "held: wrong address"
    page.click(".tab[data-tab=alerts]")
    alert = page.get_by_role("button", name=f"Order {order_id} {HELD_ALERT}")
    assert "parcel on van-1" in alert.inner_text()
    assert "unassigned" not in page.inner_text("#alert-list"), "its own alert says it"
    alert.click()
    detail = page.locator(f"#order-detail[data-order='{order_id}']")
    assert detail.locator(".badge.held").inner_text() == "held: wrong address"
    assert page.inner_text("#order-held-address") == ADDRESS
    assert page.inner_text("#order-dropoff-address") == ADDRESS, "the detail's address line"
    assert page.locator("#order-pickup-address").count() == 0, "no pickup: from the depot"
    assert page.locator("#order-held-address b").count() == 0

    # "Correct the address": the drop-off as it is, and the map waits for the new place.
    page.click("#held-correct")
    form = page.locator("#dropoff-form")
    dropoff = order(base, order_id)["dropoff"]
    assert form.locator("[name=address]").input_value() == ADDRESS
    assert page.inner_text("#dropoff-place") == f"{dropoff['lat']:.5f}, {dropoff['lon']:.5f}"
    assert page.inner_text("#dropoff-pick") == "Click the map\N{HORIZONTAL ELLIPSIS}"
    assert page.evaluate("() => fleetConsole.map.getContainer().style.cursor") == "crosshair"
    assert order_id in page.inner_text("#hint")

    # A place off the roads: the server's refusal shows, and the order stays held.
    click_place(page, *OFF_ROAD)
    [[lat, lon]] = fix_marker(page)
    assert metres(OFF_ROAD, (lat, lon)) < 10
    assert page.inner_text("#dropoff-place") == f"{lat:.5f}, {lon:.5f}"
    assert page.inner_text("#dropoff-pick") == "Set on map"
    form.locator("[name=address]").fill(CORRECTED)
    form.locator("[type=submit]").click()
    error = page.locator("#dropoff-error")
    error.wait_for()
    assert "outside the service area" in error.inner_text()
    assert order(base, order_id)["held"] == "address_wrong"

    # The right place and address: released, and the detail, list and alerts say so.
    page.wait_for_selector("#dropoff-pick:text-is('Click the map\N{HORIZONTAL ELLIPSIS}')")
    click_place(page, *RIGHT)
    assert not error.is_visible(), "said of the place before"
    assert form.locator("[name=address]").input_value() == CORRECTED
    page.screenshot(path=artifacts / "console-held-correct.png")
    form.locator("[type=submit]").click()
    released = wait_for(lambda: (o := order(base, order_id))["held"] == "" and o, "the release")
    assert released["dropoff"]["address"] == CORRECTED
    assert metres(RIGHT, (released["dropoff"]["lat"], released["dropoff"]["lon"])) < 10
    detail.locator(".badge.held").wait_for(state="detached")
    assert page.locator("#order-held, #dropoff-form").count() == 0
    wait_for(lambda: page.inner_text("#order-dropoff-address") == CORRECTED, "the new address")
    assert fix_marker(page) == []
    assert page.evaluate("() => fleetConsole.map.getContainer().style.cursor") == ""
    page.click("#pane-detail button:has-text('Close')")
    alert.wait_for(state="detached")
    page.click(".tab[data-tab=orders]")
    page.locator(f"#order-list [data-order='{order_id}']").wait_for()
    assert badge.count() == 0


def held_in_the_list(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Driver],
    new_page: Callable[..., Any],
) -> tuple[str, str, Any, Any]:
    """A held order from the shop, and the console open on the orders list: the server's URL,
    the order's id, the page and the order's row (its held badge shown)."""
    base = fleet_server()
    van = drivers(base, "van-1")
    van.ping(*VAN)
    order_id = held_order(base, van, pickup={"lat": SHOP[0], "lon": SHOP[1]})
    page = open_console(new_page, base)
    page.click(".tab[data-tab=orders]")
    row = page.locator(f"#order-list [data-order='{order_id}']")
    row.locator(".badge.held").wait_for()
    return base, order_id, page, row


def test_a_held_order_is_sent_out_again_as_it_is(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Driver],
    new_page: Callable[..., Any],
    artifacts: Path,
) -> None:
    base, order_id, page, row = held_in_the_list(fleet_server, drivers, new_page)
    assert row.locator(".badge.held").inner_text() == "held: wrong address"
    page.screenshot(path=artifacts / "console-held-orders.png")
    row.locator(".details").click()
    detail = page.locator(f"#order-detail[data-order='{order_id}']")
    assert detail.locator(".badge.held").inner_text() == "held: wrong address"

    page.click("#held-release")
    wait_for(lambda: order(base, order_id)["held"] == "", "the release")
    assert order(base, order_id)["dropoff"]["address"] == ADDRESS, "as it is"
    detail.locator(".badge.held").wait_for(state="detached")
    assert page.locator("#order-held").count() == 0
    page.locator(".toast:not(.bad)", has_text="goes out again to the same address").wait_for()
    page.click(".tab[data-tab=alerts]")
    wait_for(lambda: HELD_ALERT not in page.inner_text("#alert-list"), "the alert gone")


def test_a_held_parcel_goes_back_to_its_sender_and_is_never_offered_cancel(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Driver],
    new_page: Callable[..., Any],
) -> None:
    base, order_id, page, row = held_in_the_list(fleet_server, drivers, new_page)
    assert row.locator("[data-action=cancel]").count() == 0, "its parcel is on the van"
    row.locator(".details").click()
    page.click("#held-return")
    wait_for(lambda: order(base, order_id)["status"] == "returning", "the parcel sent back")
    page.locator(".toast:not(.bad)", has_text="goes back to its sender").wait_for()
    assert order(base, order_id)["held"] == ""


def test_the_driver_keeps_a_held_parcel_and_is_told_so(
    fleet_server: Callable[..., str], new_page: Callable[..., Any]
) -> None:
    base = fleet_server()
    vehicle = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": "van-1"}).json()
    phone = open_phone(new_page, base, vehicle["token"], VAN)
    wait_for(lambda: located(base, "van-1"), "the van's position on the server")
    created = create(base)
    order_id = created["order"]["id"]
    phone.wait_for_selector(f"#next-title:text-is('Pick up {order_id}')")
    phone.click("#actions [data-event=picked_up]")
    phone.wait_for_selector(f"#next-title:text-is('Deliver {order_id}')")
    phone.click("#actions [data-event=arrived]")
    wait_for(lambda: order(base, order_id)["status"] == "arrived", "the arrival")
    phone.click("#actions [data-event=failed]")
    phone.select_option("#fail-form [name=reason]", "address_wrong")
    phone.click("#fail-form [type=submit]")
    said = f"{order_id}: held for the dispatcher (address wrong): keep the parcel"
    phone.locator(".toast", has_text=said).wait_for()
    phone.wait_for_selector("#next-title:text-is('No stops left')")
    assert order(base, order_id)["held"] == "address_wrong"

    # The customer's page: the address was not found, no van coming; tell the driver the way.
    track = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    track.goto(f"{base}/t/{created['tracking_token']}")
    track.wait_for_selector("#status:text-is('We could not find your address')")
    assert track.inner_text("#eta") == "\N{EM DASH}"
    assert "Tell the driver below how to find you" in track.inner_text("#window")
    assert track.is_visible("#instructions-form")


def test_the_orders_of_a_day_download_as_a_csv_file(
    fleet_server: Callable[..., str], new_page: Callable[..., Any]
) -> None:
    zone = "Pacific/Kiritimati"  # UTC+14: its day is rarely the UTC one
    base = fleet_server(time_zone=zone)
    ids = []
    for place in (DROP, RIGHT):
        answer = httpx.post(f"{base}/orders", headers=AUTH, json=order_body(*place))
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["order"]["id"])
    page = open_console(new_page, base)
    page.evaluate(
        "() => { window.revoked = []; const revoke = URL.revokeObjectURL.bind(URL);"
        " URL.revokeObjectURL = (url) => { window.revoked.push(url); revoke(url); }; }"
    )
    page.click(".tab[data-tab=orders]")
    today = dt.datetime.now(ZoneInfo(zone)).date()
    assert page.input_value("#export-day") == today.isoformat()

    def download() -> tuple[str, list[dict[str, str]], str]:
        """Export: the file's name, its rows, its header line (the object URL revoked)."""
        with page.expect_download() as info:
            page.click("#export-csv")
        file = info.value
        text = Path(file.path()).read_text(encoding="utf-8")
        wait_for(lambda: file.url in page.evaluate("() => window.revoked"), "the URL revoked")
        rows = list(csv.DictReader(io.StringIO(text)))
        return file.suggested_filename, rows, text.split("\r\n")[0]

    name, rows, header = download()
    assert name == f"orders-{today.isoformat()}.csv"
    assert header.startswith("id,status,vehicle_id,created,")
    assert [r["id"] for r in rows] == ids

    yesterday = today - dt.timedelta(days=1)
    page.fill("#export-day", yesterday.isoformat())
    name, rows, header = download()
    assert (name, rows) == (f"orders-{yesterday.isoformat()}.csv", [])
    assert header.startswith("id,status,vehicle_id,created,")

    # A refusal shows the server's message (here: the range turned inside out on its way).
    def swapped(route: Any) -> None:
        parts = urlsplit(route.request.url)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        q["from"], q["to"] = q["to"], q["from"]
        route.continue_(url=parts._replace(query=urlencode(q)).geturl())

    page.route("**/orders/export?*", swapped)
    page.click("#export-csv")
    refused = "Could not export the orders: `from` is after `to`"
    page.locator(".toast.bad", has_text=refused).wait_for()
