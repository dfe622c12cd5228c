"""Finding an order in the console (``GET /orders/search``) the way a dispatcher is asked for it:
by the customer's name (accent-blind), a phone number however it is written, a street; ended
orders too. A result opens the order's detail; the clear button or Esc brings the list back; a
stale answer never overwrites a newer one. And alerts that name an order open it, from the
keyboard too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.conftest import AUTH
from tests.web.conftest import Driver, open_console, order_body, wait_for

VAN = (42.5078, 1.5211)  # Andorra la Vella
DROP = (42.5105, 1.5350)
NORTH = (42.5120, 1.5300)
WEST = (42.5040, 1.5150)

AINO = {"name": "Äinö Virtanen", "phone": "+358 40 123 4567"}
AINA = {"name": "Aina Puig", "phone": "(+376) 612-345"}
JOAN = {"name": "Joan Ribó", "phone": "+376 812 999"}
MARKUP = {"name": "Pere <b>Bold</b> & Co", "phone": ""}


# ---------- helpers ----------
def create(base: str, at: tuple[float, float], customer: dict[str, str], address: str) -> str:
    """A new order for ``customer`` at ``address`` (left unplanned); its id."""
    body = order_body(*at, customer=customer)
    body["dropoff"]["address"] = address
    answer = httpx.post(f"{base}/orders", headers=AUTH, json=body)
    assert answer.status_code == 201, answer.text
    order_id: str = answer.json()["order"]["id"]
    return order_id


def searches_of(page: Any) -> list[str]:
    """The queries the page sends to ``/orders/search`` from now on (filled in as it asks)."""
    asked: list[str] = []

    def note(request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.path == "/orders/search":
            asked.append(parse_qs(parts.query)["q"][0])

    page.on("request", note)
    return asked


def results(page: Any) -> list[str]:
    """The ids of the orders the search shows, in order."""
    ids: list[str] = page.locator("#order-results [data-order]").evaluate_all(
        "(items) => items.map((i) => i.dataset.order)"
    )
    return ids


def search(page: Any, text: str, expected: list[str]) -> None:
    """Type ``text`` in the search field; the results are ``expected`` (ids, newest first)."""
    page.fill("#order-search", text)
    wait_for(lambda: shown(page) == text, f"the answer to {text!r}")
    assert results(page) == expected, (text, expected)
    assert page.is_visible("#order-results")
    assert not page.is_visible("#order-list")


def shown(page: Any) -> str | None:
    """The query whose answer the page shows."""
    text: str | None = page.evaluate("() => fleetConsole.search.shown")
    return text


def answered(page: Any) -> int:
    """How many search answers came back to the page, stale ones included."""
    count: int = page.evaluate("() => fleetConsole.search.answered")
    return count


def showing_the_list(page: Any) -> bool:
    """The usual order list and its filters are shown, no search result."""
    return (
        page.is_visible("#order-list")
        and page.is_visible("#order-filters")
        and not page.is_visible("#order-results")
    )


# ---------- tests ----------
def test_the_dispatcher_finds_an_order_by_name_phone_or_street_and_opens_it(
    fleet_server: Callable[..., str], new_page: Callable[..., Any], artifacts: Path
) -> None:
    base = fleet_server()
    aino = create(base, DROP, AINO, "Carrer de la Vall 12")
    aina = create(base, NORTH, AINA, "Avinguda Meritxell 10")
    joan = create(base, WEST, JOAN, "Carrer Major 5")
    pere = create(base, DROP, MARKUP, "Plaça del Poble 1")
    cancelled = httpx.post(f"{base}/orders/{joan}/cancel", headers=AUTH, json={"reason": "test"})
    assert cancelled.status_code == 200, cancelled.text

    page = open_console(new_page, base)
    asked = searches_of(page)
    page.click(".tab[data-tab=orders]")
    page.wait_for_selector(f"#order-list [data-order='{aino}']")
    assert page.locator(f"#order-list [data-order='{joan}']").count() == 0  # ended: not listed

    # The name without its accents, in capitals; typed key by key: asked once, not per key.
    page.locator("#order-search").press_sequentially("AINO", delay=40)
    wait_for(lambda: results(page) == [aino], "Äinö found by 'AINO'")
    assert asked == ["AINO"], asked
    assert showing_the_list(page) is False
    found = page.inner_text(f"#order-results [data-order='{aino}']")
    for shown in (aino, "received", "Äinö Virtanen", "+358 40 123 4567", "Carrer de la Vall 12"):
        assert shown in found, (shown, found)
    page.screenshot(path=artifacts / "console-order-search.png")

    # Her phone written another way, a street, a word of two names, a cancelled order.
    search(page, "040 1234567", [aino])
    search(page, "612 345", [aina])
    search(page, "meritxell", [aina])
    search(page, "ai", [aina, aino])
    search(page, "ribo", [joan])
    badge = f"#order-results [data-order='{joan}'] .badge"
    assert page.inner_text(badge) == "cancelled"

    # A customer's markup stays text.
    search(page, "pere", [pere])
    assert "Pere <b>Bold</b> & Co" in page.inner_text("#order-results")
    assert page.locator("#order-results b").count() == 0

    # The cancelled order's detail, though it is in no list the console holds.
    search(page, "joan", [joan])
    page.click(f"#order-results [data-order='{joan}'] button")
    detail = f"#order-detail[data-order='{joan}']"
    page.wait_for_selector(f"{detail} .badge:text-is('cancelled')")
    assert "Joan Ribó · +376 812 999" in page.inner_text(detail)
    page.wait_for_selector(f"{detail} h3:has-text('Proof of delivery (0)')")  # loaded, no error
    page.screenshot(path=artifacts / "console-order-search-detail.png")
    # Closed: back to the results.
    page.click(f"{detail} button:has-text('Close')")
    page.wait_for_selector(f"#order-results [data-order='{joan}']")
    assert page.input_value("#order-search") == "joan"

    # The clear button: the open orders again, with their filters.
    page.click("#order-search-clear")
    wait_for(lambda: showing_the_list(page), "the order list back after clearing")
    assert page.input_value("#order-search") == ""
    assert page.is_visible(f"#order-list [data-order='{aina}']")
    assert not page.is_visible("#order-search-clear")

    # Nobody: said so.
    search(page, "nobody", [])
    assert page.inner_text("#order-results") == "No order matches."

    # Esc clears too.
    page.press("#order-search", "Escape")
    wait_for(lambda: showing_the_list(page), "the order list back after Esc")
    assert page.input_value("#order-search") == ""

    # One character: no question to the server, the list stays, a hint says why.
    before = list(asked)
    page.fill("#order-search", "a")
    page.wait_for_selector("#order-search-status:has-text('at least 2 characters')")
    assert showing_the_list(page)
    assert asked == before, asked

    # What the server refuses, it says: an accent typed as its own character is no letter once
    # folded, so this is one character for the server (400).
    refusal = httpx.get(f"{base}/orders/search", params={"q": "e\u0301"}, headers=AUTH)
    assert refusal.status_code == 400, refusal.text
    page.fill("#order-search", "e\u0301")
    status = page.locator("#order-search-status.bad")
    said = refusal.json()["error"]["message"]
    wait_for(lambda: status.count() and status.inner_text() == said, f"the server's {said!r}")
    assert asked[-1] == "e\u0301"
    assert results(page) == []
    assert page.locator("#order-results .empty").count() == 0  # not "No order matches"


def test_a_slow_answer_does_not_overwrite_a_newer_one(
    fleet_server: Callable[..., str], new_page: Callable[..., Any]
) -> None:
    """The answer to "ai" held back until the one to "aino" is shown: dropped when it comes."""
    base = fleet_server()
    aino = create(base, DROP, AINO, "Carrer de la Vall 12")
    aina = create(base, NORTH, AINA, "Avinguda Meritxell 10")
    page = open_console(new_page, base)
    held: list[Any] = []

    def hold(route: Any) -> None:
        if parse_qs(urlsplit(route.request.url).query)["q"] == ["ai"]:
            held.append(route)  # answered later, by the test
        else:
            route.continue_()

    page.route("**/orders/search?*", hold)
    page.click(".tab[data-tab=orders]")
    page.fill("#order-search", "ai")
    wait_for(lambda: page.evaluate("() => fleetConsole.search.asked") and held, "'ai' asked")
    search(page, "aino", [aino])
    assert answered(page) == 1
    held[0].continue_()
    wait_for(lambda: answered(page) == 2, "the answer to 'ai'")
    assert results(page) == [aino], f"the stale answer to 'ai' ({aina}, {aino}) is shown"
    assert page.input_value("#order-search") == "aino"


def test_an_alert_that_names_an_order_opens_it(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Driver],
    new_page: Callable[..., Any],
) -> None:
    """A delivered order rated 1 star: its low-rating alert is a button that opens the order's
    detail (the order is in no list the console holds), by click and by keyboard."""
    base = fleet_server()
    van = drivers(base, "van-1")
    van.ping(*VAN)
    body = order_body(*DROP, customer=AINA)
    made = httpx.post(f"{base}/orders", headers=AUTH, json=body)
    assert made.status_code == 201, made.text
    order_id = made.json()["order"]["id"]
    token = made.json()["tracking_token"]
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    assert van.report(order_id, "arrived") == "arrived"
    assert van.report(order_id, "delivered") == "delivered"
    rated = httpx.put(f"{base}/track/{token}/feedback", json={"rating": 1, "comment": "late"})
    assert rated.status_code == 200, rated.text

    page = open_console(new_page, base)
    page.click(".tab[data-tab=alerts]")
    alert = page.get_by_role("button", name=f"Order {order_id} rated 1 of 5")
    alert.wait_for()
    alert.click()
    detail = f"#order-detail[data-order='{order_id}']"
    page.wait_for_selector(f"{detail} .badge:text-is('delivered')")
    page.wait_for_selector(f"{detail} #order-rating:has-text('1 of 5')")
    # Closed: back to the alerts; then the same from the keyboard.
    page.click(f"{detail} button:has-text('Close')")
    alert.wait_for()
    assert page.is_visible("#pane-alerts")
    alert.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f"{detail} #order-rating")
