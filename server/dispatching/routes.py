"""``/dispatch``: re-plan now, and read a vehicle's current route (staff token required)."""

from __future__ import annotations

import json
from typing import Any, cast

import redis.asyncio as aioredis
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath

from server import keys
from server.auth import staff_only
from server.dispatching.planner import Planner
from server.errors import NotFound, ServiceUnavailable


class DispatchController(Controller):
    path = "/dispatch"
    tags = ["dispatch"]  # noqa: RUF012 - Litestar reads this class attribute
    guards = [staff_only]  # noqa: RUF012

    @post("/replan", summary="Plan now; answers what the round did", status_code=200)
    async def replan(self, state: State) -> dict[str, Any]:
        planner = cast("Planner | None", state.get("planner"))
        if planner is None:
            raise ServiceUnavailable("this server has no road network, so it cannot plan")
        summary = await planner.plan_once()
        return {
            "vehicles": summary.vehicles,
            "orders": summary.orders,
            "assigned": summary.assigned,
            "dropped": summary.dropped,
            "changed_routes": summary.changed_routes,
            "kept_previous": summary.kept_previous,
            "seconds": round(summary.seconds, 3),
        }

    @get("/routes/{vehicle_id:str}", summary="The vehicle's current route")
    async def route(
        self, vehicle_id: FromPath[str], redis: NamedDependency[aioredis.Redis]
    ) -> dict[str, Any]:
        raw = cast("bytes | None", await redis.get(keys.route(vehicle_id)))
        if raw is None:
            raise NotFound(f"no route for vehicle {vehicle_id}")
        route: dict[str, Any] = json.loads(raw)
        return route
