"""The customer rates the delivery on the tracking page once it is made (stars and a comment,
changed through "Change"), and the dispatcher reads it: in the order's detail, as a low-rating
alert, and in the KPI strip."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import AUTH
from tests.web.conftest import PHONE, Driver, open_console, order_body, wait_for

FAR = (42.5078, 1.5211)  # Andorra la Vella
DROP = (42.5105, 1.5350)
# Markup in a customer's words stays text, on both pages.
COMMENT = "Left in the rain <b>again</b> & the box was wet"
BETTER = "The driver called back: all good in the end"


def planned_order(base: str, van: Driver) -> dict[str, Any]:
    """An order with a customer, planned on ``van`` (the ``POST /orders`` answer)."""
    van.ping(*FAR)
    body = order_body(*DROP, customer={"name": "Aina Puig", "phone": "+376 612 345"})
    answer = httpx.post(f"{base}/orders", headers=AUTH, json=body)
    assert answer.status_code == 201, answer.text
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    made: dict[str, Any] = answer.json()
    return made


def deliver(van: Driver, order_id: str) -> None:
    """The van at the door, then the parcel delivered."""
    assert van.report(order_id, "arrived") == "arrived"
    assert van.report(order_id, "delivered") == "delivered"


def staff_feedback(base: str, order_id: str) -> dict[str, Any] | None:
    """The order's ``feedback`` as the dispatcher API gives it."""
    order = httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()
    found: dict[str, Any] | None = order["feedback"]
    return found


def rate(base: str, token: str, rating: int, comment: str = "") -> httpx.Response:
    """A rating sent through the tracking link, as from another device."""
    return httpx.put(f"{base}/track/{token}/feedback", json={"rating": rating, "comment": comment})


def open_tracking(new_page: Callable[..., Any], base: str, token: str) -> Any:
    """The tracking page of ``token`` on a phone, once its socket is live."""
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(f"{base}/t/{token}")
    page.wait_for_selector("#live.ok")
    return page


def pressed(page: Any) -> list[str]:
    """The aria-labels of the star buttons pressed."""
    labels: list[str] = page.locator("#feedback-stars button[aria-pressed=true]").evaluate_all(
        "(stars) => stars.map((s) => s.getAttribute('aria-label'))"
    )
    return labels


def test_the_customer_rates_the_delivery_and_the_dispatcher_reads_it(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Driver],
    new_page: Callable[..., Any],
    artifacts: Path,
) -> None:
    base = fleet_server()
    van = drivers(base, "van-1")
    made = planned_order(base, van)
    order_id = made["order"]["id"]
    page = open_tracking(new_page, base, made["tracking_token"])
    console = open_console(new_page, base)

    # Not delivered yet: nothing to rate.
    page.wait_for_selector("#timeline [data-step=processed].done")
    assert not page.is_visible("#feedback-card")
    assert page.locator("#feedback-card").count() == 1

    # Delivered: the page asks, by itself.
    deliver(van, order_id)
    page.wait_for_selector("#feedback-form", state="visible")
    assert "How was your delivery?" in page.inner_text("#feedback-card")
    assert not page.is_visible("#feedback-thanks")
    assert pressed(page) == []
    assert page.get_attribute("#feedback-comment", "maxlength") == "500"

    # The dispatcher has the delivered order's detail open: no rating in it yet.
    console.click(".tab[data-tab=orders]")
    console.click("#order-filters [data-f=delivered]")
    row = f"#order-list [data-order='{order_id}']"
    console.wait_for_selector(f"{row} .badge:text-is('delivered')")  # not the open list's row
    console.click(row)  # on no route: the order's detail
    console.wait_for_selector(f"#order-detail[data-order='{order_id}'] .badge:text-is('delivered')")
    assert console.locator("#order-rating").count() == 0

    # Two stars, a comment, Send.
    page.get_by_role("button", name="2 stars", exact=True).click()
    assert pressed(page) == ["2 stars"]
    lit = page.locator("#feedback-stars .star.on")
    assert lit.count() == 2
    page.fill("#feedback-comment", COMMENT)
    page.locator("#feedback-card").scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "tracking-feedback-form.png")
    page.click("#feedback-form button[type=submit]")
    page.wait_for_selector("#feedback-thanks", state="visible")
    assert not page.is_visible("#feedback-form")
    assert "Thanks for your feedback" in page.inner_text("#feedback-thanks")
    assert page.inner_text("#feedback-given") == "★★☆☆☆"
    assert page.get_attribute("#feedback-given", "aria-label") == "2 of 5 stars"
    assert page.is_visible("#feedback-text")
    assert page.inner_text("#feedback-text") == COMMENT
    assert page.locator("#feedback-text b").count() == 0, "the comment is text, not markup"
    page.screenshot(path=artifacts / "tracking-feedback-thanks.png")

    given = staff_feedback(base, order_id)
    assert given is not None
    assert (given["rating"], given["comment"]) == (2, COMMENT)

    # The open detail shows it by itself (the order event), the comment as text.
    console.wait_for_selector("#order-rating")
    assert console.inner_text("#order-rating").startswith("★★☆☆☆ 2 of 5")
    assert console.inner_text("#order-comment") == COMMENT
    assert console.locator("#order-comment b").count() == 0
    console.screenshot(path=artifacts / "console-order-rating.png")
    # A low rating: an alert, and the KPI.
    console.click(".tab[data-tab=alerts]")
    wait_for(
        lambda: f"Order {order_id} rated 2 of 5" in console.inner_text("#alert-list"),
        "the low-rating alert",
    )
    kpi = console.locator("#kpi-rating")
    wait_for(lambda: kpi.inner_text() == "2.0 ★", "the rating in the KPI strip")
    assert kpi.get_attribute("title") == "1 rating, 100% of deliveries"
    console.screenshot(path=artifacts / "console-feedback-alert.png")

    # Change: the form again, with what was given; five stars and another comment this time.
    page.click("#feedback-change")
    page.wait_for_selector("#feedback-form", state="visible")
    assert pressed(page) == ["2 stars"]
    assert page.input_value("#feedback-comment") == COMMENT
    page.get_by_role("button", name="5 stars", exact=True).click()
    assert pressed(page) == ["5 stars"]
    page.fill("#feedback-comment", BETTER)
    page.click("#feedback-form button[type=submit]")
    wait_for(lambda: page.inner_text("#feedback-given") == "★★★★★", "the new rating thanked for")
    assert page.is_visible("#feedback-thanks")
    assert page.is_visible("#feedback-text")
    assert page.inner_text("#feedback-text") == BETTER
    given = staff_feedback(base, order_id)
    assert given is not None
    assert (given["rating"], given["comment"]) == (5, BETTER)
    console.click(".tab[data-tab=orders]")
    console.click(row)
    console.wait_for_selector("#order-rating:has-text('5 of 5')")
    assert console.inner_text("#order-comment") == BETTER
    wait_for(lambda: kpi.inner_text() == "5.0 ★", "the new rating in the KPI strip")


def test_a_live_update_leaves_the_form_alone_and_a_given_rating_shows_as_thanks(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Driver],
    new_page: Callable[..., Any],
) -> None:
    """A rating sent from elsewhere while the customer writes does not overwrite the form,
    whether they rate for the first time or change a rating; a page opened once rated shows the
    thanks; the server's refusal (five changes already) is said, and what was written stays."""
    base = fleet_server()
    van = drivers(base, "van-1")
    made = planned_order(base, van)
    token = made["tracking_token"]
    deliver(van, made["order"]["id"])
    page = open_tracking(new_page, base, token)
    mine = "Actually the box was dented"

    def kept(stars: str) -> None:
        """The form still shows what the customer chose and wrote."""
        assert page.is_visible("#feedback-form")
        assert not page.is_visible("#feedback-thanks")
        assert page.input_value("#feedback-comment") == mine
        assert pressed(page) == [stars]

    def given_elsewhere(comment: str) -> None:
        wait_for(
            lambda: page.evaluate("() => fleetTracking.view.feedback?.comment") == comment,
            f"the live update with {comment!r}",
        )

    # Rating for the first time.
    page.wait_for_selector("#feedback-form", state="visible")
    page.get_by_role("button", name="3 stars", exact=True).click()
    page.fill("#feedback-comment", mine)
    assert rate(base, token, 4, "Quick and friendly").status_code == 200  # change 1
    given_elsewhere("Quick and friendly")
    kept("3 stars")

    # Opened again: the thanks for what was given, read-only until "Change".
    page.reload()
    page.wait_for_selector("#feedback-thanks", state="visible")
    assert not page.is_visible("#feedback-form")
    assert page.inner_text("#feedback-given") == "★★★★☆"
    assert page.is_visible("#feedback-text")
    assert page.inner_text("#feedback-text") == "Quick and friendly"

    # Changing it.
    page.click("#feedback-change")
    page.wait_for_selector("#feedback-form", state="visible")
    assert pressed(page) == ["4 stars"]
    page.get_by_role("button", name="3 stars", exact=True).click()
    page.fill("#feedback-comment", mine)
    assert rate(base, token, 1, "from my other phone").status_code == 200  # change 2
    given_elsewhere("from my other phone")
    kept("3 stars")

    for rating in (2, 3, 4):  # changes 3 to 5, without a comment: the last allowed
        assert rate(base, token, rating).status_code == 200
    page.click("#feedback-form button[type=submit]")
    page.wait_for_selector("#feedback-state:has-text('changed 5 times already')")
    assert page.inner_text("#feedback-state").startswith("Not sent:")
    kept("3 stars")
    given = staff_feedback(base, made["order"]["id"])
    assert given is not None
    assert (given["rating"], given["comment"]) == (4, "")

    # Cancel: back to the thanks, for what the server has (no comment: none shown).
    page.click("#feedback-keep")
    wait_for(lambda: page.inner_text("#feedback-given") == "★★★★☆", "the last rating given")
    assert page.is_visible("#feedback-thanks")
    assert not page.is_visible("#feedback-form")
    assert not page.is_visible("#feedback-text")
