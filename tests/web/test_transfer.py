"""A van breaks down with a parcel on board: the driver's page of the van sent for it shows the
collection from the van out of service (one action, "Collected"), then the drop-off; the
console's order detail says who collects it from whom until it is collected, and the van's
route lists the collection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import AUTH
from tests.web.conftest import Driver, open_console, open_phone, wait_for
from tests.web.test_returns import actions, located, order, stops_of
from tests.web.test_stop_details import CUSTOMER, DROP_ADDRESS, NOTES, NOTHING, parcel, shown

BROKEN_AT = (42.5078, 1.5211)  # Andorra la Vella: where van-1 breaks down
FROM_VAN_1 = "from van van-1 (out of service)"
VAN_2 = (42.5063, 1.5215)  # the van sent for it, 170 m from van-1


def background(page: Any, selector: str) -> str:
    colour: str = page.eval_on_selector(selector, "(e) => getComputedStyle(e).backgroundColor")
    return colour


def test_a_parcel_on_a_broken_down_van_is_collected_from_the_driver_page(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Driver],
    new_page: Callable[..., Any],
    artifacts: Path,
) -> None:
    base = fleet_server()
    van_1 = drivers(base, "van-1")
    van_1.ping(*BROKEN_AT)
    answer = httpx.post(f"{base}/orders", headers=AUTH, json=parcel())  # (picked up at a shop)
    assert answer.status_code == 201, answer.text
    order_id = answer.json()["order"]["id"]
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    wait_for(lambda: stops_of(base, "van-1"), "van-1's route")
    assert van_1.report(order_id, "picked_up") == "picked_up"  # on board van-1

    van_2 = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": "van-2"}).json()
    phone = open_phone(new_page, base, van_2["token"], VAN_2)
    wait_for(lambda: located(base, "van-2"), "van-2's position on the server")
    # Its order details refused at first, as before the planner hands the order over to van-2
    # (the route is pushed a moment before); asked again within a second once they are not.
    refused: list[str] = []

    def refuse(route: Any) -> None:
        refused.append(route.request.url)
        error = {"error": {"code": "not_your_order", "message": "not an open order of van-2"}}
        route.fulfill(status=403, json=error)

    phone.route("**/stop-details", refuse)
    phone.evaluate("() => { fleetDriver.detailsMaxAgeMs = 1000; }")
    # The console's order detail, open before the breakdown: the order events refresh it.
    page = open_console(new_page, base)
    page.click(".tab[data-tab=orders]")
    page.locator(f"#order-list [data-order='{order_id}'] .details").click()
    page.wait_for_selector(f"#order-detail[data-order='{order_id}'] dl.facts")
    assert page.locator("#order-transfer").count() == 0

    # van-1 breaks down: van-2 is sent to collect the parcel from it.
    broken = httpx.patch(f"{base}/vehicles/van-1", headers=AUTH, json={"status": "broken_down"})
    assert broken.status_code == 200, broken.text
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    phone.wait_for_selector(f"#next-title:text-is('Collect {order_id} from van-1')")
    assert actions(phone) == ["picked_up"]
    assert phone.inner_text("#actions [data-event=picked_up]") == "Collected"
    # Where: at van-1, which the route tells while the order's details are refused; with them,
    # still there: the notes, but not the customer (not at the door).
    wait_for(lambda: refused, "the phone to ask for the order's details")
    assert shown(phone) == {**NOTHING, "address": FROM_VAN_1}
    phone.unroute("**/stop-details")
    wait_for(lambda: shown(phone)["notes"] == NOTES, "the order's details on van-2's phone")
    assert shown(phone) == {
        "address": FROM_VAN_1, "customer": None, "notes": NOTES, "instructions": None, "tel": None
    }  # fmt: skip
    collect = phone.locator("#stops li.stop.transfer")
    assert f"Collect {order_id} from van-1" in collect.inner_text()
    assert FROM_VAN_1 in collect.inner_text()
    assert f"Deliver {order_id}" in phone.inner_text("#stops li.stop.dropoff")
    assert phone.locator("#map .stop-pin.transfer").count() == 1
    pin = background(phone, "#map .stop-pin.transfer")
    assert pin != background(phone, "#map .stop-pin.dropoff")  # told apart on the map

    # The console: who collects the parcel from whom (once the planner has handed it over).
    line = page.locator("#order-transfer")
    wait_for(lambda: line.count() == 1, "the collection line in the order detail")
    assert line.inner_text() == "To be collected from van-1 (out of service) by van-2"
    assert background(page, "#order-transfer") != "rgba(0, 0, 0, 0)"  # (set apart)
    badge = page.locator(f"#order-list [data-order='{order_id}'] .badge.transfer")
    wait_for(lambda: badge.count() == 1, "the order's row to say where its parcel is")
    assert badge.inner_text() == "on van-1"
    page.screenshot(path=artifacts / "console-transfer-order.png")
    phone.screenshot(path=artifacts / "driver-transfer.png")

    # van-2's route in the console: the collection from van-1, listed and on the map.
    page.click(".tab[data-tab=vehicles]")
    page.locator("#vehicle-list [data-vehicle='van-2']").click()
    stop = page.locator(f"#detail-stops .stop.transfer[data-order='{order_id}']")
    stop.wait_for()
    assert stop.inner_text().startswith("1\nCollect")
    assert "from van-1 (out of service)" in stop.inner_text()
    marker = page.locator("#map .stop-pin.transfer")
    wait_for(lambda: marker.count() == 1, "the collection on the map")
    assert background(page, "#map .stop-pin.transfer") == pin
    marker.click()
    popup = page.locator(".leaflet-popup-content")
    assert f"1. Collect {order_id}" in popup.inner_text()
    assert "From van-1 (out of service)" in popup.inner_text()

    page.click("#pane-detail button:has-text('Close')")
    page.click(".tab[data-tab=orders]")
    page.locator(f"#order-list [data-order='{order_id}'] .details").click()
    line.wait_for()

    # Collected: the phone moves on to the drop-off at once, with the ack (the route it has still
    # lists the collection until the server's next ETA pass, or planning round, leaves it out),
    # the console's line goes, and the audit says so.
    phone.click("#actions [data-event=picked_up]")
    phone.wait_for_selector(f".toast:text-is('{order_id}: collected from van-1')")
    assert phone.inner_text("#next-title") == f"Deliver {order_id}"  # (shown with the toast)
    assert actions(phone) == ["arrived", "picked_up", "delivered", "failed"]
    assert phone.inner_text("#actions [data-event=picked_up]") == "Picked up"
    assert phone.locator("#stops li.stop.transfer").count() == 0
    assert phone.locator("#map .stop-pin.transfer").count() == 0
    at_door = shown(phone)
    assert (at_door["address"], at_door["notes"]) == (DROP_ADDRESS, NOTES)
    assert CUSTOMER["name"] in (at_door["customer"] or "")
    record = order(base, order_id)
    assert (record["status"], record["vehicle_id"], record["transfer_from"]) == (
        "picked_up", "van-2", "",
    )  # fmt: skip
    audit = httpx.get(f"{base}/orders/{order_id}/audit", headers=AUTH).json()
    assert ("van-2", "taken over from van-1") in [(a["by"], a.get("reason")) for a in audit]
    wait_for(lambda: line.count() == 0, "the collection line to go")
    wait_for(lambda: badge.count() == 0, "the row's badge to go")
