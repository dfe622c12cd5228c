"""A vehicle's depot in the console's vehicle detail: the line that tells it, "Set on map" (the
next click on the map sets it) and "Remove", the depot's marker on the map while the vehicle is
selected, and the way back the planner then plans; a click on the map without "Set on map" does
what it did before."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import AUTH
from tests.web.conftest import Driver, click_map, open_console, order_body, wait_for

VAN = (42.5078, 1.5211)  # Andorra la Vella
DEPOT = (42.5110, 1.5290)  # a street 700 m north-east of the van
EAST = (42.5105, 1.5350)  # a street 1.2 km east of the van
NO_DEPOT = "none \N{EM DASH} routes end at the last stop"


def registered_depot(base: str, vehicle_id: str) -> dict[str, float] | None:
    answer = httpx.get(f"{base}/vehicles/registry", headers=AUTH)
    answer.raise_for_status()
    (record,) = [v for v in answer.json() if v["id"] == vehicle_id]
    depot: dict[str, float] | None = record["depot"]
    return depot


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The distance between two nearby places (equirectangular: plenty within a town)."""
    dy = math.radians(b[0] - a[0])
    dx = math.radians(b[1] - a[1]) * math.cos(math.radians(a[0]))
    return 6_371_000 * math.hypot(dx, dy)


def depot_markers(page: Any) -> list[list[float]]:
    """Where the depot markers on the console's map are."""
    found: list[list[float]] = page.evaluate(
        "() => fleetConsole.depotLayer.getLayers()"
        ".map((m) => [m.getLatLng().lat, m.getLatLng().lng])"
    )
    assert len(found) == page.locator("#map .stop-pin.depot").count()
    return found


def map_cursor(page: Any) -> str:
    cursor: str = page.evaluate("() => fleetConsole.map.getContainer().style.cursor")
    return cursor


def test_a_depot_set_on_the_console_map_ends_the_vans_routes_until_removed(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Driver],
    new_page: Callable[..., Any],
    artifacts: Path,
) -> None:
    base = fleet_server()
    drivers(base, "van-1").ping(*VAN)
    page = open_console(new_page, base)
    page.locator("#vehicle-list [data-vehicle='van-1']").click()
    line = page.locator("#detail-depot")
    assert line.inner_text() == NO_DEPOT
    assert depot_markers(page) == []

    # Without "Set on map", a click on the map still picks the vehicle under it (and nothing
    # elsewhere), and with "+ New order" it still starts an order there.
    page.click("#pane-detail button:has-text('Close')")
    click_map(page, *DEPOT)
    click_map(page, *VAN)
    wait_for(lambda: page.evaluate("() => fleetConsole.selected") == "van-1", "the van picked")
    page.click("#tool-order")
    click_map(page, *DEPOT)
    lat, lon = map(float, page.inner_text("#order-form .mono").split(", "))
    assert metres(DEPOT, (lat, lon)) < 10, "the new order's place"
    page.keyboard.press("Escape")
    page.evaluate("() => fleetConsole.map.closePopup()")
    assert registered_depot(base, "van-1") is None
    assert line.inner_text() == NO_DEPOT

    # "Set on map" waits for a click on the map: the cursor says so; Esc stops waiting.
    page.click("#depot-pick")
    assert map_cursor(page) == "crosshair"
    assert page.inner_text("#depot-pick") == "Click the map\N{HORIZONTAL ELLIPSIS}"
    assert "van-1" in page.inner_text("#hint")
    page.keyboard.press("Escape")
    assert map_cursor(page) == ""
    assert page.inner_text("#depot-pick") == "Set on map"

    # The next click sets the depot: the registry holds it, the detail tells it, the map shows it.
    page.click("#depot-pick")
    click_map(page, *DEPOT)
    depot = wait_for(lambda: registered_depot(base, "van-1"), "the depot in the registry")
    assert metres(DEPOT, (depot["lat"], depot["lon"])) < 10, depot
    wait_for(lambda: line.inner_text() == f"{depot['lat']:.5f}, {depot['lon']:.5f}", "the line")
    assert depot_markers(page) == [[depot["lat"], depot["lon"]]]
    assert map_cursor(page) == ""
    page.locator(".toast:not(.bad)", has_text="end at its depot now").wait_for()

    # An order: its route runs on back to the depot.
    answer = httpx.post(f"{base}/orders", headers=AUTH, json=order_body(*EAST))
    assert answer.status_code == 201, answer.text
    httpx.post(f"{base}/dispatch/replan", headers=AUTH, timeout=30).raise_for_status()
    page.wait_for_selector("#detail-route-end:has-text('Back at its depot')")
    page.screenshot(path=artifacts / "console-vehicle-depot.png")

    # The marker goes with the detail, and comes back with it.
    page.click("#pane-detail button:has-text('Close')")
    assert depot_markers(page) == []
    page.locator("#vehicle-list [data-vehicle='van-1']").click()
    assert depot_markers(page) == [[depot["lat"], depot["lon"]]]

    # "Remove": no depot, no marker.
    page.click("#depot-remove")
    wait_for(lambda: line.inner_text() == NO_DEPOT, "no depot in the detail")
    assert registered_depot(base, "van-1") is None
    assert depot_markers(page) == []
    assert page.locator("#depot-remove").count() == 0
    # The next plan's route ends at the last stop again: nothing said about a depot any more.
    httpx.post(f"{base}/dispatch/replan", headers=AUTH, timeout=30).raise_for_status()
    wait_for(lambda: page.locator("#detail-route-end").count() == 0, "no way back to a depot")
