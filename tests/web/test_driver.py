"""The driver's page: the phone's position moves the vehicle on the console; stops are reported."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import AUTH, scaled
from tests.web.conftest import DESKTOP, PHONE, open_console, open_phone, order_body, wait_for

START = (42.5078, 1.5211)  # Andorra la Vella
DROP = (42.5105, 1.5350)


def on_console(console: Any, vehicle_id: str) -> list[float] | None:
    found: list[float] | None = console.evaluate(
        "(id) => { const v = fleetConsole.layer.vehicles.get(id);"
        " return v ? [v.lat, v.lon] : null; }",
        vehicle_id,
    )
    return found


def test_the_driver_page_moves_its_vehicle_on_the_console_and_reports_a_delivery(
    fleet_server: Callable[..., str], new_page: Callable[..., Any], artifacts: Path
) -> None:
    base = fleet_server()
    depot = {"lat": 42.5110, "lon": 1.5290}  # the van's routes end there
    vehicle = httpx.post(
        f"{base}/vehicles", headers=AUTH, json={"id": "phone-van", "depot": depot}
    ).json()
    console = open_console(new_page, base)
    phone = open_phone(new_page, base, vehicle["token"], START)
    first = wait_for(lambda: on_console(console, "phone-van"), "the phone's van on the console")
    assert abs(first[0] - START[0]) < 1e-6
    assert abs(first[1] - START[1]) < 1e-6

    phone.wait_for_timeout(2000)  # a plausible move: 40 m in two seconds
    moved = (START[0] + 0.00036, START[1])
    phone.context.set_geolocation({"latitude": moved[0], "longitude": moved[1], "accuracy": 8})
    wait_for(
        lambda: (p := on_console(console, "phone-van")) and abs(p[0] - moved[0]) < 1e-6,
        "the van to move on the console",
    )

    order = httpx.post(f"{base}/orders", headers=AUTH, json=order_body(*DROP)).json()["order"]
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    phone.wait_for_selector(f"text=Deliver {order['id']}")
    assert "ETA" in phone.inner_text("#next-sub")
    assert "Back at the depot" in phone.inner_text("#route-end")  # the last line of the route
    console.locator("#vehicle-list [data-vehicle='phone-van']").click()
    assert "Back at its depot" in console.inner_text("#detail-route-end", timeout=scaled(10_000))
    phone.wait_for_timeout(500)
    phone.screenshot(path=artifacts / "driver-phone.png")
    phone.click("#actions [data-event=delivered]")
    phone.click("#proof-deliver")  # the proof sheet: delivered without a photo or a signature
    wait_for(
        lambda: (
            httpx.get(f"{base}/orders/{order['id']}", headers=AUTH).json()["status"] == "delivered"
        ),
        "the delivery to be recorded",
    )
    phone.wait_for_selector("text=No stops left")
    assert "Back to the depot" in phone.inner_text("#next-sub")
    kpis = httpx.get(f"{base}/web/kpis", headers=AUTH).json()
    assert kpis["delivered"] == 1
    assert kpis["error_rate"]["attempts"] == 1
    wait_for(lambda: console.inner_text("#kpi-errors") == "0%", "the console's failed drop-offs")
    assert "0 of 1 drop-off attempts failed" in (
        console.get_attribute("#kpi-errors", "title") or ""
    )
    assert kpis["eta_error_orders"] == 1, "ETA accuracy counts the delivery"
    assert kpis["on_time_rate"] == 1.0

    desktop = new_page(
        viewport=DESKTOP,
        geolocation={"latitude": moved[0], "longitude": moved[1], "accuracy": 8},
        permissions=["geolocation"],
    )
    desktop.goto(f"{base}/driver#token={vehicle['token']}")
    desktop.wait_for_selector("#conn.ok")
    desktop.wait_for_timeout(800)
    desktop.screenshot(path=artifacts / "driver-desktop.png")


def test_a_lost_phone_gets_a_new_link_and_a_sold_van_leaves_the_console(
    fleet_server: Callable[..., str], new_page: Callable[..., Any], artifacts: Path
) -> None:
    """A lost phone: the dispatcher makes a new link; the old one stops at once. Then the van
    is sold: removed, it leaves the console."""
    base = fleet_server()
    vehicle = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": "lost-van"}).json()
    where = {"geolocation": {"latitude": START[0], "longitude": START[1], "accuracy": 8},
             "permissions": ["geolocation"], "viewport": PHONE, "is_mobile": True}  # fmt: skip
    lost = new_page(**where)
    lost.goto(f"{base}/driver#token={vehicle['token']}")
    lost.wait_for_selector("#conn.ok")
    console = open_console(new_page, base)
    console.click("#vehicle-list .item[data-vehicle=lost-van]")
    console.wait_for_selector("#new-driver-link")
    console.once("dialog", lambda dialog: dialog.accept())
    console.click("#new-driver-link")
    link = console.wait_for_selector("#driver-link").get_attribute("value")
    assert link is not None
    assert link.startswith(f"{base}/driver#token=")
    assert vehicle["token"] not in link
    console.screenshot(path=artifacts / "console-new-driver-link.png")
    lost.wait_for_selector("#conn.bad:has-text('token refused')")  # closed with 4001

    found = new_page(**where)
    found.goto(link)
    found.wait_for_selector("#conn.ok")
    moved = (START[0] + 0.0002, START[1])
    found.wait_for_timeout(1000)
    found.context.set_geolocation({"latitude": moved[0], "longitude": moved[1], "accuracy": 8})
    wait_for(
        lambda: (p := on_console(console, "lost-van")) and abs(p[0] - moved[0]) < 1e-6,
        "the van to move on the console with the new link",
    )
    console.click("#pane-detail button:has-text('Close')")
    console.click("#vehicle-list .item[data-vehicle=lost-van]")
    assert console.locator("#driver-link").count() == 0  # the link is shown once

    # The van is sold: out of service, then removed; the console drops it.
    gone = f"{base}/vehicles/lost-van"
    httpx.patch(gone, headers=AUTH, json={"status": "maintenance"}).raise_for_status()
    assert httpx.delete(gone, headers=AUTH).status_code == 204
    wait_for(lambda: on_console(console, "lost-van") is None, "the van to leave the console's map")
    wait_for(lambda: console.locator("#vehicle-list .item").count() == 0, "and its list")
    assert console.evaluate("() => fleetConsole.selected") is None  # its detail closed
