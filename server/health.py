"""Liveness and readiness probes."""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis
from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from redis.exceptions import RedisError

from server.errors import ServiceUnavailable


class Health(msgspec.Struct):
    status: str


class Ready(msgspec.Struct):
    status: str
    checks: dict[str, str]


class HealthController(Controller):
    tags = ["health"]  # noqa: RUF012 - Litestar reads this class attribute

    @get("/health", summary="The process is alive")
    async def health(self) -> Health:
        return Health(status="ok")

    @get("/ready", summary="Redis answers and the road network is loaded")
    async def ready(self, redis: NamedDependency[aioredis.Redis], state: State) -> Ready:
        checks: dict[str, str] = {}
        roads = state.get("roads")
        checks["roads"] = (
            f"{roads.network.name}: {roads.network.node_count} nodes" if roads else "not loaded"
        )
        try:
            await redis.ping()
            checks["redis"] = "ok"
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(
                f"Redis does not answer: {exc}", details={"redis": "unreachable"}
            ) from None
        return Ready(status="ready", checks=checks)
