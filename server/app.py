"""The application factory: ``create_app(settings)`` wires everything; controllers stay thin.

What it wires:

- the Redis client (``redis.asyncio``, hiredis parser), opened at start-up and closed at shutdown,
  stored on ``app.state.redis`` and injected into handlers as ``redis``;
- the settings object, injected as ``settings``;
- the error handlers of :mod:`server.errors` (one JSON shape for every error);
- OpenAPI, served at ``/schema`` (``/schema/openapi.json``, ``/schema/swagger``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin

from server import __version__
from server.errors import EXCEPTION_HANDLERS
from server.health import HealthController
from server.settings import Settings


def create_app(settings: Settings) -> Litestar:
    """Build the Litestar app for ``settings`` (whose ``redis_url`` must be set)."""
    if settings.redis_url is None:
        raise ValueError("create_app needs settings.redis_url; the CLI starts Redis first")
    redis_url = settings.redis_url

    @asynccontextmanager
    async def redis_lifespan(app: Litestar) -> AsyncIterator[None]:
        client = aioredis.Redis.from_url(
            redis_url, socket_connect_timeout=settings.redis_timeout_s, health_check_interval=30
        )
        app.state.redis = client
        try:
            yield
        finally:
            await client.aclose()

    def provide_redis(state: State) -> aioredis.Redis:
        client: aioredis.Redis = state.redis
        return client

    def provide_settings() -> Settings:
        return settings

    return Litestar(
        route_handlers=[HealthController],
        lifespan=[redis_lifespan],
        dependencies={
            "redis": Provide(provide_redis, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="fleet",
            version=__version__,
            description="Real-time fleet tracking and dispatch server.",
            path="/schema",
            render_plugins=[JsonRenderPlugin(), SwaggerRenderPlugin()],
        ),
    )
