"""The application factory: ``create_app(settings)`` wires everything; controllers stay thin.

What it wires:

- the Redis client (``redis.asyncio``, hiredis parser), opened at start-up and closed at shutdown,
  injected into handlers as ``redis``;
- the tracking pipeline (:class:`~server.tracking.ingest.Ingestor`, injected as ``ingestor``) and
  its limits (``limits``);
- the console hub (``hub``) and its lifespan task, which consumes the Redis position channel;
- the settings object, injected as ``settings``;
- the error handlers of :mod:`server.errors` (one JSON shape for every error);
- OpenAPI, served at ``/schema`` (``/schema/openapi.json``, ``/schema/swagger``), its errors
  and sign-in documented as the server answers them (:mod:`server.openapi`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from redis.exceptions import RedisError

from geo.roads import Roads
from server import __version__, clock, keys
from server.auth import RoleCache
from server.background import stop_task
from server.dispatching.etas import EtaRefresher
from server.dispatching.planner import Planner
from server.dispatching.routes import DispatchController
from server.dispatching.traffic import (
    RoadsController,
    TrafficController,
    keep_traffic_current,
    reload_traffic,
)
from server.errors import EXCEPTION_HANDLERS
from server.gctuning import tune_for_many_sockets
from server.health import HealthController
from server.lease import Lease, run_leased
from server.metrics import MetricsController
from server.openapi import document_errors
from server.orders.alerts import NodeAlerts
from server.orders.archive import SWEEP_S, archive_ended
from server.orders.crypto import Sealer, load_or_create_key
from server.orders.lifecycle import NodeLimits
from server.orders.outcomes import ErrorRateLimit
from server.orders.proofs import ProofStore
from server.orders.routes import (
    AlertsController,
    OrdersController,
    ProofsController,
    StopDetailsController,
)
from server.orders.store import OrderStore
from server.settings import Settings
from server.tracking.console import Hub, console_socket
from server.tracking.driver_ws import DriverServices, driver_socket, native_driver
from server.tracking.filters import Limits
from server.tracking.geofences import GeofencesController, GeofenceTracker
from server.tracking.ingest import Ingestor
from server.tracking.osmand import osmand
from server.tracking.routes import VehiclesController
from server.tracking.status import StatusSweeper
from server.web.basemap import BasemapController
from server.web.console import ConsoleDataController
from server.web.pages import PagesController, static_router
from server.web.tracking import TrackingController, Watchers, tracking_socket
from server.webhooks import WebhooksController, WebhookSender

log = logging.getLogger("fleet.server")


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_future_s=settings.ping_max_future_s,
        retention_s=settings.track_retention_s,
        max_speed_mps=settings.max_speed_kmh / 3.6,
        max_batch=settings.ping_batch_max,
        max_messages_per_s=settings.driver_max_messages_per_s,
    )


def create_app(settings: Settings, *, roads: Roads | None = None) -> Litestar:
    """Build the Litestar app for ``settings`` (whose ``redis_url`` must be set) on ``roads``,
    the loaded road network (``None``: a server without routing, as in most tests)."""
    if settings.redis_url is None:
        raise ValueError("create_app needs settings.redis_url; the CLI starts Redis first")
    redis_url = settings.redis_url
    limits = limits_from(settings)

    @asynccontextmanager
    async def redis_lifespan(app: Litestar) -> AsyncIterator[None]:
        # Simulated time when FLEET_CLOCK_RATE is above 1 (server.clock), for this process.
        previous_clock = clock.configure(settings.clock_rate, settings.clock_anchor)
        # A bounded pool that makes callers wait for a free connection instead of failing:
        # thousands of sockets share a few dozen Redis connections.
        pool = aioredis.BlockingConnectionPool.from_url(
            redis_url,
            max_connections=settings.redis_max_connections,
            timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            health_check_interval=30,
        )
        client = aioredis.Redis(connection_pool=pool)
        hub = Hub(
            interval_s=settings.console_interval_s, send_timeout_s=settings.console_send_timeout_s
        )
        app.state.redis = client
        app.state.roads = roads
        ingestor = Ingestor(
            client,
            resolution=settings.h3_resolution,
            limits=limits,
            stale_after_s=settings.stale_after_s,
        )
        await ingestor.start()
        app.state.ingestor = ingestor
        app.state.hub = hub
        app.state.roles = RoleCache(client)
        app.state.orders = OrderStore(client, Sealer(load_or_create_key(settings.data_dir)))
        app.state.proofs = ProofStore(client, app.state.orders.sealer)
        fences = GeofenceTracker(client, resolution=settings.geofence_resolution)
        with contextlib.suppress(RedisError, OSError):
            await fences.reload()
        app.state.fences = fences
        app.state.driver = DriverServices(
            ingestor=ingestor,
            limits=limits,
            fences=fences,
            hub=hub,
            orders=app.state.orders,
            settings=settings,
        )
        reloads: set[asyncio.Task[None]] = set()

        def on_event(raw: bytes) -> None:
            if fences.on_event(raw):
                task = asyncio.create_task(fences.reload())
                reloads.add(task)
                task.add_done_callback(reloads.discard)

        hub.event_hooks.append(on_event)
        watchers = Watchers()  # customer tracking sockets
        hub.event_hooks.append(watchers.on_event)
        hub.position_hooks.append(watchers.on_position)
        app.state.track_watchers = watchers
        planner = None
        if roads is not None:
            with contextlib.suppress(RedisError, OSError):
                await reload_traffic(client, roads, clock.now())

            def on_traffic(raw: bytes) -> None:
                if b'"type": "traffic"' in raw:
                    task = asyncio.create_task(reload_traffic(client, roads, clock.now()))
                    reloads.add(task)
                    task.add_done_callback(reloads.discard)

            hub.event_hooks.insert(0, on_traffic)  # re-weight before the planner wakes
            reoptimize = settings.reoptimize == "on"
            planner = Planner(
                client,
                app.state.orders,
                roads,
                time_limit_s=settings.solver_time_limit_s,
                fresh_limit_s=settings.solver_fresh_limit_s,
                reoptimize=reoptimize,
                margin=settings.replan_margin,
                freeze_s=settings.plan_freeze_s,
                promise_slack_s=settings.promise_slack_s or None,  # 0: off
                time_zone=settings.time_zone,
            )
            wake_on = REPLAN_ON if reoptimize else PLAN_ONCE_ON
            hub.event_hooks.append(lambda raw: _maybe_replan(planner, raw, wake_on))
        app.state.planner = planner
        sweeper = StatusSweeper(
            client,
            stale_after_s=settings.stale_after_s,
            offline_after_s=settings.offline_after_s,
            interval_s=min(1.0, settings.stale_after_s / 4),
            resolution=settings.h3_resolution,
        )
        alerts = NodeAlerts(
            client,
            NodeLimits(
                processing_s=settings.processing_limit_s,
                departure_s=settings.departure_limit_s,
                lead_time_s=settings.lead_time_limit_s,
            ),
            interval_s=settings.alert_sweep_s,
            error_rate=ErrorRateLimit(
                limit=settings.error_rate_limit,
                window_s=settings.error_rate_window_s,
                min_attempts=settings.error_rate_min_attempts,
            ),
        )
        subscribed = asyncio.Event()
        fan_out = asyncio.create_task(_keep_running(hub, client, subscribed), name="console-hub")
        statuses = asyncio.create_task(sweeper.run(), name="status-sweeper")
        node_alerts = asyncio.create_task(alerts.run(), name="node-alerts")
        planning = asyncio.create_task(planner.run(), name="planner") if planner else None
        eta_refresh = None
        if roads is not None and settings.reoptimize == "on":
            refresher = EtaRefresher(
                client, app.state.orders, roads, arrive_radius_m=settings.arrive_radius_m
            )
            eta_refresh = asyncio.create_task(
                run_leased(
                    Lease(client, keys.ETAS_LEASE, ttl_s=3 * settings.eta_refresh_s),
                    refresher.refresh,
                    interval_s=settings.eta_refresh_s,
                    log=log,
                ),
                name="eta-refresh",
            )
        traffic_clock = (
            asyncio.create_task(
                keep_traffic_current(client, roads, refresh_s=30.0), name="traffic-clock"
            )
            if roads is not None
            else None
        )
        ping_counts = asyncio.create_task(ingestor.count_forever(), name="ping-counts")
        archiving = None
        if settings.archive_after_days > 0:
            archiving = asyncio.create_task(
                run_leased(
                    Lease(client, keys.ARCHIVE_LEASE, ttl_s=2 * SWEEP_S),
                    functools.partial(
                        archive_ended,
                        redis_url,
                        app.state.orders.sealer,
                        settings.data_dir / "archive" / "orders.jsonl",
                        settings.archive_after_days * 86_400,
                    ),
                    interval_s=SWEEP_S,
                    log=log,
                ),
                name="archive",
            )
        webhooks = asyncio.create_task(
            WebhookSender(client, app.state.orders.sealer, retry_s=settings.webhook_retry_s).run(),
            name="webhooks",
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(subscribed.wait(), settings.redis_timeout_s)
        tune_for_many_sockets()  # the road network above all: frozen out of every pass
        try:
            yield
        finally:
            tasks = (fan_out, statuses, node_alerts, planning, traffic_clock, eta_refresh, webhooks,
                     ping_counts, archiving)  # fmt: skip
            for task in tasks:
                if task is not None:
                    await stop_task(task, log)
            await ingestor.stop()
            if planner is not None:
                planner.close()
            await client.aclose()
            await pool.aclose()
            clock.use(previous_clock)

    def from_state(name: str) -> Provide:
        def provide(state: State) -> Any:
            return state[name]

        return Provide(provide, sync_to_thread=False)

    def provide_settings() -> Settings:
        return settings

    def provide_limits() -> Limits:
        return limits

    app = Litestar(
        route_handlers=[
            HealthController,
            VehiclesController,
            GeofencesController,
            OrdersController,
            ProofsController,
            StopDetailsController,
            AlertsController,
            DispatchController,
            TrafficController,
            RoadsController,
            WebhooksController,
            MetricsController,
            driver_socket,
            console_socket,
            osmand,
            PagesController,
            BasemapController,
            ConsoleDataController,
            TrackingController,
            tracking_socket,
            static_router(),
        ],
        lifespan=[redis_lifespan],
        dependencies={
            "redis": from_state("redis"),
            "ingestor": from_state("ingestor"),
            "hub": from_state("hub"),
            "fences": from_state("fences"),
            "driver": from_state("driver"),
            "orders": from_state("orders"),
            "proofs": from_state("proofs"),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "limits": Provide(provide_limits, sync_to_thread=False),
        },
        # Served by server.nativews when fleet's own server runs the app (server.serving).
        state=State({"native_websockets": {"/ws/driver": native_driver}}),
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="fleet",
            version=__version__,
            description="Real-time fleet tracking and dispatch server.",
            path="/schema",
            render_plugins=[JsonRenderPlugin(), SwaggerRenderPlugin()],
        ),
    )
    document_errors(app)
    return app


REPLAN_ON = frozenset({"order", "vehicle", "traffic", "eta_slip", "off_route"})
PLAN_ONCE_ON = frozenset({"order", "vehicle"})  # without re-optimisation: new work only


def _maybe_replan(planner: Planner, raw: bytes, wake_on: frozenset[str] = REPLAN_ON) -> None:
    """Wake the planner for events that change the problem (orders, vehicles, traffic, an ETA
    slipping past its window, a vehicle leaving its route), except the planner's own order
    updates."""
    try:
        event = json.loads(raw)
    except ValueError:
        return
    if not isinstance(event, dict):
        return
    kind = event.get("type")
    if kind == "eta":
        kind = "eta_slip" if event.get("slipped") else None
    if _nothing_to_plan(event):
        kind = None
    if kind in wake_on and event.get("by") != "planner":
        planner.request()


def _nothing_to_plan(event: dict[str, Any]) -> bool:
    """Whether an event changes nothing the planner uses: an order's customer instructions or
    rating, customer contact or notes; a vehicle just registered (no position yet).

    >>> _nothing_to_plan({"type": "vehicle", "vehicle_id": "v", "added": True})
    True
    >>> _nothing_to_plan({"type": "vehicle", "vehicle_id": "v", "status": "maintenance"})
    False
    >>> _nothing_to_plan({"type": "order", "action": "feedback"})
    True
    >>> _nothing_to_plan({"type": "order", "action": "update", "fields": ["customer", "notes"]})
    True
    >>> _nothing_to_plan({"type": "order", "action": "update", "fields": ["notes", "window"]})
    False
    >>> _nothing_to_plan({"type": "order", "status": "cancelled"})
    False
    """
    if event.get("type") == "vehicle":
        return bool(event.get("added"))
    action = event.get("action")
    if action in ("instructions", "feedback"):
        return True
    return action == "update" and set(event.get("fields") or ["?"]) <= {"customer", "notes"}


async def _keep_running(hub: Hub, client: aioredis.Redis, subscribed: asyncio.Event) -> None:
    """Run the hub's subscription; after a Redis failure, resubscribe with a short back-off
    (it grows while Redis stays away, and starts short again after each working subscription)."""
    delay = 0.1
    while True:
        try:
            await hub.run(client, subscribed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep the fan-out alive through Redis restarts
            log.warning("console fan-out lost its Redis subscription (%s); retrying", exc)
            if subscribed.is_set():  # it had worked: this is a new outage
                subscribed.clear()
                delay = 0.1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
