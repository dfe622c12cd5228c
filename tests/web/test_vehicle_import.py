"""A fleet from a CSV file in the console: the vehicles registered and listed, each driver link
shown once (and downloadable as a CSV file) and working on a phone; a file with errors lists
them by row and column, as text, and registers nothing."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import AUTH
from tests.web.conftest import ANDORRA_LA_VELLA, open_console, open_phone, wait_for

FLEET = (
    b"id,name,capacity_parcels,capacity_kg,skills,depot_lat,depot_lon,shift_start,shift_end\n"
    b"van-a,Van A,40,800,cold_chain,42.5078,1.5211,,\n"
    b"van-b,Van B,30,,,,,,\n"
)
# Two wrong rows (a negative capacity; a status with markup, which must stay text) and a right
# one: nothing is registered.
TYPED = (
    b"id,capacity_parcels,status\nvan-c,10,available\nvan-d,-1,available\nvan-e,5,<b>parked</b>\n"
)
# 25 ids with a space: 20 errors listed, then how many more.
SPACED = b"id\n" + b"".join(b"van %d\n" % i for i in range(25))


def registry(base: str) -> list[str]:
    answer = httpx.get(f"{base}/vehicles/registry", headers=AUTH)
    answer.raise_for_status()
    return sorted(v["id"] for v in answer.json())


def choose(page: Any, body: bytes) -> None:
    """Choose ``body`` as the CSV file to import."""
    file = {"name": "fleet.csv", "mimeType": "text/csv", "buffer": body}
    page.set_input_files("#vehicle-import-file", files=[file])


def listed_errors(page: Any) -> list[str]:
    found: list[str] = page.locator("#vehicle-import-errors li").all_inner_texts()
    return found


def test_a_fleet_is_imported_from_a_csv_file_with_a_driver_link_each(
    fleet_server: Callable[..., str], new_page: Callable[..., Any]
) -> None:
    base = fleet_server()
    other = open_console(new_page, base)  # another dispatcher's console, open all along
    page = open_console(new_page, base)
    page.evaluate(
        "() => { window.revoked = []; const revoke = URL.revokeObjectURL.bind(URL);"
        " URL.revokeObjectURL = (url) => { window.revoked.push(url); revoke(url); }; }"
    )
    choose(page, FLEET)
    page.wait_for_selector(".toast:has-text('2 vehicles registered')")
    assert registry(base) == ["van-a", "van-b"]
    for vid in ("van-a", "van-b"):  # the fleet list reloaded, and the other console's too
        page.wait_for_selector(f"#vehicle-list li[data-vehicle='{vid}']")
        other.wait_for_selector(f"#vehicle-list li[data-vehicle='{vid}']")

    # Each new vehicle with its driver link, shown once: the box says so and stays.
    box = page.locator("#vehicle-import")
    assert "shown only here and only once" in box.inner_text()
    shown = {
        li.get_attribute("data-vehicle"): li.locator("input").input_value()
        for li in page.locator("#vehicle-import-links li").all()
    }
    assert sorted(shown) == ["van-a", "van-b"]
    for url in shown.values():
        assert url.startswith(f"{base}/driver#token=")
        assert len(url.split("#token=")[1]) == 32

    # The links as a CSV file (the object URL revoked afterwards).
    with page.expect_download() as info:
        page.click("#vehicle-import-download")
    download = info.value
    assert download.suggested_filename == "driver-links.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert {r["id"]: r["driver_link"] for r in rows} == shown
    wait_for(lambda: download.url in page.evaluate("() => window.revoked"), "the URL revoked")

    # A link really is its vehicle's: the driver's page connects with it.
    open_phone(new_page, base, shown["van-b"].split("#token=")[1], ANDORRA_LA_VELLA)

    page.click("#vehicle-import-dismiss")
    assert box.is_hidden()
    assert page.locator("#vehicle-import-links").count() == 0, "the tokens are not kept around"

    # A file with errors: listed by row and column, as text; nothing registered.
    choose(page, TYPED)
    wait_for(lambda: len(listed_errors(page)) == 2, "the file's errors listed")
    errors = listed_errors(page)
    assert errors[0].startswith("Row 3, capacity_parcels: ")
    assert errors[1].startswith("Row 4, status: ")
    assert "<b>parked</b>" in errors[1], "the file's text stays text"
    assert box.locator("b", has_text="parked").count() == 0
    assert "no vehicle was registered" in box.inner_text()
    assert page.locator("#vehicle-import-links").count() == 0
    assert registry(base) == ["van-a", "van-b"]

    # At most 20 errors listed, then how many more.
    choose(page, SPACED)
    wait_for(lambda: len(listed_errors(page)) == 21, "the first 20 errors listed")
    errors = listed_errors(page)
    assert errors[0].startswith("Row 2, id: ")
    assert errors[19].startswith("Row 21, id: ")
    assert errors[20] == "and 5 more"
    assert registry(base) == ["van-a", "van-b"]
    assert page.locator("#vehicle-list li[data-vehicle]").count() == 2
