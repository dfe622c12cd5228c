"""Working hours in the console's vehicle detail: the line that tells them and whether the van is
on shift now, the form that sets and clears them, the vehicles list's hint for a van off shift;
each change as the registry then holds it and as the planner then plans."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.conftest import AUTH
from tests.web.conftest import Driver, open_console, order_body, wait_for

# The fleet's hours run on Kathmandu's clock (UTC+5:45 all year), the browser on São Paulo's
# (UTC-3): hours the console counted in UTC or in the browser's zone would read wrong.
FLEET_ZONE = "Asia/Kathmandu"
BROWSER_ZONE = "America/Sao_Paulo"
VAN = (42.5078, 1.5211)  # Andorra la Vella
EAST = (42.5105, 1.5350)  # a street 1.2 km east of the van


def fleet_clock(hours_from_now: float) -> str:
    """``HH:MM`` on the fleet's clock, some hours from now (wrapping round midnight: a shift that
    ends before it starts runs overnight, so the pairs below hold at any time of day)."""
    moment = dt.datetime.now(ZoneInfo(FLEET_ZONE)) + dt.timedelta(hours=hours_from_now)
    return moment.strftime("%H:%M")


def span(start: str, end: str) -> str:
    """Hours as the console writes them, with an en dash."""
    return f"{start}\N{EN DASH}{end}"


def registered_shift(base: str, vehicle_id: str) -> dict[str, str] | None:
    answer = httpx.get(f"{base}/vehicles/registry", headers=AUTH)
    answer.raise_for_status()
    (record,) = [v for v in answer.json() if v["id"] == vehicle_id]
    shift: dict[str, str] | None = record["shift"]
    return shift


def planned_orders(base: str, vehicle_id: str) -> list[str]:
    """The orders on the vehicle's route (none without a route)."""
    answer = httpx.get(f"{base}/dispatch/routes/{vehicle_id}", headers=AUTH)
    if answer.status_code == 404:
        return []
    answer.raise_for_status()
    return [s["order_id"] for s in answer.json()["stops"]]


def replan(base: str) -> None:
    httpx.post(f"{base}/dispatch/replan", headers=AUTH, timeout=30).raise_for_status()


def edit_hours(page: Any, start: str, end: str) -> None:
    page.click("#hours-edit")
    page.fill("#hours-form [name=start]", start)
    page.fill("#hours-form [name=end]", end)
    page.click("#hours-form button[type=submit]")


def hours_line(page: Any) -> str:
    text: str = page.inner_text("#detail-hours")
    return text


def test_working_hours_set_in_the_console_keep_a_van_out_of_plans_between_its_shifts(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Driver],
    new_page: Callable[..., Any],
    artifacts: Path,
) -> None:
    base = fleet_server(time_zone=FLEET_ZONE)
    driver = drivers(base, "van-1")
    driver.ping(*VAN)
    page = open_console(new_page, base, timezone_id=BROWSER_ZONE)
    page.locator("#vehicle-list [data-vehicle='van-1']").click()
    page.wait_for_selector("#detail-hours")
    assert hours_line(page) == "Any time"
    hint = page.locator("#vehicle-list [data-vehicle='van-1'] .shift-hint")

    # A shift that ended an hour ago: off shift until it starts again, in the list too.
    start, end = fleet_clock(-3), fleet_clock(-1)
    edit_hours(page, start, end)
    wait_for(lambda: registered_shift(base, "van-1") == {"start": start, "end": end}, "the hours")
    wait_for(
        lambda: hours_line(page) == f"{span(start, end)} · off shift until {start}", "off shift"
    )
    assert page.locator("#hours-form").count() == 0
    assert page.inner_text("#detail-hours-zone") == f"({FLEET_ZONE})"
    page.click(".tab[data-tab='vehicles']")
    wait_for(lambda: hint.count() == 1, "the off-shift hint in the vehicles list")
    assert hint.inner_text() == f"off shift until {start}"
    page.screenshot(path=artifacts / "console-vehicle-off-shift.png")
    listed = page.locator("#vehicle-list [data-vehicle='van-1']")
    page.click("#vehicle-filters [data-f='idle']")  # off duty is not idle capacity
    wait_for(lambda: listed.count() == 0, "the van out of the idle vehicles")
    page.click("#vehicle-filters [data-f='service']")
    wait_for(lambda: listed.count() == 1, "the van among those out of service")
    page.click("#vehicle-filters [data-f='all']")

    # An order now: the van off shift gets no route for it.
    answer = httpx.post(f"{base}/orders", headers=AUTH, json=order_body(*EAST))
    assert answer.status_code == 201, answer.text
    order_id = answer.json()["order"]["id"]
    replan(base)
    assert planned_orders(base, "van-1") == []

    # Hours that include now: on shift, ending in about two hours; the order goes on the van.
    page.locator("#vehicle-list [data-vehicle='van-1']").click()
    start, end = fleet_clock(-1), fleet_clock(2)
    edit_hours(page, start, end)
    wait_for(lambda: registered_shift(base, "van-1") == {"start": start, "end": end}, "new hours")
    left = wait_for(
        lambda: re.fullmatch(
            rf"{span(start, end)} · on shift, ends in (\d) h (\d+) min", hours_line(page)
        ),
        "on shift",
    )
    assert 115 <= int(left[1]) * 60 + int(left[2]) <= 120, hours_line(page)
    replan(base)
    wait_for(lambda: order_id in planned_orders(base, "van-1"), "the order on the van's route")
    page.wait_for_selector(f"#detail-stops [data-order='{order_id}']")
    page.click(".tab[data-tab='vehicles']")
    wait_for(lambda: hint.count() == 0, "no off-shift hint")
    page.locator("#vehicle-list [data-vehicle='van-1']").click()

    # A shift that ends when it starts: the server's word in a toast, nothing changed.
    page.click("#hours-edit")
    page.fill("#hours-form [name=start]", "10:00")
    page.fill("#hours-form [name=end]", "10:00")
    # A ping re-renders the detail around the form, which keeps what is typed and the focus.
    page.evaluate("() => { document.querySelector('#detail-age').dataset.before = 'ping'; }")
    driver.ping(*VAN)
    page.wait_for_selector("#detail-age:not([data-before])")
    assert page.input_value("#hours-form [name=start]") == "10:00"
    assert page.evaluate("() => document.activeElement.name") == "end"
    page.screenshot(path=artifacts / "console-vehicle-hours-form.png")
    page.click("#hours-form button[type=submit]")
    toast = page.locator(".toast.bad", has_text="a shift must not end when it starts")
    toast.wait_for()
    assert registered_shift(base, "van-1") == {"start": start, "end": end}
    assert hours_line(page).startswith(f"{span(start, end)} · on shift")
    page.click("#hours-form button:has-text('Cancel')")
    assert page.locator("#hours-form").count() == 0

    # No hours: any time again.
    page.click("#hours-edit")
    page.click("#hours-clear")
    wait_for(lambda: hours_line(page) == "Any time", "any time")
    assert registered_shift(base, "van-1") is None
    assert page.locator("#detail-hours-zone").count() == 0
