"""Proof of delivery in the browser: the driver photographs and has the customer sign, the
dispatcher sees both in the order's detail, the customer on the tracking page."""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import AUTH
from tests.web.conftest import PHONE, open_console, open_phone, order_body, wait_for

START = (42.5078, 1.5211)  # Andorra la Vella
DROP_A = (42.5105, 1.5350)
DROP_B = (42.5063, 1.5300)
PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"

# A test picture drawn in the browser: gradients and shapes, JPEG-encoded (a camera's photo).
MAKE_JPEG = """([width, height]) => {
  const c = document.createElement("canvas");
  c.width = width; c.height = height;
  const x = c.getContext("2d");
  const g = x.createLinearGradient(0, 0, width, height);
  g.addColorStop(0, "#8b5e34"); g.addColorStop(1, "#e9d8a6");
  x.fillStyle = g; x.fillRect(0, 0, width, height);
  x.fillStyle = "#1d3557"; x.fillRect(width * 0.3, height * 0.15, width * 0.4, height * 0.8);
  x.fillStyle = "#f1c40f"; x.beginPath();
  x.arc(width * 0.62, height * 0.55, Math.max(2, width * 0.02), 0, 2 * Math.PI); x.fill();
  return c.toDataURL("image/jpeg", 0.92).split(",")[1];
}"""
# What the signature pad would send unsigned: a white PNG of its size.
BLANK_PAD_PNG = """() => {
  const pad = document.querySelector("#signature");
  const c = document.createElement("canvas");
  c.width = pad.width; c.height = pad.height;
  const x = c.getContext("2d");
  x.fillStyle = "#fff"; x.fillRect(0, 0, c.width, c.height);
  return {size: atob(c.toDataURL("image/png").split(",")[1]).length, width: c.width,
          height: c.height};
}"""
# The dark pixels of a loaded <img> (ink on a signature).
DARK_PIXELS = """(img) => {
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const x = c.getContext("2d");
  x.drawImage(img, 0, 0);
  const d = x.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 128 && d[i] + d[i + 1] + d[i + 2] < 384) n++;
  return n;
}"""
LOADED_WIDTHS = "(imgs) => imgs.map((i) => (i.complete ? i.naturalWidth : 0))"
# Whether an image URL still loads (an object URL does not once revoked). Not fetch(): the
# pages' Content-Security-Policy allows blob: images but no blob: fetches.
IMAGE_LOADS = """(url) => {
  const img = new Image();
  img.src = url;
  return img.decode().then(() => true, () => false);
}"""


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from a JPEG's start-of-frame segment."""
    assert data.startswith(JPEG)
    i = 2
    while i + 9 < len(data):
        assert data[i] == 0xFF, f"not a JPEG marker at byte {i}"
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise AssertionError("no start-of-frame segment in the JPEG")


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG)
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def create(base: str, place: tuple[float, float]) -> dict[str, Any]:
    answer = httpx.post(f"{base}/orders", headers=AUTH, json=order_body(*place))
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def status_of(base: str, order_id: str) -> str:
    status: str = httpx.get(f"{base}/orders/{order_id}", headers=AUTH).json()["status"]
    return status


def proofs_of(base: str, order_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/orders/{order_id}/proofs", headers=AUTH)
    assert answer.status_code == 200, answer.text
    listed: list[dict[str, Any]] = answer.json()
    return listed


def audit_note(base: str, order_id: str, status: str) -> str:
    """The reason noted with the order's step to ``status`` (where a stop's proof is named)."""
    audit = httpx.get(f"{base}/orders/{order_id}/audit", headers=AUTH).json()
    return next(str(e.get("reason") or "") for e in audit if e["status"] == status)


def phone_of_driver(new_page: Callable[..., Any], base: str, vehicle_id: str) -> Any:
    """A new vehicle's driver page on a phone at START, once the server knows where it is."""
    vehicle = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": vehicle_id}).json()
    phone = open_phone(new_page, base, vehicle["token"], START)

    def located() -> bool:
        fleet = httpx.get(f"{base}/web/fleet", headers=AUTH).json()["vehicles"]
        return any(v["id"] == vehicle_id and v.get("position") for v in fleet)

    wait_for(located, "the van's position on the server")
    return phone


def jpeg_made_in(page: Any, width: int, height: int) -> bytes:
    return base64.b64decode(page.evaluate(MAKE_JPEG, [width, height]))


def sign(page: Any) -> None:
    """Scribble a signature on the pad with the mouse (pointer events)."""
    box = page.locator("#signature").bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + w * 0.08, y + h * 0.6)
    page.mouse.down()
    for i in range(1, 15):
        page.mouse.move(x + w * (0.08 + 0.06 * i), y + h * (0.25 if i % 2 else 0.75), steps=4)
    page.mouse.up()


def test_a_signed_and_photographed_delivery_is_shown_to_the_dispatcher_and_the_customer(
    fleet_server: Callable[..., str], new_page: Callable[..., Any], artifacts: Path
) -> None:
    base = fleet_server()
    phone = phone_of_driver(new_page, base, "van-1")
    created = create(base, DROP_A)
    order_id = created["order"]["id"]
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()
    phone.wait_for_selector(f"text=Deliver {order_id}")

    # Delivered opens the proof sheet: a photo (a 6 MP one, shrunk on the phone) and a signature.
    phone.click("#actions [data-event=delivered]")
    phone.wait_for_selector("#proof-form")
    photo = jpeg_made_in(phone, 3000, 2000)
    phone.set_input_files(
        "#proof-photo", files=[{"name": "door.jpg", "mimeType": "image/jpeg", "buffer": photo}]
    )
    phone.wait_for_selector("#proof-photo-preview")
    sign(phone)
    blank = phone.evaluate(BLANK_PAD_PNG)
    phone.screenshot(path=artifacts / "driver-proof-sheet.png")
    phone.click("#proof-deliver")
    wait_for(lambda: status_of(base, order_id) == "delivered", "the delivery to be recorded")
    phone.wait_for_selector("text=No stops left")
    assert phone.locator("#proof-form").is_hidden()

    # Both proofs are the order's, from the van, and the delivery names them.
    proofs = {p["kind"]: p for p in proofs_of(base, order_id)}
    assert sorted(proofs) == ["photo", "signature"]
    assert {p["by"] for p in proofs.values()} == {"vehicle:van-1"}
    note = audit_note(base, order_id, "delivered")
    assert proofs["photo"]["id"] in note
    assert proofs["signature"]["id"] in note

    def image(kind: str) -> httpx.Response:
        url = f"{base}/orders/{order_id}/proofs/{proofs[kind]['id']}"
        answer = httpx.get(url, headers=AUTH)
        assert answer.status_code == 200
        return answer

    signature = image("signature")
    assert signature.headers["content-type"] == "image/png"
    assert png_size(signature.content) == (blank["width"], blank["height"])
    assert len(signature.content) > blank["size"], "the signature is as small as a blank pad"
    shrunk = image("photo")
    assert shrunk.headers["content-type"] == "image/jpeg"
    assert jpeg_size(shrunk.content) == (1600, 1067)  # 3000 by 2000: 1600 px on its long side
    assert len(shrunk.content) < 1_048_576 // 2

    # The dispatcher opens the delivered order: both proofs as thumbnails.
    console = open_console(new_page, base)
    console.click(".tab[data-tab=orders]")
    console.click("#order-filters [data-f=delivered]")
    console.click(f"#order-list [data-order='{order_id}']")  # on no route: the order's detail
    thumbs = console.locator("#order-proofs img")
    wait_for(
        lambda: thumbs.count() == 2 and all(thumbs.evaluate_all(LOADED_WIDTHS)),
        "the two proofs' thumbnails in the order's detail",
    )
    ink = console.locator("#order-proofs img.signature").evaluate(DARK_PIXELS)
    assert ink > 200, f"the signature has only {ink} dark pixels"
    # A proof added while the detail is open shows up by itself (order_proof event).
    more = httpx.post(
        f"{base}/orders/{order_id}/proofs?kind=signature",
        headers={**AUTH, "Content-Type": "image/png"},
        content=signature.content,
    )
    assert more.status_code == 201, more.text
    wait_for(
        lambda: thumbs.count() == 3 and all(thumbs.evaluate_all(LOADED_WIDTHS)),
        "the third proof in the open detail",
    )
    console.screenshot(path=artifacts / "console-order-proofs.png")
    console.click("#order-proofs img.photo")
    large = console.locator("#proof-large img")
    wait_for(lambda: large.evaluate("(i) => i.complete && i.naturalWidth") == 1600, "the photo")
    console.screenshot(path=artifacts / "console-proof-large.png")
    console.keyboard.press("Escape")
    assert console.locator("#proof-large").count() == 0
    blob_url = console.get_attribute("#order-proofs img.photo", "src")
    assert blob_url is not None
    assert blob_url.startswith("blob:")
    assert console.evaluate(IMAGE_LOADS, blob_url)
    console.click("#pane-detail button:has-text('Close')")
    assert not console.evaluate(IMAGE_LOADS, blob_url), "the detail's object URLs outlive it"

    # The customer sees them too.
    track = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    track.goto(f"{base}/t/{created['tracking_token']}")
    shown = track.locator("#proof-list img")
    wait_for(
        lambda: shown.count() == 3 and all(shown.evaluate_all(LOADED_WIDTHS)),
        "the proofs on the tracking page",
    )
    assert "Proof of delivery" in track.inner_text("#proofs")
    assert track.locator("#proof-list img.signature").first.evaluate(DARK_PIXELS) > 200
    track.wait_for_timeout(300)
    track.screenshot(path=artifacts / "tracking-proofs-phone.png", full_page=True)


def test_a_refused_upload_reports_nothing_and_a_failure_can_carry_a_photo(
    fleet_server: Callable[..., str], new_page: Callable[..., Any], artifacts: Path
) -> None:
    """On a server taking images of at most 4 KiB: a small photo of the door goes with a failed
    stop; a signature (~13 KB) is refused, said, and the stop stays open until delivered without."""
    base = fleet_server(proof_max_bytes=4096, failed_policy="return")
    phone = phone_of_driver(new_page, base, "van-1")
    orders = {create(base, place)["order"]["id"] for place in (DROP_A, DROP_B)}
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()

    def next_order() -> str:
        title = phone.inner_text("#next-title")
        return title.removeprefix("Deliver ") if title.removeprefix("Deliver ") in orders else ""

    first = wait_for(next_order, "the first drop-off on the phone")
    phone.click("#actions [data-event=failed]")
    door = jpeg_made_in(phone, 32, 24)  # ~1 KB once re-encoded on the phone
    phone.set_input_files(
        "#door-photo", files=[{"name": "door.jpg", "mimeType": "image/jpeg", "buffer": door}]
    )
    phone.wait_for_selector("#door-photo-preview")
    phone.select_option("#fail-form [name=reason]", "customer_absent")
    phone.screenshot(path=artifacts / "driver-failure-photo.png")
    phone.click("#fail-form [type=submit]")
    wait_for(lambda: status_of(base, first) == "returned", "the failure to be recorded")
    [door_proof] = proofs_of(base, first)
    assert door_proof["kind"] == "photo"
    assert door_proof["id"] in audit_note(base, first, "failed")

    [second] = orders - {first}
    phone.wait_for_selector(f"text=Deliver {second}")
    phone.click("#actions [data-event=delivered]")
    sign(phone)
    phone.click("#proof-deliver")
    toast = phone.wait_for_selector(".toast.bad")
    assert "The signature was not sent" in toast.inner_text()
    assert "at most 4096" in toast.inner_text()  # the server's own words
    phone.screenshot(path=artifacts / "driver-proof-refused.png")
    phone.wait_for_timeout(1000)  # a stop event, had one been sent, would be recorded by now
    assert status_of(base, second) != "delivered"
    assert phone.locator("#proof-form").is_visible(), "the sheet stays, to try again"
    assert proofs_of(base, second) == []

    phone.click("#signature-clear")
    phone.click("#proof-deliver")  # no proof at all: the stop alone
    wait_for(lambda: status_of(base, second) == "delivered", "the delivery without a proof")
    assert proofs_of(base, second) == []
    assert "proof" not in audit_note(base, second, "delivered")
    phone.wait_for_selector("text=No stops left")
