"""The judge: figures of one run (ETA error by horizon, on-time rate, …) and the report files.

The simulator knows when each van really reached each stop, so it can score every ETA the
server published. An ETA is scored at horizon *h* with the last one the dispatcher's view showed
at least *h* before the service really started (arrival, or the window's opening if the van was
early and waited, which is what the server's ETAs mean). An order is on time when the
attempt started by the end of its window; the rate is over the orders that were due (window
ended before the run did) or attempted.

Each scored ETA is also split by what happened to its route after it was shown: **kept** when
the van that showed it served it, and served in between exactly the stops the route showed
ahead of it, in that order; **changed** otherwise (stops put in ahead, taken out, reordered, or
the order moved to another van). A kept ETA's error is the travel-time model's (traffic,
service, waiting); a changed one's is the plan's as well, which no travel-time model can see
coming. Kept routes are also replayed on the true traffic (:mod:`simulator.oracle`), which says
how much of their error was the server's to lose.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.vehicle import StopRecord
from simulator.world import RunResult, SeenRoute

if TYPE_CHECKING:
    from simulator.oracle import Replayed

HORIZONS_S = (300, 900, 1800)
OPEN = ("processed", "departed", "picked_up", "arrived", "returning")


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _attempts(result: RunResult) -> dict[str, StopRecord]:
    """The first drop-off attempt of each order that the server accepted."""
    first: dict[str, StopRecord] = {}
    for r in sorted(result.records, key=lambda r: r.service_start_s):
        if r.kind == "dropoff" and r.outcome in ("delivered", "failed"):
            first.setdefault(r.order_id, r)
    return first


@dataclass(frozen=True, slots=True)
class Scored:
    """One drop-off ETA scored at one horizon."""

    error_s: float  # actual service start minus the ETA (positive: later than promised)
    kept: bool  # the route ahead of it was served as shown (see the module's docstring)
    order_id: str
    actual_s: float  # when the drop-off's service really started
    shown: SeenRoute  # the update the ETA was in
    index: int  # the drop-off's position in it


def eta_scores(result: RunResult) -> dict[int, list[Scored]]:
    """Every first drop-off attempt's ETA scored per horizon, with whether its route was kept."""
    shown: dict[str, list[tuple[SeenRoute, int]]] = {}  # order → (update, its position there)
    for route in result.observed.routes:
        for i, (order_id, kind, _) in enumerate(route.stops):
            if kind == "dropoff":
                shown.setdefault(order_id, []).append((route, i))
    served = stops_by_vehicle(result)
    scores: dict[int, list[Scored]] = {h: [] for h in HORIZONS_S}
    for order_id, attempt in _attempts(result).items():
        samples = shown.get(order_id, [])
        actual = attempt.service_start_s
        for h in HORIZONS_S:
            known = [s for s in samples if s[0].t_s <= actual - h]
            if known:
                route, i = known[-1]
                kept = _kept(route, i, attempt, served.get(attempt.vehicle_id, []))
                scores[h].append(
                    Scored(actual - route.stops[i][2], kept, order_id, actual, route, i)
                )
    return scores


def stops_by_vehicle(result: RunResult) -> dict[str, list[StopRecord]]:
    """Each vehicle's stops, in the order their service started."""
    served: dict[str, list[StopRecord]] = {}
    for r in sorted(result.records, key=lambda r: r.service_start_s):
        served.setdefault(r.vehicle_id, []).append(r)
    return served


def _kept(route: SeenRoute, i: int, attempt: StopRecord, served: list[StopRecord]) -> bool:
    """Whether ``attempt``'s van showed it at ``route.stops[i]`` and served in between exactly
    the stops shown ahead of it (a stop whose service had started when shown is behind it)."""
    if route.vehicle_id != attempt.vehicle_id:
        return False
    started = {(r.order_id, r.kind) for r in served if r.service_start_s <= route.t_s}
    ahead = [(o, k) for o, k, _ in route.stops[:i] if (o, k) not in started]
    between = [
        (r.order_id, r.kind)
        for r in served
        if route.t_s < r.service_start_s < attempt.service_start_s
    ]
    return between == ahead


def eta_errors(result: RunResult) -> dict[int, list[float]]:
    """Signed ETA errors (seconds, positive = later than promised) per horizon."""
    return {h: [s.error_s for s in scored] for h, scored in eta_scores(result).items()}


def on_time(result: RunResult) -> tuple[int, int, list[tuple[float, float]]]:
    """(on time, counted, [(time, cumulative on-time rate)])."""
    attempts = _attempts(result)
    counted = on = 0
    for order_id, order in result.orders.items():
        attempt = attempts.get(order_id)
        if attempt is None and order.window_end_s > result.duration_s:
            continue  # not due yet and not attempted: not judged
        counted += 1
        if attempt is not None and attempt.service_start_s <= order.window_end_s:
            on += 1
    curve = []
    done = 0
    good = 0
    for attempt in sorted(attempts.values(), key=lambda r: r.service_start_s):
        due = result.orders.get(attempt.order_id)
        if due is None:
            continue
        done += 1
        good += attempt.service_start_s <= due.window_end_s
        curve.append((attempt.service_start_s, good / done))
    return on, counted, curve


def figures(result: RunResult, replayed: dict[int, list[Replayed]] | None = None) -> dict[str, Any]:
    """Every figure of one run, as plain JSON data; with ``replayed``
    (:meth:`simulator.oracle.Yardstick.replay`), the kept routes' yardstick too."""
    eta: dict[str, Any] = {}
    for h, scored in eta_scores(result).items():
        kept = _error_figures([s.error_s for s in scored if s.kept])
        if replayed is not None:
            again = replayed.get(h, [])
            kept["replayed"] = {
                "server": _error_figures([r.error_s for r in again]),
                "known_now": _error_figures([r.known_now_s for r in again]),
                "known_ahead": _error_figures([r.known_ahead_s for r in again]),
            }
        eta[f"{h // 60}min"] = {
            **_error_figures([s.error_s for s in scored]),
            "p90_s": _round(_percentile([abs(s.error_s) for s in scored], 0.9)),
            "kept": kept,
            "changed": _error_figures([s.error_s for s in scored if not s.kept]),
        }
    on, counted, _ = on_time(result)
    statuses = list(result.final_status.values())
    delivered = statuses.count("delivered")
    failed = statuses.count("failed") + statuses.count("returned")
    unassigned = statuses.count("received")
    open_ = sum(statuses.count(s) for s in OPEN)
    cancelled = statuses.count("cancelled")
    vans = [v for k, v in result.vehicles.items() if k not in result.broken]
    busy = sum(v.busy_s for v in vans)
    latencies = result.observed.latencies_ms
    total = delivered + failed + unassigned + open_ + cancelled
    orders = {
        "created": len(result.orders), "delivered": delivered, "failed": failed,
        "unassigned": unassigned, "open": open_, "cancelled": cancelled,
        "create_errors": result.create_errors, "create_failures": result.create_failures,
        "held_released": result.released, "consistent": total == len(result.orders),
    }  # fmt: skip
    rate = round(on / counted, 4) if counted else None
    return {
        "label": result.label,
        "reoptimize": result.reoptimize,
        "duration_s": result.duration_s,
        "orders": orders,
        "on_time": {"on_time": on, "judged": counted, "rate": rate},
        "eta_error": eta,
        "negative_etas": result.observed.negative_etas,
        "km_driven": round(sum(v.driven_m for v in result.vehicles.values()) / 1000, 2),
        # What GET /vehicles/{id}/report made of the same vans' pings, for its honesty.
        "km_driven_reported": round(sum(result.reported_m.values()) / 1000, 2),
        "utilisation": round(busy / (len(vans) * result.duration_s), 4) if vans else None,
        "replans": len(result.observed.planned_at),
        "route_versions_pushed": result.observed.route_versions,
        "ping_to_console_ms": {
            "n": len(latencies),
            "p50": _round(_percentile(latencies, 0.5)),
            "p95": _round(_percentile(latencies, 0.95)),
            "p99": _round(_percentile(latencies, 0.99)),
        },
        "pings": sum(v.pings for v in result.vehicles.values()),
        "reconnects": sum(v.reconnects for v in result.vehicles.values()),
        "broken_down": result.broken,
    }


def trace(result: RunResult) -> dict[str, Any]:
    """Everything one run's figures are computed from, to check them or look closer: each
    order as the scenario asked for it, each stop as it was really served, and each route and
    ETA update the dispatcher's view showed, with where its van really was (times in scenario
    seconds)."""
    return {
        "label": result.label,
        "orders": {
            order_id: {"ref": o.id, "at_s": o.at_s, "window_s": [o.window_start_s, o.window_end_s],
                       "express": o.express, "pickup": o.pickup, "dropoff": o.dropoff,
                       "final_status": result.final_status.get(order_id)}
            for order_id, o in result.orders.items()
        },
        "stops": [
            {"order_id": r.order_id, "kind": r.kind, "vehicle_id": r.vehicle_id,
             "arrived_s": round(r.arrived_s, 1), "service_start_s": round(r.service_start_s, 1),
             "outcome": r.outcome}
            for r in result.records
        ],
        "routes_seen": [
            {"t_s": round(r.t_s, 1), "vehicle_id": r.vehicle_id, "type": r.kind,
             "stops": [[o, k, round(eta, 1)] for o, k, eta in r.stops], "van": r.van}
            for r in result.observed.routes
        ],
    }  # fmt: skip


def _error_figures(values: list[float]) -> dict[str, Any]:
    """``n``, mean absolute error and bias of signed errors (None when there are none)."""
    n = len(values)
    return {
        "n": n,
        "mae_s": round(sum(abs(v) for v in values) / n, 1) if n else None,
        "bias_s": round(sum(values) / n, 1) if n else None,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def compare(main: dict[str, Any], baseline: dict[str, Any] | None) -> dict[str, Any]:
    """How re-optimisation did against the baseline (plan once, never re-plan)."""
    if baseline is None:
        return {}
    out: dict[str, Any] = {}
    a, b = main["eta_error"]["15min"]["mae_s"], baseline["eta_error"]["15min"]["mae_s"]
    if a is not None and b:
        out["eta_mae_15min_reduction"] = round(1 - a / b, 4)
    ra, rb = main["on_time"]["rate"], baseline["on_time"]["rate"]
    if ra is not None and rb is not None:
        out["on_time_points_gained"] = round(100 * (ra - rb), 1)
    return out


def summary_text(scenario: dict[str, Any], runs: list[dict[str, Any]], vs: dict[str, Any]) -> str:
    lines = [
        f"Scenario {scenario['name']} (seed {scenario['seed']}): {scenario['vehicles']} vehicles, "
        f"{scenario['orders']} orders, {scenario['incidents']} incidents "
        f"({scenario['reported']} reported), {scenario['duration_s'] / 60:g} minutes.",
        "",
    ]
    if "gps_sigma_m" in scenario:
        reasons = scenario.get("failure_reasons") or []
        failing = (
            ", ".join(f"{100 * share:g}% {reason}" for reason, share in reasons)
            if reasons
            else f"{100 * scenario['failure_rate']:g}%"
        )
        lines[-1:-1] = [
            f"GPS noise {scenario['gps_sigma_m']:g} m; first drop-off attempts failing: {failing}."
        ]
    if scenario.get("server_settings"):
        pairs = " ".join(f"{k}={v}" for k, v in sorted(scenario["server_settings"].items()))
        lines[-1:-1] = [f"Server settings (both arms): {pairs}."]
    for r in runs:
        o, t = r["orders"], r["on_time"]
        rate = "n/a" if t["rate"] is None else f"{100 * t['rate']:.1f}%"
        lines.append(
            f"{r['label']}: on time {rate} ({t['on_time']}/{t['judged']}); delivered "
            f"{o['delivered']}, failed {o['failed']}, unassigned {o['unassigned']}, "
            f"open {o['open']} of {o['created']}; {r['km_driven']} km ("
            f"{r['km_driven_reported']} km in the server's trips report); utilisation "
            f"{_pct(r['utilisation'])}; {r['replans']} plans pushed"
        )
        for h, e in r["eta_error"].items():
            if e["n"]:
                lines.append(
                    f"    ETA error {h:>5} before arrival: MAE {e['mae_s']} s, P90 {e['p90_s']} s,"
                    f" bias {e['bias_s']} s (n={e['n']})"
                )
                lines.append(
                    f"        route ahead kept as shown: {_mae(e['kept'])}; changed: "
                    f"{_mae(e['changed'])}"
                )
                again = e["kept"].get("replayed")
                if again and again["server"]["n"]:
                    lines.append(
                        f"        kept routes replayed on the true traffic "
                        f"(n={again['server']['n']}): server MAE {again['server']['mae_s']} s;"
                        f" traffic known when shown {again['known_now']['mae_s']} s; known"
                        f" ahead {again['known_ahead']['mae_s']} s"
                    )
        for failure in o["create_failures"]:
            lines.append(f"    order not created: {failure}")
        p = r["ping_to_console_ms"]
        lines.append(
            f"    ping → console: p50 {p['p50']} ms, p95 {p['p95']} ms, p99 {p['p99']} ms;"
            f" negative ETAs published: {r['negative_etas']}"
        )
    if vs:
        lines.append("")
        if "eta_mae_15min_reduction" in vs:
            lines.append(
                f"Re-optimisation vs baseline: 15-min ETA MAE "
                f"{100 * vs['eta_mae_15min_reduction']:.0f}% lower"
            )
        if "on_time_points_gained" in vs:
            lines.append(f"  on-time rate {vs['on_time_points_gained']:+.1f} points")
    return "\n".join(lines) + "\n"


def _mae(figures: dict[str, Any]) -> str:
    if not figures["n"]:
        return "none"
    return f"MAE {figures['mae_s']} s, bias {figures['bias_s']} s (n={figures['n']})"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def charts(results: list[RunResult], folder: Path, stem: str) -> list[Path]:
    """PNG charts: ETA error by horizon, and on-time rate over time, one series per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(results))
    for k, result in enumerate(results):
        errors = eta_errors(result)
        maes = [_mean_abs(errors[h]) for h in HORIZONS_S]
        p90s = [_percentile([abs(v) for v in errors[h]], 0.9) or 0.0 for h in HORIZONS_S]
        xs = [i + k * width for i in range(len(HORIZONS_S))]
        ax.bar(xs, maes, width * 0.9, label=f"{result.label}: MAE")
        ax.scatter(xs, p90s, marker="_", s=400, color="black", zorder=3,
                   label="P90" if k == 0 else None)  # fmt: skip
    ax.set_xticks([i + width * (len(results) - 1) / 2 for i in range(len(HORIZONS_S))])
    ax.set_xticklabels([f"{h // 60} min" for h in HORIZONS_S])
    ax.set_xlabel("horizon before the actual arrival")
    ax.set_ylabel("ETA error (s)")
    ax.set_title("ETA error by horizon")
    ax.legend()
    fig.tight_layout()
    path = folder / f"{stem}-eta-error.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(7, 4))
    for result in results:
        _, _, curve = on_time(result)
        if curve:
            ax.plot([t / 60 for t, _ in curve], [100 * r for _, r in curve], label=result.label)
    ax.set_xlabel("minutes into the run")
    ax.set_ylabel("on-time rate so far (%)")
    ax.set_ylim(0, 105)
    ax.set_title("On-time deliveries")
    if ax.get_lines():
        ax.legend()
    fig.tight_layout()
    path = folder / f"{stem}-on-time.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def _mean_abs(values: list[float]) -> float:
    return sum(abs(v) for v in values) / len(values) if values else 0.0


def write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
