"""A refused parcel goes back to the sender: the driver's page shows the return stop and reports
the hand-back, the console lists the order as returning (an exception), and the customer's
tracking page says so with no ETA."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import AUTH
from tests.web.conftest import PHONE, Driver, open_console, open_phone, order_body, wait_for

START = (42.5078, 1.5211)  # Andorra la Vella
SHOP = (42.5063, 1.5300)  # where the parcel is picked up, and goes back to
DROP = (42.5105, 1.5350)


def create(base: str) -> dict[str, Any]:
    """An order picked up at SHOP and delivered at DROP, planned at once."""
    body = order_body(*DROP, pickup={"lat": SHOP[0], "lon": SHOP[1]})
    answer = httpx.post(f"{base}/orders", headers=AUTH, json=body)
    assert answer.status_code == 201, answer.text
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    created: dict[str, Any] = answer.json()
    return created


def order(base: str, order_id: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()
    return found


def stops_of(base: str, vehicle_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/dispatch/routes/{vehicle_id}", headers=AUTH)
    stops: list[dict[str, Any]] = answer.json()["stops"] if answer.status_code == 200 else []
    return stops


def located(base: str, vehicle_id: str) -> bool:
    fleet = httpx.get(f"{base}/web/fleet", headers=AUTH).json()["vehicles"]
    return any(v["id"] == vehicle_id and v.get("position") for v in fleet)


def actions(phone: Any) -> list[str]:
    """The stop events the driver's page offers for its next stop (its visible buttons)."""
    shown: list[str] = phone.eval_on_selector_all(
        "#actions button", "(bs) => bs.filter((b) => b.offsetParent).map((b) => b.dataset.event)"
    )
    return shown


def test_a_refused_parcel_is_taken_back_to_the_shop_from_the_driver_page(
    fleet_server: Callable[..., str], new_page: Callable[..., Any], artifacts: Path
) -> None:
    base = fleet_server()
    vehicle = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": "van-1"}).json()
    phone = open_phone(new_page, base, vehicle["token"], START)
    wait_for(lambda: located(base, "van-1"), "the van's position on the server")
    created = create(base)
    order_id = created["order"]["id"]
    track = new_page(viewport=PHONE, is_mobile=True, has_touch=True)  # the customer's page
    track.goto(f"{base}/t/{created['tracking_token']}")
    track.wait_for_selector("#eta[data-eta]")  # on its way: an ETA

    # Picked up at the shop, then refused at the door: the parcel goes back.
    phone.wait_for_selector(f"#next-title:text-is('Pick up {order_id}')")
    assert "returned" not in actions(phone)
    phone.click("#actions [data-event=picked_up]")
    phone.wait_for_selector(f"#next-title:text-is('Deliver {order_id}')")
    assert actions(phone) == ["arrived", "picked_up", "delivered", "failed"]
    phone.click("#actions [data-event=arrived]")
    wait_for(lambda: order(base, order_id)["status"] == "arrived", "the arrival")
    phone.click("#actions [data-event=failed]")
    phone.select_option("#fail-form [name=reason]", "refused")
    phone.click("#fail-form [type=submit]")
    wait_for(lambda: order(base, order_id)["status"] == "returning", "the order to go back")
    assert order(base, order_id)["failures"] == 1

    # The return stop: at the shop, with one button, "Returned".
    phone.wait_for_selector(f"#next-title:text-is('Return {order_id}')")
    assert actions(phone) == ["returned"]
    assert f"Return {order_id}" in phone.inner_text("#stops li.stop.return")
    assert phone.locator("#map .stop-pin.return").count() == 1
    [back] = [s for s in stops_of(base, "van-1") if s["order_id"] == order_id]
    assert back["kind"] == "return"
    assert abs(back["lat"] - SHOP[0]) < 3e-4  # at the shop (on its road)
    assert abs(back["lon"] - SHOP[1]) < 3e-4
    phone.screenshot(path=artifacts / "driver-return.png")

    # The customer's page, live: going back to the sender, no ETA any more.
    track.wait_for_selector("#status:text-is('Being returned to the sender')")
    assert track.inner_text("#eta") == "\N{EM DASH}"
    assert track.get_attribute("#eta", "data-eta") is None
    assert "arriving" not in track.inner_text("#window")
    assert "ETA" not in track.inner_text("#timeline")
    assert "refused" in track.inner_text("#timeline li.now")  # where it stands: the failure
    track.screenshot(path=artifacts / "tracking-returning.png")

    # Handed back at the shop: returned, and the phone has nothing left to do.
    phone.click("#actions [data-event=returned]")
    wait_for(lambda: order(base, order_id)["status"] == "returned", "the order to be returned")
    phone.wait_for_selector("#next-title:text-is('No stops left')")
    assert phone.locator("#stops li.stop").count() == 0
    track.wait_for_selector("#status:text-is('Returned to the sender')")  # live, over its socket
    assert track.inner_text("#eta") == "\N{EM DASH}"
    assert track.locator("#timeline li.now").count() == 0


def test_the_console_lists_a_parcel_going_back_as_an_exception(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Driver],
    new_page: Callable[..., Any],
    artifacts: Path,
) -> None:
    base = fleet_server()
    van = drivers(base, "van-1")
    van.ping(*START)
    order_id = create(base)["order"]["id"]
    wait_for(lambda: stops_of(base, "van-1"), "the van's route")
    assert van.report(order_id, "picked_up") == "picked_up"
    assert van.report(order_id, "arrived") == "arrived"
    assert van.report(order_id, "failed", reason="refused") == "returning"
    wait_for(lambda: [s["kind"] for s in stops_of(base, "van-1")] == ["return"], "the return stop")

    page = open_console(new_page, base)
    page.click(".tab[data-tab=orders]")
    row = page.locator(f"#order-list [data-order='{order_id}']")
    wait_for(lambda: row.locator(".badge.return").count() == 1, "the returning badge")
    assert row.locator(".badge.return").inner_text() == "returning"
    on_route = row.locator(".order-vehicle")
    wait_for(lambda: "(return)" in on_route.inner_text(), "the return stop in the order's row")
    page.click(".tab[data-tab=alerts]")
    assert f"Returning to sender: {order_id}" in page.inner_text("#alert-list")

    row_details = page.locator(f"#order-list [data-order='{order_id}'] .details")
    page.click(".tab[data-tab=orders]")
    row_details.click()
    page.wait_for_selector("#order-failures")
    assert page.inner_text("#order-failures") == "1"
    assert "Failed attempts" in page.inner_text("#order-detail")

    # The van's detail: the return among its stops, and on the map.
    page.click("#pane-detail button:has-text('Close')")
    page.click(".tab[data-tab=vehicles]")
    page.locator("#vehicle-list [data-vehicle='van-1']").click()
    stop = page.locator(f"#detail-stops .stop.return[data-order='{order_id}']")
    assert "Return" in stop.inner_text()
    assert "back to the sender" in stop.inner_text()
    wait_for(lambda: page.locator("#map .stop-pin.return").count() == 1, "the return on the map")
    page.screenshot(path=artifacts / "console-returning.png")

    # Back at the shop: no longer open, no longer an exception.
    assert van.report(order_id, "returned") == "returned"
    page.click(".tab[data-tab=alerts]")
    wait_for(lambda: "Returning to sender" not in page.inner_text("#alert-list"), "the alert gone")
    page.click(".tab[data-tab=orders]")
    wait_for(lambda: row.count() == 0, "the order to leave the open orders")


def test_a_parcel_tried_again_stays_on_the_phone_until_its_last_attempt_sends_it_to_the_depot(
    fleet_server: Callable[..., str], new_page: Callable[..., Any]
) -> None:
    """Nobody home, twice, with two attempts allowed: the first failure leaves the drop-off on
    the phone for another try; the second sends the parcel (loaded at the depot) back there."""
    base = fleet_server(max_attempts=2)
    depot = {"lat": SHOP[0], "lon": SHOP[1]}
    vehicle = httpx.post(
        f"{base}/vehicles", headers=AUTH, json={"id": "van-1", "depot": depot}
    ).json()
    phone = open_phone(new_page, base, vehicle["token"], START)
    wait_for(lambda: located(base, "van-1"), "the van's position on the server")
    answer = httpx.post(f"{base}/orders", headers=AUTH, json=order_body(*DROP))
    order_id = answer.json()["order"]["id"]
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    phone.wait_for_selector(f"#next-title:text-is('Pick up {order_id}')")  # load at the depot
    phone.click("#actions [data-event=picked_up]")
    wait_for(lambda: order(base, order_id)["status"] == "picked_up", "the parcel loaded")

    def fail() -> None:
        phone.wait_for_selector(f"#next-title:text-is('Deliver {order_id}')")
        phone.click("#actions [data-event=failed]")
        phone.select_option("#fail-form [name=reason]", "customer_absent")
        phone.click("#fail-form [type=submit]")

    fail()
    wait_for(lambda: order(base, order_id)["failures"] == 1, "the first failure")
    assert order(base, order_id)["status"] in ("received", "processed")  # to be tried again
    phone.wait_for_selector(".toast:has-text('processed'), .toast:has-text('received')")
    fail()  # the drop-off is still there to try again
    wait_for(lambda: order(base, order_id)["status"] == "returning", "the last attempt's return")
    assert order(base, order_id)["failures"] == 2
    phone.wait_for_selector(f"#next-title:text-is('Return {order_id}')")
    [back] = stops_of(base, "van-1")
    assert back["kind"] == "return"
    assert abs(back["lat"] - SHOP[0]) < 3e-4  # at the depot (on its road)
    assert abs(back["lon"] - SHOP[1]) < 3e-4
    phone.click("#actions [data-event=returned]")
    wait_for(lambda: order(base, order_id)["status"] == "returned", "the order to be returned")
    phone.wait_for_selector("#next-title:text-is('No stops left')")
