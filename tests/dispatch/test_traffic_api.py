"""Traffic events over the API re-weight the live road network, and ending them restores it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from geo.polyline import decode
from geo.roads import Roads
from tests.conftest import AUTH

A, B = "42.5078,1.5211", "42.5440,1.5137"  # Andorra la Vella → Encamp road


def route(base: str) -> dict:
    answer = httpx.get(f"{base}/roads/route", headers=AUTH, params={"from": A, "to": B})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def clean_andorra(andorra: Roads) -> Iterator[Roads]:
    """The session's Andorra network, with no traffic event left behind by the test."""
    yield andorra
    andorra.traffic.events.clear()
    andorra.refresh(0)


def test_a_slowdown_on_the_route_slows_it_and_ending_it_restores_it(
    server_factory: Callable[..., str], clean_andorra: Roads
) -> None:
    base = server_factory(roads=clean_andorra)
    free = route(base)
    assert free["distance_m"] > 1000
    # A 60 m wide corridor along the middle third of the route, at a quarter of the speed.
    points = decode(free["polyline"])
    middle = points[len(points) // 3 : 2 * len(points) // 3]
    line = [[lon, lat] for lat, lon in middle]
    made = httpx.post(
        f"{base}/traffic-events",
        headers=AUTH,
        json={"id": "jam", "line": line, "buffer_m": 30, "factor": 0.25},
    )
    assert made.status_code == 201, made.text
    assert made.json()["arcs"] > 0
    slowed = route(base)
    assert slowed["time_s"] > free["time_s"] * 1.2
    listed = httpx.get(f"{base}/traffic-events", headers=AUTH).json()
    assert [e["id"] for e in listed] == ["jam"]
    assert httpx.delete(f"{base}/traffic-events/jam", headers=AUTH).status_code == 204
    assert route(base)["time_s"] == free["time_s"], "ending the event restores the exact time"


def test_bad_traffic_events_and_routes_are_clear_errors(
    server_factory: Callable[..., str], clean_andorra: Roads
) -> None:
    base = server_factory(roads=clean_andorra)
    far = [[10.0, 50.0], [10.01, 50.0], [10.01, 50.01]]
    cases = [
        ({"polygon": far, "factor": 0.5}, 422),
        ({"polygon": far}, 400),
        ({"line": [[1.52, 42.5], [1.53, 42.5]], "factor": 0.5}, 400),  # a line needs buffer_m
        ({"polygon": far, "factor": 2}, 400),
    ]
    for body, status in cases:
        assert httpx.post(f"{base}/traffic-events", headers=AUTH, json=body).status_code == status
    outside = httpx.get(f"{base}/roads/route", headers=AUTH, params={"from": "45.0,1.5", "to": B})
    assert outside.status_code == 422
    assert "outside the service area" in outside.json()["error"]["message"]
    # Not a place on Earth (a schema fuzzer's: it answered 500), or not numbers: 400 naming it.
    for ends, field in [(("0,-49135", B), "from"), ((A, "91,0"), "to"), ((A, "nan,1"), "to"),
                        (("1", B), "from"), ((A, "a,b"), "to")]:  # fmt: skip
        params = {"from": ends[0], "to": ends[1]}
        answer = httpx.get(f"{base}/roads/route", headers=AUTH, params=params)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["details"] == {"field": field}
    assert httpx.delete(f"{base}/traffic-events/none", headers=AUTH).status_code == 404
