"""The dispatcher console in a real browser: live vehicles, orders, traffic events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis

from server import keys
from server.clock import Clock
from server.tracking.console import MAX_QUEUED_FRAMES
from tests.conftest import AUTH
from tests.web.conftest import (
    PHONE,
    Swarm,
    click_map,
    open_console,
    order_body,
    wait_for,
)


def positions(page: Any) -> dict[str, list[float]]:
    return page.evaluate(
        "() => Object.fromEntries([...fleetConsole.layer.vehicles.values()]"
        ".map(v => [v.id, [v.lat, v.lon]]))"
    )


def test_the_console_shows_vehicles_that_move(
    fleet_server: Callable[..., str],
    swarm: Callable[..., Swarm],
    new_page: Callable[..., Any],
    artifacts: Path,
) -> None:
    base = fleet_server()
    swarm(base, 25, interval=0.5, speed=15, radius_m=800)
    page = open_console(new_page, base)
    wait_for(lambda: len(positions(page)) == 25, "25 vehicles on the console map")
    page.wait_for_selector("#vehicle-list .item")
    page.wait_for_timeout(500)
    first = positions(page)
    shot_1 = page.locator("#map").screenshot(path=artifacts / "console-moving-1.png")
    page.wait_for_timeout(2000)
    second = positions(page)
    shot_2 = page.locator("#map").screenshot(path=artifacts / "console-moving-2.png")
    moved = [v for v in first if second.get(v) != first[v]]
    assert len(moved) >= 20, f"only {len(moved)} of 25 vehicles moved"
    assert shot_1 != shot_2, "the map looks the same in both screenshots"
    assert page.locator("#vehicle-list .item").count() == 25
    # Clicking a vehicle on the map opens its detail.
    point = page.evaluate("() => fleetConsole.layer.pointOf('sim-0007')")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
    page.wait_for_selector("#pane-detail h2")
    assert page.inner_text("#pane-detail h2").startswith("sim-0")
    assert "Last ping" in page.inner_text("#pane-detail")
    page.click("#pane-detail button:has-text('Close')")
    page.screenshot(path=artifacts / "console-desktop.png")
    page.click("#tool-density")  # vehicles per H3 cell
    wait_for(lambda: page.evaluate("() => fleetConsole.densityCells || 0") > 0, "density cells")
    page.wait_for_timeout(300)
    page.screenshot(path=artifacts / "console-density-desktop.png")
    page.click("#tool-density")
    phone = open_console(new_page, base, viewport=PHONE, is_mobile=True, has_touch=True)
    wait_for(lambda: len(positions(phone)) == 25, "the vehicles on a phone")
    phone.wait_for_timeout(500)
    phone.screenshot(path=artifacts / "console-phone.png")


VANS = {"van-1": (42.5078, 1.5211), "van-2": (42.5063, 1.5215)}  # Andorra la Vella
EAST = (42.5105, 1.5350)  # a street 1.2 km east of the vans
SOUTH_WEST = (42.4990, 1.5080)


def route_of(base: str, vehicle_id: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{base}/dispatch/routes/{vehicle_id}", headers=AUTH)
    return answer.json() if answer.status_code == 200 else None


def show(page: Any, lat: float, lon: float, zoom: float) -> None:
    page.evaluate(
        "([lat, lon, zoom]) => fleetConsole.map.setView([lat, lon], zoom, {animate: false})",
        [lat, lon, zoom],
    )
    page.wait_for_timeout(300)


def test_an_order_created_in_the_console_appears_on_a_route_and_can_be_reassigned(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Any],
    new_page: Callable[..., Any],
    artifacts: Path,
) -> None:
    base = fleet_server()
    for van, (lat, lon) in VANS.items():
        drivers(base, van).ping(lat, lon)
    page = open_console(new_page, base)
    show(page, 42.508, 1.528, 15)
    page.click("#tool-order")
    click_map(page, *EAST)
    page.fill("#order-form [name=reference]", "UI-1042")
    page.select_option("#order-form [name=priority]", "express")
    page.click("#order-form button[type=submit]")
    page.wait_for_selector("#tracking-link")
    order_id = page.evaluate("() => fleetConsole.lastCreated.id")
    row = page.locator(f"#order-list [data-order='{order_id}'] .order-vehicle")
    wait_for(lambda: "ETA" in row.inner_text(), "the order's vehicle and ETA in the orders panel")
    vehicle = row.inner_text().split(" · ")[0]
    assert vehicle in VANS
    route = route_of(base, vehicle)
    assert route is not None
    assert order_id in [s["order_id"] for s in route["stops"]]
    order = httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()
    assert order["reference"] == "UI-1042"
    assert order["priority"] == "express"
    assert abs(order["dropoff"]["lat"] - EAST[0]) < 1e-4
    # The dispatcher moves it to the other van.
    other = next(v for v in VANS if v != vehicle)
    page.fill(f"#order-list [data-order='{order_id}'] [name=vehicle]", other)
    page.click(f"#order-list [data-order='{order_id}'] .reassign button")
    wait_for(lambda: row.inner_text().startswith(f"{other} · stop"), "the order on the other van")
    moved = route_of(base, other)
    assert moved is not None
    assert order_id in [s["order_id"] for s in moved["stops"]]
    assert httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()["vehicle_id"] == other
    # The vehicle's detail shows the stop with its ETA, and the route is drawn.
    page.locator(f"#order-list [data-order='{order_id}']").click()
    page.wait_for_selector(f"#detail-stops [data-order='{order_id}']")
    page.wait_for_timeout(800)
    page.screenshot(path=artifacts / "console-route-desktop.png")


def test_a_traffic_event_drawn_in_the_console_leads_to_a_new_route_version(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Any],
    new_page: Callable[..., Any],
    artifacts: Path,
) -> None:
    base = fleet_server()
    lat, lon = VANS["van-1"]
    drivers(base, "van-1").ping(lat, lon)
    for place in (EAST, SOUTH_WEST):
        answer = httpx.post(f"{base}/orders", headers=AUTH, json=order_body(*place))
        assert answer.status_code == 201
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    before = route_of(base, "van-1")
    assert before is not None
    assert len(before["stops"]) == 2
    page = open_console(new_page, base)
    show(page, 42.507, 1.524, 15)
    page.locator("#vehicle-list [data-vehicle='van-1']").click()
    page.wait_for_selector("#detail-version")
    assert f"version {before['version']}" in page.inner_text("#detail-version")
    # Close the streets around the second drop-off (the first is locked: the van is heading
    # there): draw the area on the map.
    second = (before["stops"][1]["lat"], before["stops"][1]["lon"])
    show(page, second[0], second[1], 15)
    page.click("#tool-traffic")
    d = 0.0025
    for corner in ((d, -d), (d, d), (-d, d), (-d, -d)):
        click_map(page, second[0] + corner[0], second[1] + corner[1])
    page.click("#draw-finish")
    page.select_option("#traffic-form [name=kind]", "closed")
    page.fill("#traffic-form [name=label]", "Bridge closed")
    page.click("#traffic-submit")
    page.wait_for_selector("#traffic-list [data-traffic]")
    assert "Bridge closed" in page.inner_text("#traffic-list")
    wanted = f"version {before['version'] + 1}"
    wait_for(
        lambda: wanted in page.inner_text("#detail-version"),
        "the new route version on the console",
    )
    after = route_of(base, "van-1")
    assert after is not None
    assert after["version"] == before["version"] + 1
    page.screenshot(path=artifacts / "console-traffic-desktop.png")


def test_a_console_that_missed_events_reloads_what_it_shows(
    fleet_server: Callable[..., str],
    swarm: Callable[..., Swarm],
    new_page: Callable[..., Any],
    redis_url: str,
) -> None:
    """Events sent while the console's socket was away, or dropped by the server because the
    console fell too far behind, do not leave its screen wrong: it reloads what it shows."""
    base = fleet_server()
    swarm(base, 3, interval=0.5, speed=10, radius_m=300)
    page = open_console(new_page, base)
    wait_for(lambda: len(positions(page)) == 3, "3 vehicles on the console map")
    status = "() => fleetConsole.fleet.get('sim-0001').status"
    assert page.evaluate(status) == "available"

    # Away: a van goes into maintenance while the socket is closed; its event is lost to it.
    page.evaluate("() => fleetConsole.socket.close()")
    answer = httpx.patch(f"{base}/vehicles/sim-0001", json={"status": "maintenance"}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    wait_for(lambda: page.evaluate(status) == "maintenance", "the console to reload the fleet")
    assert page.evaluate("() => fleetConsole.resyncs") == 1

    # Behind: more events at once than the server keeps for one console.
    client = redis.Redis.from_url(redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        for n in range(MAX_QUEUED_FRAMES + 500):
            pipe.publish(keys.EVENTS_CHANNEL, json.dumps({"type": "noise", "n": n}))
        pipe.execute()
    finally:
        client.close()
    wait_for(lambda: page.evaluate("() => fleetConsole.resyncs") >= 2, "a resync frame")
    assert page.evaluate(status) == "maintenance"


def test_the_console_counts_time_on_the_servers_clock(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Any],
    new_page: Callable[..., Any],
) -> None:
    """A server whose clock is five hours ahead of the browser's (a simulation at twice real
    time, anchored five hours ago): a vehicle that pinged two of the server's minutes ago says
    so, where the browser's own clock would put that ping in the future ("0 s ago")."""
    ahead = Clock(rate=2.0, anchor=time.time() - 5 * 3600)
    base = fleet_server(clock_rate=ahead.rate, clock_anchor=ahead.anchor)
    drivers(base, "van-1").ping(*VANS["van-1"], ago_s=120, now_s=ahead.now())
    page = open_console(new_page, base)
    item = page.locator("#vehicle-list [data-vehicle='van-1']")
    wait_for(lambda: "ping 2 min ago" in item.inner_text(), "'ping 2 min ago' in the list")
    skew_ms = page.evaluate(
        "async () => (await import('/static/js/common.js')).serverNow() - Date.now()"
    )
    assert abs(skew_ms - (ahead.now() - time.time()) * 1000) < 5_000
