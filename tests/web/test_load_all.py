"""Several parcels to load at one place, one tap: a van at its depot has a pickup stop for each
parcel loaded there, all at the same place, and the driver's page offers "Picked up all N here"
beside the usual actions (for parcels collected from a van out of service: "Collected all N
here"). The tap sends one ordinary stop event per stop, each with its own seq, and waits for
the answers; each stop leaves the list with its own ack, and one refused stays there, said as a
single report's refusal is. A pickup standing alone, and a drop-off, have no such button."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import AUTH
from tests.web.conftest import Driver, open_phone, wait_for
from tests.web.test_returns import actions, located, order

DEPOT = (42.5110, 1.5290)  # a car park north-east of Andorra la Vella (tests/dispatch)
SHOP = (42.5115, 1.5290)  # on the next street: its road 55 m from the depot's
DROPS = [(42.5105, 1.5350), (42.5440, 1.5137), (42.4990, 1.5080)]  # (tests/dispatch)
ONE_ADDRESS = [DROPS[0], DROPS[0], DROPS[1]]  # two parcels for the same door
NEXT_DOOR = DEPOT  # a customer next to the depot
BROKEN_AT = (42.5078, 1.5211)  # Andorra la Vella: where van-1 breaks down
VAN_2 = (42.5063, 1.5215)  # the van sent for its parcels, 170 m away
ALL_ACTIONS = ["arrived", "picked_up", "delivered", "failed"]
VIOLET, TEAL = "rgb(124, 58, 237)", "rgb(15, 118, 110)"  # a pickup's colour, a transfer's

# The page's stop events are recorded and held back: the test lets them go one by one.
HOLD = """() => {
  const t = window.fleetTest = {held: [], send: WebSocket.prototype.send};
  WebSocket.prototype.send = function (data) {
    const msg = JSON.parse(data);
    if (msg.type !== "stop") return t.send.call(this, data);
    t.held.push({socket: this, msg});
  };
}"""
# Let the i-th held stop event go; with ``unknown``, for an order that does not exist (the
# server refuses it, as it does a stop event it cannot take, with an error naming its seq).
RELEASE = """([i, unknown]) => {
  const {socket, msg} = fleetTest.held[i];
  fleetTest.send.call(socket, JSON.stringify(unknown ? {...msg, order_id: "o-unknown"} : msg));
}"""
UNHOLD = "() => { WebSocket.prototype.send = fleetTest.send; }"
# The connection lost, and not back until the test says so (a socket that never opens).
CUT = """() => {
  const Stuck = class extends EventTarget { static OPEN = 1; readyState = 0; send() {} close() {} };
  window.fleetCut = {socket: WebSocket, Stuck};
  window.WebSocket = Stuck;
  fleetDriver.socket.close();
}"""
MEND = """() => {
  window.WebSocket = fleetCut.socket;
  fleetDriver.socket.readyState = 3;
  window.dispatchEvent(new Event("online"));
}"""


def window(start_min: float, end_min: float) -> dict[str, str]:
    now = dt.datetime.now(dt.UTC)
    return {
        "start": (now + dt.timedelta(minutes=start_min)).isoformat(),
        "end": (now + dt.timedelta(minutes=end_min)).isoformat(),
    }


def parcel(
    drop: tuple[float, float],
    when: dict[str, str],
    pickup: tuple[float, float] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An order of one parcel (loaded at the depot without a ``pickup`` place)."""
    body = {"dropoff": {"lat": drop[0], "lon": drop[1]}, "window": when, "size": {"parcels": 1}}
    if pickup is not None:
        body["pickup"] = {"lat": pickup[0], "lon": pickup[1]}
    return {**body, **extra}


def new_van(base: str, vehicle_id: str, **extra: Any) -> str:
    """A van whose depot is DEPOT: its driver token."""
    body = {"id": vehicle_id, "depot": {"lat": DEPOT[0], "lon": DEPOT[1]}, **extra}
    answer = httpx.post(f"{base}/vehicles", headers=AUTH, json=body)
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


def van_at_depot(base: str, new_page: Callable[..., Any], **extra: Any) -> Any:
    """van-1, whose depot is DEPOT, planned (its driver's page there, located); its phone.

    Open the orders first: the planner then plans them in one round, as it plans a morning's
    parcels (a round between two orders would keep the first order's stops as they are)."""
    phone = open_phone(new_page, base, new_van(base, "van-1", **extra), DEPOT)
    wait_for(lambda: located(base, "van-1"), "the van's position on the server")
    replan(base)
    return phone


def create(base: str, body: dict[str, Any]) -> str:
    answer = httpx.post(f"{base}/orders", headers=AUTH, json=body)
    assert answer.status_code == 201, answer.text
    order_id: str = answer.json()["order"]["id"]
    return order_id


def replan(base: str) -> None:
    httpx.post(f"{base}/dispatch/replan", headers=AUTH).raise_for_status()


def stops(phone: Any) -> list[tuple[str, str]]:
    """The phone's list of stops: (kind, order id) each, in order."""
    found: list[list[str]] = phone.eval_on_selector_all(
        "#stops li.stop:not(.depot)",
        r"(ls) => ls.map((l) => [l.classList[1], l.innerText.match(/\bo-[\w-]+/)[0]])",
    )
    return [(kind, order_id) for kind, order_id in found]


def pickups(phone: Any) -> list[str]:
    return [order_id for kind, order_id in stops(phone) if kind == "pickup"]


def load_all(phone: Any) -> dict[str, Any] | None:
    """The "all here" button as shown: its text and whether it can be tapped (None: not shown)."""
    found: dict[str, Any] | None = phone.eval_on_selector(
        "#run-all",
        "(b) => b.offsetParent === null ? null : {text: b.innerText, enabled: !b.disabled}",
    )
    return found


def colour(phone: Any) -> str:
    found: str = phone.eval_on_selector("#run-all", "(b) => getComputedStyle(b).backgroundColor")
    return found


def held(phone: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = phone.evaluate("() => fleetTest.held.map((h) => h.msg)")
    return messages


def status(base: str, order_id: str) -> str:
    found: str = order(base, order_id)["status"]
    return found


def test_a_van_at_its_depot_loads_all_its_parcels_with_one_tap(
    fleet_server: Callable[..., str], new_page: Callable[..., Any], artifacts: Path
) -> None:
    base = fleet_server()
    # Two parcels for one address (the nearer: delivered first), one for elsewhere.
    ids = [create(base, parcel(drop, window(0, 180))) for drop in ONE_ADDRESS]
    phone = van_at_depot(base, new_page)

    # Three pickups at the depot, one after the other: one button for all three.
    phone.wait_for_selector("#run-all:text-is('Picked up all 3 here')")
    assert phone.inner_text("#next-title").startswith("Pick up o-")
    assert sorted(order_id for _, order_id in stops(phone)[:3]) == sorted(ids)
    assert load_all(phone) == {"text": "Picked up all 3 here", "enabled": True}
    assert actions(phone) == ALL_ACTIONS  # (the usual actions, beside it)
    assert colour(phone) == VIOLET
    phone.screenshot(path=artifacts / "driver-load-all.png")

    # The tap: one ordinary stop event per stop, each with its own seq; the button waits.
    phone.evaluate(HOLD)
    phone.click("#run-all")
    sent = held(phone)
    assert [set(m) for m in sent] == [{"type", "seq", "order_id", "event"}] * 3
    assert {m["type"] for m in sent} == {"stop"}
    assert {m["event"] for m in sent} == {"picked_up"}
    assert sorted(m["order_id"] for m in sent) == sorted(ids)
    assert len({m["seq"] for m in sent}) == 3
    assert load_all(phone) == {"text": "Picked up all 3 here", "enabled": False}

    # Each stop leaves the list with its own ack (the planner may meanwhile list the others in
    # another order: they are at the same place).
    first, second, third = (m["order_id"] for m in sent)
    phone.evaluate(RELEASE, [0, False])
    wait_for(lambda: sorted(pickups(phone)) == sorted([second, third]), "the first one to go")
    assert status(base, first) == "picked_up"
    assert load_all(phone) == {"text": "Picked up all 2 here", "enabled": False}  # still waiting
    phone.evaluate(RELEASE, [1, False])
    wait_for(lambda: pickups(phone) == [third], "the second pickup to leave the list")
    assert load_all(phone) is None  # one left: the single action is enough
    phone.evaluate(RELEASE, [2, False])
    wait_for(lambda: not pickups(phone), "the last pickup to leave the list")
    assert [status(base, i) for i in ids] == ["picked_up"] * 3
    phone.wait_for_selector(".toast:text-is('3 parcels picked up')")
    assert phone.inner_text("#next-title").startswith("Deliver o-")
    assert [kind for kind, _ in stops(phone)] == ["dropoff"] * 3
    assert sorted(order_id for _, order_id in stops(phone)[:2]) == sorted(ids[:2])
    assert load_all(phone) is None  # two drop-offs at one door: no button (each its own proof)
    assert actions(phone) == ALL_ACTIONS
    assert len(held(phone)) == 3  # nothing else was sent


def test_a_refused_stop_stays_and_a_pickup_standing_alone_has_no_button(
    fleet_server: Callable[..., str], new_page: Callable[..., Any]
) -> None:
    base = fleet_server()
    # Two parcels loaded at the depot (delivered later in the day), and one picked up at a shop
    # on the next street, 55 m away, first thing: three pickups in a row, two of them here.
    later = [create(base, parcel(drop, window(60, 240))) for drop in DROPS[1:]]
    shop = create(base, parcel(DROPS[0], window(0, 240), SHOP, pickup_window=window(0, 20)))
    phone = van_at_depot(base, new_page)
    phone.wait_for_selector("#run-all:text-is('Picked up all 2 here')")  # (not the shop's)
    assert [kind for kind, _ in stops(phone)[:3]] == ["pickup"] * 3
    assert sorted(pickups(phone)[:2]) == sorted(later)
    assert pickups(phone)[2] == shop

    # Offline: as for a single report, said and nothing sent; the button stays.
    phone.evaluate(HOLD)  # (what the page sends from here on: recorded)
    phone.evaluate(CUT)
    phone.wait_for_selector("#conn:text-is('offline · buffering')")
    phone.click("#run-all")
    phone.wait_for_selector(".toast.bad:text-is('Offline: try again when the connection is back.')")
    assert load_all(phone) == {"text": "Picked up all 2 here", "enabled": True}
    wait_for(
        lambda: phone.evaluate("() => fleetDriver.socket instanceof fleetCut.Stuck"), "a retry"
    )
    phone.evaluate(MEND)
    phone.wait_for_selector("#conn.ok")
    assert held(phone) == []

    # One of the two refused: said, and it stays on the list; the other goes.
    phone.click("#run-all")
    taken, refused = (m["order_id"] for m in held(phone))
    assert sorted([taken, refused]) == sorted(later)
    phone.evaluate(RELEASE, [1, True])
    phone.wait_for_selector(".toast.bad:text-is('Not recorded: no order o-unknown')")
    assert load_all(phone) == {"text": "Picked up all 2 here", "enabled": False}  # one to come
    phone.evaluate(RELEASE, [0, False])
    wait_for(lambda: pickups(phone) == [refused, shop], "the stop taken to leave the list")
    phone.wait_for_selector(".toast:text-is('1 parcel picked up')")
    assert (status(base, taken), status(base, refused)) == ("picked_up", "processed")
    assert phone.inner_text("#next-title") == f"Pick up {refused}"
    # The depot's pickup left, then the shop's: 55 m away, not here.
    assert load_all(phone) is None
    assert actions(phone) == ALL_ACTIONS

    # Tried again with the single action; the shop's pickup, alone, has no button either.
    phone.evaluate(UNHOLD)
    phone.click("#actions [data-event=picked_up]")
    phone.wait_for_selector(f"#next-title:text-is('Pick up {shop}')")
    assert status(base, refused) == "picked_up"
    assert load_all(phone) is None


def test_parcels_on_a_van_out_of_service_are_collected_with_one_tap(
    fleet_server: Callable[..., str],
    drivers: Callable[..., Driver],
    new_page: Callable[..., Any],
    artifacts: Path,
) -> None:
    base = fleet_server()
    van_1 = drivers(base, "van-1")
    van_1.ping(*BROKEN_AT)
    ids = [create(base, parcel(drop, window(0, 180), BROKEN_AT)) for drop in DROPS[:2]]
    replan(base)
    for order_id in ids:
        wait_for(lambda: status(base, order_id) != "received", "the orders on van-1")  # noqa: B023
        assert van_1.report(order_id, "picked_up") == "picked_up"  # on board van-1
    van_2 = httpx.post(f"{base}/vehicles", headers=AUTH, json={"id": "van-2"}).json()
    phone = open_phone(new_page, base, van_2["token"], VAN_2)
    wait_for(lambda: located(base, "van-2"), "van-2's position on the server")

    broken = httpx.patch(f"{base}/vehicles/van-1", headers=AUTH, json={"status": "broken_down"})
    assert broken.status_code == 200, broken.text
    replan(base)
    phone.wait_for_selector("#run-all:text-is('Collected all 2 here')")
    assert [kind for kind, _ in stops(phone)[:2]] == ["transfer"] * 2
    assert phone.inner_text("#next-title").endswith("from van-1")
    assert actions(phone) == ["picked_up"]  # (its own "Collected" beside it)
    assert colour(phone) == TEAL
    phone.screenshot(path=artifacts / "driver-collect-all.png")

    phone.click("#run-all")
    phone.wait_for_selector(".toast:text-is('2 parcels collected')")
    for order_id in ids:
        record = order(base, order_id)
        assert (record["status"], record["vehicle_id"], record["transfer_from"]) == (
            "picked_up", "van-2", "",
        )  # fmt: skip
    assert [kind for kind, _ in stops(phone)] == ["dropoff"] * 2
    assert phone.inner_text("#next-title").startswith("Deliver o-")
    assert load_all(phone) is None


def test_a_van_with_room_for_one_parcel_loads_them_one_by_one(
    fleet_server: Callable[..., str], new_page: Callable[..., Any]
) -> None:
    """Back to the depot for each parcel: its pickups there are not one after the other, the
    first parcel's customer being next door (a drop-off between them, at the same place)."""
    base = fleet_server()
    first = create(base, parcel(NEXT_DOOR, window(0, 10)))
    second = create(base, parcel(DROPS[1], window(30, 240)))
    phone = van_at_depot(base, new_page, capacity={"parcels": 1})
    wait_for(lambda: len(stops(phone)) == 4, "the van's four stops")
    assert stops(phone) == [
        ("pickup", first), ("dropoff", first), ("pickup", second), ("dropoff", second)
    ]  # fmt: skip
    assert load_all(phone) is None  # a drop-off, then the depot's other pickup
    phone.click("#actions [data-event=picked_up]")
    phone.wait_for_selector(f"#next-title:text-is('Deliver {first}')")
    assert load_all(phone) is None
