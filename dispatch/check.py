"""An independent check of a plan against its problem: recomputes every time and load from the
matrices and lists what is violated. It shares no code with the solver."""

from __future__ import annotations

from dispatch.plan import Plan
from dispatch.problem import Problem


def violations(problem: Problem, plan: Plan, *, windows_hard: bool | None = None) -> list[str]:
    """Everything wrong with ``plan``; an empty list means it is feasible."""
    hard = problem.hard_windows if windows_hard is None else windows_hard
    found: list[str] = []
    tasks = {t.id: t for t in problem.tasks}
    vehicles = {v.id: v for v in problem.vehicles}
    seen: dict[tuple[str, str], str] = {}
    locked = problem.locked_stops()
    for route in plan.routes:
        v = vehicles.get(route.vehicle_id)
        if v is None:
            found.append(f"route for unknown vehicle {route.vehicle_id}")
            continue
        if route.visits and not v.available:
            found.append(f"{v.id} is not available but has a route")
        # Goods without a pickup leave the start on board: all of this route's such drop-offs.
        leaving = {x.task_id for x in route.visits if x.task_id in tasks}
        leaving = {tid for tid in leaving if tasks[tid].pickup is None}
        load = [sum(tasks[tid].size[d] for tid in leaving) for d in range(len(problem.dimensions))]
        for d, amount in enumerate(load):
            if amount > v.capacity[d]:
                found.append(
                    f"{v.id} leaves with {amount} > {v.capacity[d]} {problem.dimensions[d]}"
                )
        clock, here = v.shift[0], v.start
        front = [(x.task_id, x.kind) for x in route.visits[: len(locked.get(v.id, []))]]
        if route.visits and front != locked.get(v.id, front):
            found.append(f"{v.id} does not drive to its locked stops first, in their order")
        for visit in route.visits:
            t = tasks.get(visit.task_id)
            if t is None:
                found.append(f"{v.id} visits unknown task {visit.task_id}")
                continue
            if (visit.task_id, visit.kind) in seen:
                found.append(f"{visit.task_id} {visit.kind} is visited twice")
            seen[(visit.task_id, visit.kind)] = v.id
            if not t.skills <= v.skills:
                found.append(f"{t.id} needs {sorted(t.skills)}, {v.id} lacks them")
            if t.on_board is not None and t.on_board != v.id:
                found.append(f"{t.id} is on board of {t.on_board} but delivered by {v.id}")
            location = t.dropoff if visit.kind == "dropoff" or t.pickup is None else t.pickup
            window = t.pickup_window if visit.kind == "pickup" else t.dropoff_window
            service = t.pickup_service_s if visit.kind == "pickup" else t.dropoff_service_s
            clock += int(problem.times[here, location])
            start = max(clock, window[0])
            if hard and start > window[1]:
                found.append(f"{t.id} {visit.kind} starts at {start}, after its window {window}")
            if visit.start_s < start:
                found.append(f"{t.id} {visit.kind}: plan says {visit.start_s}, earliest is {start}")
            clock = max(start, visit.start_s) + service
            here = location
            sign = 1 if visit.kind == "pickup" else -1
            for d, amount in enumerate(t.size):
                load[d] += sign * amount
                if load[d] > v.capacity[d]:
                    found.append(
                        f"{v.id} carries {load[d]} > {v.capacity[d]} {problem.dimensions[d]}"
                    )
            if (
                visit.kind == "dropoff"
                and t.pickup is not None
                and seen.get((t.id, "pickup")) != v.id
            ):
                found.append(f"{t.id} is delivered by {v.id} without being picked up by it first")
        if v.end is not None:
            clock += int(problem.times[here, v.end])
        if hard and clock > v.shift[1]:
            found.append(f"{v.id} finishes at {clock}, after its shift {v.shift}")
    dropped = {d.task_id for d in plan.dropped}
    for t in problem.tasks:
        served = (t.id, "dropoff") in seen
        if served and t.id in dropped:
            found.append(f"{t.id} is both served and reported dropped")
        elif not served and t.id not in dropped:
            found.append(f"{t.id} is neither served nor reported dropped")
    return found
