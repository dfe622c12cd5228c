"""``fleet bench dispatch``: static quality on the Solomon and Gehring & Homberger instances.

For each instance and time limit: solve with the hierarchical objective (vehicles, then
distance), re-check the plan with the independent checker, and compare with the best-known
solution (``../shared/data/vrp/bks.csv``, objective=hierarchical). Reports, per set and limit,
the mean gap to the best-known distance, the share of instances with no more vehicles than the
best-known, "no solution" and infeasible counts, and the mean cost (10,000 per vehicle +
distance), for our OR-Tools solver and, as peers on the same matrices and limits, PyVRP and VROOM
standing alone (``bench/peers.py``); every plan goes through the same independent checker. The
dynamic part on the Andorra roads is ``bench/replan.py``.
"""

from __future__ import annotations

import csv
import functools
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.peers import PEERS
from dispatch.check import violations
from dispatch.errors import NoSolution
from dispatch.plan import Plan
from dispatch.solomon import SCALE, parse, to_problem
from dispatch.solver import solve

SETS = {"solomon": "solomon", "homberger_200": "homberger_200"}


def best_known(vrp_dir: Path) -> dict[str, tuple[int, float]]:
    with (vrp_dir / "bks.csv").open() as file:
        return {
            row["instance"].upper(): (int(row["vehicles"]), float(row["distance"]))
            for row in csv.DictReader(file)
            if row["objective"] == "hierarchical"
        }


def run(
    vrp_dir: Path,
    *,
    time_limits: Sequence[float] = (1.0, 5.0),
    sets: Sequence[str] = ("solomon", "homberger_200"),
    instances: int | None = None,
    engines: Sequence[str] = ("fleet", "pyvrp", "vroom"),
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    bks = best_known(vrp_dir)
    solvers: dict[str, Callable[..., Plan]] = {
        "fleet": solve,  # ours: OR-Tools, with PyVRP on the second core when it fits
        "ortools": functools.partial(solve, second_engine=False),
        **PEERS,
    }
    result: dict[str, Any] = {}
    for set_name in sets:
        files = sorted((vrp_dir / SETS[set_name]).glob("*.txt"))[:instances]
        for limit in time_limits:
            key = f"{set_name}_{limit:g}s"
            result[key] = {}
            for engine in engines:
                result[key][engine] = _one(
                    solvers[engine], engine, files, bks, set_name, limit, progress
                )
                progress(f"{key} {engine}: {result[key][engine]}")
    return result


def _one(
    solver: Callable[..., Plan],
    engine: str,
    files: list[Path],
    bks: dict[str, tuple[int, float]],
    set_name: str,
    limit: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    gaps, costs, fleet_ok, failures, infeasible = [], [], 0, 0, 0
    started = time.perf_counter()
    for path in files:
        instance = parse(path)
        problem = to_problem(instance)
        try:
            plan = solver(problem, time_limit=limit)
        except NoSolution:
            failures += 1
            progress(f"  {instance.name}: no solution")
            continue
        if violations(problem, plan) or plan.dropped:
            infeasible += 1
        distance = plan.distance_m / SCALE
        vehicles = plan.vehicles_used
        best_vehicles, best_distance = bks[instance.name.upper()]
        gaps.append(100 * (distance - best_distance) / best_distance)
        costs.append(10_000 * vehicles + distance)
        fleet_ok += vehicles <= best_vehicles
        progress(f"  {set_name} {limit:g}s {engine} {instance.name}: {vehicles} vehicles "
                 f"(best {best_vehicles}), {distance:.1f} (best {best_distance:.1f}, "
                 f"gap {gaps[-1]:+.2f}%)")  # fmt: skip
    return {
        "instances": len(files),
        "mean_gap_pct": round(statistics.fmean(gaps), 2) if gaps else None,
        "fleet_at_most_best_share": round(fleet_ok / max(1, len(files)), 3),
        "no_solution": failures,
        "infeasible": infeasible,
        "mean_cost": round(statistics.fmean(costs), 1) if costs else None,
        "seconds": round(time.perf_counter() - started, 1),
    }
