"""A vehicle's day in the console's vehicle detail: the figures since midnight, its trips and
stops, the stops on the map; all as ``GET /vehicles/{id}/report`` answers for the same range."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from geo.distance import haversine_m
from geo.trips import Fix
from tests.conftest import AUTH, scaled
from tests.geo.test_trips import LAT0, LON0, Van
from tests.web.conftest import ANDORRA_LA_VELLA, Driver, open_console, wait_for


def a_morning() -> list[Fix]:
    """Four stops and three trips in 16 minutes, a fix a second, from Andorra la Vella."""
    van = Van(noise_m=3.0, seed=5)
    van.park(180)  # the depot
    van.drive(150, 12.0)  # 1.8 km north
    van.park(150)  # a drop-off
    van.drive(120, 12.0, heading_deg=180)
    van.park(150)
    van.drive(60, 9.0)
    van.park(130)
    lat0, lon0 = ANDORRA_LA_VELLA
    return [Fix(f.ts, f.lat - LAT0 + lat0, f.lon - LON0 + lon0) for f in van.fixes]


def send_track(driver: Driver, fixes: list[Fix], shift_ms: int) -> None:
    """The fixes, ``shift_ms`` later, over the driver's socket in batches of 100."""
    for first in range(0, len(fixes), 100):
        batch = [
            {"lat": round(f.lat, 7), "lon": round(f.lon, 7), "ts": f.ts + shift_ms}
            for f in fixes[first : first + 100]
        ]
        driver.seq += 1
        driver.ws.send(json.dumps({"type": "pings", "seq": driver.seq, "pings": batch}))
        while True:  # other frames (a route, say) may come first
            reply = json.loads(driver.ws.recv(timeout=scaled(10)))
            if reply.get("seq") == driver.seq:
                break
        assert reply["accepted"] == len(batch), reply


def etc_zone(offset_h: int) -> str:
    return "Etc/GMT" if offset_h == 0 else f"Etc/GMT{-offset_h:+d}"  # POSIX: GMT-2 is UTC+2


def zone_at_noon() -> tuple[str, dt.datetime, str]:
    """A time zone where it is now between noon and one o'clock, and its last midnight: a
    morning's track ending now lies after midnight whenever the test runs; and another zone,
    hours apart, for the browser (the console counts the fleet's day, not the browser's)."""
    now = dt.datetime.now(dt.UTC)
    offset = 12 - now.hour  # -11 … +12 hours
    name = etc_zone(offset)
    local = now.astimezone(ZoneInfo(name))
    elsewhere = etc_zone(offset - 7 if offset - 7 >= -12 else offset + 5)
    return name, local.replace(hour=0, minute=0, second=0, microsecond=0), elsewhere


def number(text: str) -> float:
    found = re.search(r"\d+(\.\d+)?", text)
    assert found, text
    return float(found.group())


def day_stop_markers(page: Any) -> int:
    count: int = page.evaluate("() => fleetConsole.dayStopsLayer.getLayers().length")
    assert page.locator(".leaflet-daystops-pane .day-stop-pin").count() == count
    return count


def test_the_vehicle_detail_shows_the_vans_day_as_the_report_tells_it(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Driver],
    new_page: Callable[..., Any],
    artifacts: Path,
) -> None:
    zone, midnight, browser_zone = zone_at_noon()
    base = fleet_server(time_zone=zone)
    fixes = a_morning()
    shift = int(time.time() * 1000) - 60_000 - fixes[-1].ts  # the last fix a minute ago
    driver = drivers(base, "van-1")
    send_track(driver, fixes, shift)
    httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": "van-2"}).raise_for_status()
    page = open_console(new_page, base, timezone_id=browser_zone)
    reports: list[str] = []
    page.on("request", lambda r: reports.append(r.url) if "/report?" in r.url else None)

    page.locator("#vehicle-list [data-vehicle='van-1']").click()
    page.wait_for_selector("#today-km")
    # The range it asked for: from the fleet's midnight to the server's now.
    shown = page.evaluate(
        "() => ({from: fleetConsole.report.from, to: fleetConsole.report.data.end})"
    )
    assert shown["from"] == int(midnight.timestamp() * 1000)
    answer = httpx.get(f"{base}/vehicles/van-1/report", headers=AUTH, params=shown)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    summary = report["summary"]
    assert summary["fixes"] == len(fixes)  # all of the morning lies in the day
    assert (summary["stops"], summary["trips"]) == (4, 3)
    assert abs(number(page.inner_text("#today-km")) - summary["distance_m"] / 1000) <= 0.05
    assert int(page.inner_text("#today-stops")) == summary["stops"]
    assert abs(number(page.inner_text("#today-top")) - summary["max_speed_mps"] * 3.6) <= 0.5
    assert page.locator("#today-parts").count() == 0  # the list waits for the toggle
    assert day_stop_markers(page) == 0

    # The trips and stops, newest first; the stops on the map.
    page.click("#today-toggle")
    stops = [p for p in report["parts"] if p["type"] == "stop"]
    listed = page.locator("#today-parts .part.stop")
    assert listed.count() == len(stops)
    assert [listed.nth(k).get_attribute("data-stop") for k in range(4)] == ["4", "3", "2", "1"]
    assert page.locator("#today-parts .part").count() == len(report["parts"])
    assert day_stop_markers(page) == len(stops)

    # A stop clicked in the list: the map goes there.
    page.evaluate(
        "([lat, lon]) => fleetConsole.map.setView([lat, lon], 14, {animate: false})",
        [ANDORRA_LA_VELLA[0] - 0.03, ANDORRA_LA_VELLA[1] - 0.03],
    )
    page.click("#today-parts [data-stop='1']")  # the depot, at the foot of the list
    depot = stops[0]

    def metres_to_depot() -> float:
        c = page.evaluate("() => fleetConsole.map.getCenter()")
        return haversine_m(c["lat"], c["lng"], depot["lat"], depot["lon"])

    wait_for(lambda: metres_to_depot() < 20, "the map centred on the depot")
    page.wait_for_timeout(300)
    page.screenshot(path=artifacts / "console-vehicle-day.png")

    # A position update re-renders the detail, without asking for the day again.
    driver.ping(fixes[-1].lat, fixes[-1].lon)
    wait_for(lambda: " s ago" in page.inner_text("#detail-age"), "the new ping in the detail")
    page.wait_for_timeout(1500)
    assert len(reports) == 1, reports

    # Another vehicle, which has not moved: its markers are not van-1's.
    page.click(".tab[data-tab='vehicles']")
    page.locator("#vehicle-list [data-vehicle='van-2']").click()
    page.wait_for_selector("#today-empty")
    assert page.inner_text("#today-empty") == "No movement recorded today"
    assert day_stop_markers(page) == 0

    # Back to van-1, the list open again; closing the detail takes the markers off the map.
    page.click(".tab[data-tab='vehicles']")
    page.locator("#vehicle-list [data-vehicle='van-1']").click()
    page.click("#today-toggle")
    wait_for(lambda: day_stop_markers(page) == len(stops), "van-1's stops on the map again")
    page.click("#pane-detail button:has-text('Close')")
    assert day_stop_markers(page) == 0
    assert page.evaluate("() => fleetConsole.report") is None
