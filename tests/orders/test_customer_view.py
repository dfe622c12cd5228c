"""The customer's view of an order: Fleet-Engine-style visibility, and nothing personal."""

from __future__ import annotations

import datetime as dt
from typing import Any

from server.orders.model import AuditEntry, Customer, Order, Place, Window
from server.tracking.queries import Position
from server.web.tracking import customer_view

NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
DROP = (42.5440, 1.5137)


def order(status: str = "departed") -> Order:
    return Order(
        id="o-1", status=status, dropoff=Place(lat=DROP[0], lon=DROP[1], address="Carrer 1"),
        window=Window(start=NOW, end=NOW + dt.timedelta(hours=2)), pickup=None,
        pickup_window=None, service_s=120, pickup_service_s=60, size={"parcels": 1}, skills=[],
        priority="normal", customer=Customer(name="Alice", phone="+376 111"), reference="R-1",
        vehicle_id="van-1", nodes={"received": NOW}, created=NOW,
    )  # fmt: skip


def route(position_of_order: int) -> dict[str, Any]:
    stops = [{"order_id": f"o-other-{i}", "kind": "dropoff", "lat": 42.5, "lon": 1.52, "eta": 1}
             for i in range(position_of_order)]  # fmt: skip
    stops.append({"order_id": "o-1", "kind": "dropoff", "lat": DROP[0], "lon": DROP[1],
                  "eta": 1764148800000, "late_s": 0})  # fmt: skip
    return {"vehicle_id": "van-1", "version": 3, "stops": stops}


FAR = Position(id="van-1", lat=42.5078, lon=1.5211, ts=1, heading=10.0)  # ~4 km away
NEAR = Position(id="van-1", lat=42.5400, lon=1.5137, ts=2, heading=0.0)  # ~450 m away
AUDIT = [
    AuditEntry(at=NOW, status="received", previous=None, by="api"),
    AuditEntry(at=NOW, status="processed", previous="received", by="planner"),
    AuditEntry(at=NOW, status="processed", previous="processed", by="api", reason="assigned"),
]


def view(
    position: Position,
    stops_before: int,
    *,
    stops: int = 3,
    metres: float = 2000,
    minutes: float = 0,
    now_ms: int = 0,
) -> Any:
    return customer_view(order(), AUDIT, route(stops_before), position, visible_stops=stops,
                         visible_m=metres, visible_min=minutes, now_ms=now_ms)  # fmt: skip


def test_the_vehicle_is_shown_within_n_stops_or_d_metres_and_only_its_area_otherwise() -> None:
    assert view(FAR, stops_before=2)["vehicle"] is not None  # the third stop from now
    far = view(FAR, stops_before=3)  # the fourth: too many stops, and 4 km away
    assert far["vehicle"] is None
    assert far["vehicle_area"]["cell"]
    assert len(far["vehicle_area"]["boundary"]) == 6
    assert far["stops_away"] == 4
    near = view(NEAR, stops_before=10)  # many stops ahead, but 450 m away
    assert near["vehicle"] == {"lat": NEAR.lat, "lon": NEAR.lon, "ts": 2, "heading": 0.0}
    assert 300 < near["distance_m"] < 600
    assert view(NEAR, stops_before=0, stops=0, metres=0)["vehicle"] is None  # both rules off


def test_the_vehicle_is_shown_when_its_eta_is_within_t_minutes() -> None:
    eta = route(0)["stops"][-1]["eta"]
    # Four stops and 4 km away, but due in 9 minutes: shown with a 10-minute rule, not without.
    soon = view(FAR, stops_before=3, minutes=10, now_ms=eta - 9 * 60_000)
    assert soon["vehicle"] is not None
    assert soon["visibility"] == {"stops": 3, "metres": 2000, "minutes": 10}
    assert view(FAR, stops_before=3, minutes=10, now_ms=eta - 11 * 60_000)["vehicle"] is None
    assert view(FAR, stops_before=3, minutes=0, now_ms=eta - 60_000)["vehicle"] is None  # off


def test_the_view_holds_nothing_personal_and_no_other_order() -> None:
    text = repr(view(FAR, stops_before=2))
    for secret in ("Alice", "+376 111", "Carrer", "R-1", "o-other", "o-1", "van-1"):
        assert secret not in text
    timeline = view(FAR, stops_before=0)["timeline"]
    assert [t["status"] for t in timeline] == ["received", "processed"], "no dispatcher steps"
