"""The smoke scenario end to end: two real servers (re-optimised and baseline), simulated vans
over the driver socket, a report whose figures add up; in real time and three times faster."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from simulator.run import simulate
from simulator.scenario import SCENARIOS


@pytest.mark.parametrize("speed", [1.0, 3.0])
def test_smoke_scenario_report_is_consistent(
    helsinki_pbf: Path, helsinki_cache: Path, tmp_path: Path, speed: float
) -> None:
    lines: list[str] = []
    report_path = tmp_path / "smoke.json"
    document = simulate(
        SCENARIOS["smoke"],
        osm_file=helsinki_pbf,
        roads_cache=helsinki_cache,
        report_path=report_path,
        speed=speed,
        say=lines.append,
    )
    assert json.loads(report_path.read_text()) == document
    assert [r["label"] for r in document["runs"]] == ["re-optimised", "baseline"]
    assert (document["scenario"]["speed"], document["scenario"]["latency_clock"]) == (speed, "real")
    # 40 simulated seconds: about 40 / speed real ones (with the servers' start and the end).
    assert document["wall_s"] < 40 / speed + 60
    for run in document["runs"]:
        orders = run["orders"]
        assert orders["created"] == SCENARIOS["smoke"].orders
        assert orders["create_errors"] == 0
        assert (
            orders["delivered"] + orders["failed"] + orders["unassigned"] + orders["open"]
            + orders["cancelled"]
            == orders["created"]
        )  # fmt: skip
        assert orders["consistent"]
        assert orders["unassigned"] < orders["created"], "the planner assigned work"
        assert run["negative_etas"] == 0
        assert run["km_driven"] > 0.1, "the vans drove"
        # The server's trips report, from the same vans' noisy pings, finds about as much.
        assert run["km_driven_reported"] == pytest.approx(run["km_driven"], rel=0.25), run
        assert run["pings"] > 50
        assert run["ping_to_console_ms"]["n"] > 0
        assert 0 <= run["ping_to_console_ms"]["p50"] < 1000, "real milliseconds"
        assert run["replans"] >= 1
        for e in run["eta_error"].values():  # every scored ETA is kept or changed, and the
            kept, replayed = e["kept"], e["kept"]["replayed"]  # kept ones were replayed
            assert kept["n"] + e["changed"]["n"] == e["n"]
            assert replayed["server"]["n"] == replayed["known_ahead"]["n"] <= kept["n"]
    summary = report_path.with_suffix(".txt").read_text()
    assert "re-optimised: on time" in summary
    assert "baseline: on time" in summary
    assert ("Clock: 3x real time" in summary) == (speed == 3)
    for chart in ("smoke-eta-error.png", "smoke-on-time.png"):
        assert (tmp_path / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(lines[-1])["scenario"] == "smoke"
    trace = json.loads((tmp_path / "smoke-trace.json").read_text())
    assert [r["label"] for r in trace["runs"]] == ["re-optimised", "baseline"]
    for run, traced in zip(document["runs"], trace["runs"], strict=True):
        finals = [o["final_status"] for o in traced["orders"].values()]
        assert finals.count("delivered") == run["orders"]["delivered"]
        assert {s["order_id"] for s in traced["stops"]} <= set(traced["orders"])
        assert len({t["t_s"] for t in traced["routes_seen"] if t["type"] == "route"}) >= 1
        assert all(t["vehicle_id"].startswith("sim-") for t in traced["routes_seen"])


def test_refused_parcels_are_driven_back_to_the_shop(
    helsinki_pbf: Path, helsinki_cache: Path, tmp_path: Path
) -> None:
    """Every first attempt refused: the simulated drivers take each parcel back to its shop
    (a ``return`` stop) and hand it back; no order is delivered after a refusal."""
    scenario = dataclasses.replace(
        SCENARIOS["smoke"], duration_s=300, orders=2, failure_reasons=(("refused", 1.0),)
    )
    document = simulate(
        scenario, osm_file=helsinki_pbf, roads_cache=helsinki_cache,
        report_path=tmp_path / "refused.json", baseline=False, speed=10.0, say=lambda _: None,
    )  # fmt: skip
    [run] = document["runs"]
    assert run["orders"]["delivered"] == 0, run["orders"]
    assert run["orders"]["consistent"]
    trace = json.loads((tmp_path / "refused-trace.json").read_text())
    [traced] = trace["runs"]
    finals = [o["final_status"] for o in traced["orders"].values()]
    returns = [s for s in traced["stops"] if s["kind"] == "return"]
    assert finals == ["returned", "returned"], traced["stops"]
    assert sorted(s["order_id"] for s in returns) == sorted(traced["orders"])
    assert {s["outcome"] for s in returns} == {"returned"}


def test_a_wrong_address_waits_for_the_dispatcher_then_is_delivered(
    helsinki_pbf: Path, helsinki_cache: Path, tmp_path: Path
) -> None:
    """Every first attempt fails on a "wrong address": the server holds each order (no second
    trip to the same door), the simulated dispatcher sends it out again after its call, and the
    second attempt delivers it."""
    # (420 s: the second attempt of the later order comes about 295 s in)
    scenario = dataclasses.replace(
        SCENARIOS["smoke"], duration_s=420, orders=2,
        failure_reasons=(("address_wrong", 1.0),), dispatcher_call_s=30.0,
    )  # fmt: skip
    document = simulate(
        scenario, osm_file=helsinki_pbf, roads_cache=helsinki_cache,
        report_path=tmp_path / "held.json", baseline=False, speed=10.0, say=lambda _: None,
    )  # fmt: skip
    [run] = document["runs"]
    assert run["orders"]["held_released"] == 2, run["orders"]
    assert run["orders"]["delivered"] == 2, run["orders"]
    assert run["orders"]["consistent"]
    trace = json.loads((tmp_path / "held-trace.json").read_text())
    [traced] = trace["runs"]
    for order_id in traced["orders"]:
        tried = [s["outcome"] for s in traced["stops"]
                 if s["kind"] == "dropoff" and s["order_id"] == order_id]  # fmt: skip
        assert sorted(tried) == ["delivered", "failed"], (order_id, traced["stops"])


def test_a_parcel_on_a_broken_down_van_is_collected_by_another(
    helsinki_pbf: Path, helsinki_cache: Path, tmp_path: Path
) -> None:
    """A van breaks down with a parcel on board: the other van is sent to it, collects the
    parcel (a ``transfer`` stop, reported picked up) and delivers it."""
    # (no cold chain: the other van can carry any parcel)
    scenario = dataclasses.replace(
        SCENARIOS["smoke"], duration_s=360, vehicles=2, orders=3, arrivals_until=0.3,
        breakdowns=1, breakdown_with_parcel=True, failure_rate=0.0, cold_share=0.0,
    )  # fmt: skip
    document = simulate(
        scenario, osm_file=helsinki_pbf, roads_cache=helsinki_cache,
        report_path=tmp_path / "breakdown.json", baseline=False, speed=12.0, say=lambda _: None,
    )  # fmt: skip
    [run] = document["runs"]
    assert run["orders"]["consistent"]
    [broken] = run["broken_down"]
    trace = json.loads((tmp_path / "breakdown-trace.json").read_text())
    [traced] = trace["runs"]
    collected = [s for s in traced["stops"] if s["kind"] == "transfer"]
    assert collected, traced["stops"]
    for stop in collected:
        assert stop["vehicle_id"] != broken
        assert stop["outcome"] == "picked_up"
        assert traced["orders"][stop["order_id"]]["final_status"] == "delivered"
