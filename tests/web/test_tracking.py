"""The customer's tracking page: live ETA, the vehicle only once close, nothing of other orders."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from tests.conftest import AUTH, scaled
from tests.web.conftest import DESKTOP, PHONE, order_body, wait_for

FAR = (42.5078, 1.5211)  # Andorra la Vella
DROP_A = (42.5440, 1.5137)  # about 4 km north
DROP_B = (42.5105, 1.5350)


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = (b[0] - a[0]) * 111_320
    dlon = (b[1] - a[1]) * 111_320 * math.cos(math.radians(a[0]))
    return math.hypot(dlat, dlon)


def point_before_end(line: list[list[float]], distance_m: float) -> tuple[float, float]:
    """The point of a route geometry ``distance_m`` before its end (along the road)."""
    walked = 0.0
    for i in range(len(line) - 1, 0, -1):
        walked += metres((line[i][0], line[i][1]), (line[i - 1][0], line[i - 1][1]))
        if walked >= distance_m:
            return (line[i - 1][0], line[i - 1][1])
    return (line[0][0], line[0][1])


def create(base: str, place: tuple[float, float], **extra: Any) -> dict[str, Any]:
    answer = httpx.post(f"{base}/orders", headers=AUTH, json=order_body(*place, **extra))
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def test_the_tracking_page_shows_a_live_eta_and_the_vehicle_only_once_close(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Any],
    new_page: Callable[..., Any],
    artifacts: Path,
) -> None:
    base = fleet_server(tracking_visible_stops=0, tracking_visible_m=1500, tracking_visible_min=1)
    van = drivers(base, "van-1")
    van.ping(*FAR, ago_s=120)
    created = create(base, DROP_A)
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(f"{base}/t/{created['tracking_token']}")
    page.wait_for_selector("#eta[data-eta]")
    page.wait_for_selector("#live.ok")
    first_eta = int(page.get_attribute("#eta", "data-eta") or 0)
    first_text = page.inner_text("#eta")
    assert first_eta > time.time() * 1000
    assert page.locator("#vehicle-marker").count() == 0, "the vehicle is 4 km away: hidden"
    note = page.inner_text("#mapnote")
    assert "shaded area" in note
    # Only the rules in force: no stop count (0: off), the ETA (due in over a minute), the distance.
    assert "due within 1 min or the driver is within 1.5 km" in note, note
    assert "stop" not in note, note
    assert "Confirmed, driver assigned" in page.inner_text("#timeline")
    page.wait_for_timeout(500)
    page.screenshot(path=artifacts / "tracking-far-phone.png")

    # The van drives to 1 km before the drop-off (on its road): shown, and the ETA moves up.
    geometry = httpx.get(f"{base}/web/routes/van-1", headers=AUTH).json()["geometry"]
    near = point_before_end(geometry, 1000)
    assert metres(near, DROP_A) < 1500
    van.ping(*near)
    page.wait_for_selector("#vehicle-marker")
    wait_for(
        lambda: int(page.get_attribute("#eta", "data-eta") or 0) < first_eta - 60_000,
        "the ETA to come forward",
    )
    assert page.inner_text("#eta") != first_text
    assert "away" in page.inner_text("#mapnote")
    page.wait_for_timeout(500)
    page.screenshot(path=artifacts / "tracking-phone.png")
    desktop = new_page(viewport=DESKTOP)
    desktop.goto(f"{base}/t/{created['tracking_token']}")
    desktop.wait_for_selector("#vehicle-marker")
    desktop.wait_for_timeout(800)
    desktop.screenshot(path=artifacts / "tracking-desktop.png")


def test_a_tracking_token_reads_nothing_of_another_order(
    fleet_server: Callable[..., str], drivers: Callable[..., Any]
) -> None:
    base = fleet_server()
    drivers(base, "van-1").ping(*FAR)
    a = create(base, DROP_A, customer={"name": "Alice Aalto", "phone": "+376 111 111"})
    b = create(base, DROP_B, customer={"name": "Bruno Berg", "phone": "+376 222 222"},
               reference="REF-B")  # fmt: skip
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    secrets_of_b = [b["order"]["id"], "Bruno", "222 222", "REF-B", str(DROP_B[0]), str(DROP_B[1])]
    personal = ["Alice", "111 111"]  # not even the customer's own name and phone

    view = httpx.get(f"{base}/track/{a['tracking_token']}")
    assert view.status_code == 200
    assert view.json()["status"] == "processed"
    for secret in secrets_of_b + personal:
        assert secret not in view.text
    # The tracking token is no key to the dispatcher API.
    bearer = {"Authorization": f"Bearer {a['tracking_token']}"}
    assert httpx.get(f"{base}/orders/{b['order']['id']}", headers=bearer).status_code == 403
    assert httpx.get(f"{base}/orders/{a['order']['id']}", headers=bearer).status_code == 403

    url = base.replace("http", "ws", 1) + f"/ws/track/{a['tracking_token']}"
    with connect(url) as socket:
        frames = [socket.recv(timeout=scaled(10))]
        cancel = httpx.post(f"{base}/orders/{b['order']['id']}/cancel", headers=AUTH, json={})
        assert cancel.status_code == 200
        deadline = time.monotonic() + scaled(3)
        while time.monotonic() < deadline:
            try:
                frames.append(socket.recv(timeout=0.5))
            except TimeoutError:
                continue
    for frame in frames:
        assert json.loads(frame)["type"] == "track"
        for secret in secrets_of_b + personal:
            assert secret not in frame


def test_an_unknown_tracking_link_says_so(
    fleet_server: Callable[..., str], new_page: Callable[..., Any], artifacts: Path
) -> None:
    base = fleet_server()
    answer = httpx.get(f"{base}/track/not-a-real-token")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = new_page(viewport=viewport)
        response = page.goto(f"{base}/t/not-a-real-token")
        assert response is not None
        assert response.status == 404
        assert "unknown or has expired" in page.inner_text("#unknown-link")
        page.screenshot(path=artifacts / f"tracking-unknown-{name}.png")


def test_the_customer_leaves_instructions_for_the_driver_until_the_van_is_at_the_door(
    fleet_server: Callable[..., str], drivers: Callable[..., Any], new_page: Callable[..., Any]
) -> None:
    base = fleet_server()
    van = drivers(base, "van-1")
    van.ping(*FAR)
    created = create(base, DROP_A)
    order_id = created["order"]["id"]
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(f"{base}/t/{created['tracking_token']}")
    page.wait_for_selector("#instructions-form:not(.hidden)")
    page.fill("#instructions", "Leave it with the neighbour at B 12")
    page.click("#instructions-form button[type=submit]")
    page.wait_for_selector("#instructions-state:has-text('Saved')")
    staff = httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()
    assert staff["instructions"] == "Leave it with the neighbour at B 12"
    details = httpx.get(
        f"{base}/orders/{order_id}/stop-details", headers={"Authorization": f"Bearer {van.token}"}
    ).json()
    assert details["instructions"] == "Leave it with the neighbour at B 12", "the driver reads it"

    # At the door: too late to change them; the page shows what the driver has.
    assert van.report(order_id, "arrived") == "arrived"
    page.wait_for_selector("#instructions-form.hidden", state="attached")
    wait_for(lambda: page.is_visible("#instructions-text"), "the instructions shown, read-only")
    assert page.inner_text("#instructions-text") == "Leave it with the neighbour at B 12"
