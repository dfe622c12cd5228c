"""Typed, validated settings, read once from ``FLEET_*`` environment variables and CLI flags.

Every field of :class:`Settings` maps to one variable: ``h3_resolution`` ↔ ``FLEET_H3_RESOLUTION``.
:func:`load_settings` is called once by the CLI; the result is passed to ``create_app`` and to
everything else that needs it. Nothing reads the environment at import time.

An invalid value raises :class:`SettingsError`, whose message names the variable, the value and
what is allowed, so start-up stops with one clear sentence.
"""

from __future__ import annotations

import dataclasses
import os
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlparse

from server.tracking.wire import FailureReason

PREFIX = "FLEET_"


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the variable."""


def _parse_int(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
        if lo is not None and hi is not None and not lo <= value <= hi:
            raise ValueError(f"must be a whole number from {lo} to {hi}")
        if lo is not None and value < lo:
            raise ValueError(f"must be a whole number of at least {lo}")
        return value

    return parse


def _parse_float(
    lo: float, hi: float | None = None, *, lo_open: bool = False
) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError("must be a number") from None
        if value < lo or (lo_open and value == lo) or value != value:
            raise ValueError(f"must be a number {'above' if lo_open else 'of at least'} {lo:g}")
        if hi is not None and value > hi:
            raise ValueError(f"must be a number of at most {hi:g}")
        return value

    return parse


def _parse_optional_float(lo: float) -> Callable[[str], float | None]:
    finite = _parse_float(lo)

    def parse(raw: str) -> float | None:
        return finite(raw) if raw.strip() else None

    return parse


def _parse_clock_rate(raw: str) -> float:
    value = _parse_float(1.0)(raw)
    if value == float("inf"):
        raise ValueError("must be a finite number of at least 1")
    return value


def _parse_redis_url(raw: str) -> str | None:
    raw = raw.strip()
    if not raw:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://host:port/db, rediss:// or unix:// URL")
    if parsed.scheme != "unix" and not parsed.hostname:
        raise ValueError("must name a host, as in redis://127.0.0.1:6379/0")
    try:
        parsed.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return raw


def _parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _parse_path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("must be a path")
    return Path(raw.strip()).expanduser()


def _parse_optional_path(raw: str) -> Path | None:
    return Path(raw.strip()).expanduser() if raw.strip() else None


def _parse_str(raw: str) -> str:
    return raw.strip()


def _parse_zone(raw: str) -> str:
    name = raw.strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as Europe/Helsinki or UTC") from None
    return name


def _parse_reasons(raw: str) -> frozenset[str]:
    known = get_args(FailureReason)
    reasons = {r.strip().lower() for r in raw.split(",") if r.strip()}
    if unknown := sorted(reasons - set(known)):
        raise ValueError(
            f"names {', '.join(unknown)}: a comma-separated list of {', '.join(known)}"
            " (or empty) is allowed"
        )
    return frozenset(reasons)


def _meta(parse: Callable[[str], Any], doc: str) -> dict[str, Any]:
    return {"parse": parse, "doc": doc}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server can be configured with. Defaults are safe for a laptop demo."""

    host: str = field(
        default="127.0.0.1", metadata=_meta(_parse_str, "address the HTTP server binds to")
    )
    port: int = field(
        default=8000, metadata=_meta(_parse_int(0, 65535), "HTTP port (0 = any free port)")
    )
    redis_url: str | None = field(
        default=None,
        metadata=_meta(
            _parse_redis_url,
            "Redis to use; unset = start a private redis-server with its data in FLEET_DATA_DIR",
        ),
    )
    redis_timeout_s: float = field(
        default=3.0,
        metadata=_meta(
            _parse_float(0.0, lo_open=True), "seconds to wait for Redis to answer at start"
        ),
    )
    redis_max_connections: int = field(
        default=64,
        metadata=_meta(_parse_int(2, 10_000), "Redis connections per server process (a pool)"),
    )
    data_dir: Path = field(
        default=Path("var"),
        metadata=_meta(
            _parse_path, "where the private Redis keeps its AOF and the road cache lives"
        ),
    )
    osm_file: Path | None = field(
        default=None,
        metadata=_meta(
            _parse_optional_path, "road network extract (.osm.pbf); unset = built-in Helsinki"
        ),
    )
    h3_resolution: int = field(
        default=9, metadata=_meta(_parse_int(0, 15), "H3 resolution of the vehicle index")
    )
    geofence_resolution: int = field(
        default=11, metadata=_meta(_parse_int(0, 15), "H3 resolution of the geofence index")
    )
    snap_max_distance_m: float = field(
        default=500.0,
        metadata=_meta(
            _parse_float(0.0, lo_open=True),
            "farther than this from a road = outside the service area",
        ),
    )
    ws_max_frame_bytes: int = field(
        default=65536,
        metadata=_meta(
            _parse_int(256, 16 * 1024 * 1024), "largest WebSocket frame accepted (bytes)"
        ),
    )
    ping_batch_max: int = field(
        default=100, metadata=_meta(_parse_int(1, 10_000), "most pings in one driver message")
    )
    driver_max_messages_per_s: float = field(
        default=20.0,
        metadata=_meta(_parse_float(0.0, lo_open=True), "driver messages a second per connection"),
    )
    ping_max_future_s: float = field(
        default=60.0,
        metadata=_meta(_parse_float(0.0), "pings further ahead of the server clock are rejected"),
    )
    track_retention_s: float = field(
        default=7 * 24 * 3600.0,
        metadata=_meta(_parse_float(0.0, lo_open=True), "how long tracks are kept (seconds)"),
    )
    max_speed_kmh: float = field(
        default=250.0,
        metadata=_meta(_parse_float(0.0, lo_open=True), "a jump faster than this is rejected"),
    )
    stale_after_s: float = field(
        default=60.0,
        metadata=_meta(_parse_float(0.0, lo_open=True), "no ping for this long: stale (seconds)"),
    )
    offline_after_s: float = field(
        default=300.0,
        metadata=_meta(_parse_float(0.0, lo_open=True), "no ping for this long: offline (seconds)"),
    )
    processing_limit_s: float = field(
        default=2 * 3600.0,
        metadata=_meta(_parse_float(0.0, lo_open=True), "received → processed within (seconds)"),
    )
    departure_limit_s: float = field(
        default=3 * 3600.0,
        metadata=_meta(_parse_float(0.0, lo_open=True), "processed → departed within (seconds)"),
    )
    lead_time_limit_s: float = field(
        default=48 * 3600.0,
        metadata=_meta(_parse_float(0.0, lo_open=True), "received → delivered within (seconds)"),
    )
    error_rate_limit: float = field(
        default=0.08,
        metadata=_meta(
            _parse_float(0.0, 1.0),
            "alert when more than this share of drop-off attempts fail in the window (1: never)",
        ),
    )
    error_rate_window_s: float = field(
        default=86_400.0,
        metadata=_meta(
            _parse_float(600.0, 7 * 86_400.0), "the error rate's window (seconds, 10 min to 7 days)"
        ),
    )
    error_rate_min_attempts: int = field(
        default=20,
        metadata=_meta(_parse_int(1), "attempts in the window before the error rate can alert"),
    )
    webhook_retry_s: float = field(
        default=5.0,
        metadata=_meta(
            _parse_float(0.1, 3600.0),
            "a failed webhook delivery is tried again after this, doubling up to 10 minutes",
        ),
    )
    time_zone: str = field(
        default="UTC",
        metadata=_meta(_parse_zone, "the time zone vehicles' working hours are in (IANA name)"),
    )
    archive_after_days: float = field(
        default=0.0,
        metadata=_meta(
            _parse_float(0.0),
            "archive orders this many days after they ended, by themselves (0: only when "
            "`fleet orders archive` is run)",
        ),
    )
    proof_max_bytes: int = field(
        default=1_048_576,
        metadata=_meta(
            _parse_int(1024, 8 * 1_048_576),
            "largest proof-of-delivery image accepted (bytes, 1 KiB to 8 MiB)",
        ),
    )
    alert_sweep_s: float = field(
        default=30.0,
        metadata=_meta(_parse_float(0.0, lo_open=True), "how often node limits are checked"),
    )
    failed_policy: str = field(
        default="retry",
        metadata=_meta(
            _parse_choice("retry", "return"),
            "after a failed delivery: retry (back to the planner) or return (to the sender)",
        ),
    )
    max_attempts: int = field(
        default=3,
        metadata=_meta(
            _parse_int(0, 100),
            "drop-off attempts an order gets: the last one failed, it goes back to the sender "
            "(0: no limit)",
        ),
    )
    return_on: frozenset[str] = field(
        default=frozenset({"refused"}),
        metadata=_meta(
            _parse_reasons,
            "failure reasons after which the parcel goes back to the sender at once, not to "
            "another attempt (comma-separated; empty: none)",
        ),
    )
    hold_on: frozenset[str] = field(
        default=frozenset({"address_wrong"}),
        metadata=_meta(
            _parse_reasons,
            "failure reasons after which the order waits for a dispatcher (a held alert), not "
            "for another attempt at the same place (comma-separated; empty: none)",
        ),
    )
    low_rating: int = field(
        default=2,
        metadata=_meta(
            _parse_int(0, 5),
            "a customer's rating of a delivery at or below this raises a low_rating alert "
            "(0 = never)",
        ),
    )
    eta_refresh_s: float = field(
        default=15.0,
        metadata=_meta(_parse_float(0.0, lo_open=True), "how often live ETAs are recomputed"),
    )
    arrive_radius_m: float = field(
        default=30.0,
        metadata=_meta(
            _parse_float(0.0),
            "a vehicle this close to its next drop-off has arrived there (0: only the driver says)",
        ),
    )
    reoptimize: str = field(
        default="on",
        metadata=_meta(
            _parse_choice("on", "off"),
            "off: plan each order once (no re-assignment, no re-plan on traffic, no live ETAs)",
        ),
    )
    replan_margin: float = field(
        default=0.02,
        metadata=_meta(
            _parse_float(0.0),
            "a re-plan replaces routes only when this share cheaper (or it serves other orders)",
        ),
    )
    plan_freeze_s: float = field(
        default=600.0,
        metadata=_meta(
            _parse_float(0.0),
            "a route's stops due within this many seconds keep their van and order in re-plans",
        ),
    )
    promise_slack_s: float = field(
        default=0.0,
        metadata=_meta(
            _parse_float(0.0),
            "re-plans count a drop-off late this long after the ETA promised at confirmation"
            " (0: off, the windows alone)",
        ),
    )
    solver_time_limit_s: float = field(
        default=0.3,
        metadata=_meta(
            _parse_float(0.0, lo_open=True),
            "time for one planning round's solve (seconds): 500 stops re-planned within 1 s",
        ),
    )
    solver_fresh_limit_s: float = field(
        default=10.0,
        metadata=_meta(
            _parse_float(0.0, lo_open=True),
            "time for a solve from scratch while the planner is idle; an event interrupts it",
        ),
    )
    console_interval_s: float = field(
        default=0.05,
        metadata=_meta(_parse_float(0.01), "console position frames at most this often (seconds)"),
    )
    console_send_timeout_s: float = field(
        default=5.0,
        metadata=_meta(
            _parse_float(0.0, lo_open=True), "a console send slower than this closes it"
        ),
    )
    tile_url: str = field(
        default="",
        metadata=_meta(
            _parse_str,
            "raster tile URL template ({z}/{x}/{y}) for the web maps; empty = offline road basemap",
        ),
    )
    tracking_visible_stops: int = field(
        default=3,
        metadata=_meta(
            _parse_int(0, 1000),
            "customers see the vehicle when their stop is at most this many stops away (0 = never)",
        ),
    )
    tracking_visible_m: float = field(
        default=2000.0,
        metadata=_meta(
            _parse_float(0.0), "… or when the vehicle is at most this many metres away (0 = never)"
        ),
    )
    tracking_visible_min: float = field(
        default=0.0,
        metadata=_meta(
            _parse_float(0.0),
            "… or when its ETA at the customer's stop is at most this many minutes away "
            "(0 = never)",
        ),
    )
    clock_rate: float = field(
        default=1.0,
        metadata=_meta(
            _parse_clock_rate,
            "simulated time runs this many times faster than real time (1 = real time)",
        ),
    )
    clock_anchor: float | None = field(
        default=None,
        metadata=_meta(
            _parse_optional_float(0.0),
            "the real Unix time at which simulated and real time agree; required when"
            " FLEET_CLOCK_RATE is above 1, the same in every process sharing the Redis",
        ),
    )
    log_level: str = field(
        default="info",
        metadata=_meta(_parse_choice("debug", "info", "warning", "error"), "log verbosity"),
    )

    def __post_init__(self) -> None:
        if self.offline_after_s <= self.stale_after_s:
            raise SettingsError(
                f"FLEET_OFFLINE_AFTER_S={self.offline_after_s:g} is invalid: it must be larger "
                f"than FLEET_STALE_AFTER_S={self.stale_after_s:g}."
            )
        if self.clock_rate != 1.0 and self.clock_anchor is None:
            raise SettingsError(
                f"FLEET_CLOCK_RATE={self.clock_rate:g} needs FLEET_CLOCK_ANCHOR: the real Unix "
                "time at which simulated and real time agree, the same for every process."
            )

    @classmethod
    def variables(cls) -> dict[str, str]:
        """``{FLEET_NAME: description}`` for every setting, for docs and ``--help``."""
        return {PREFIX + f.name.upper(): f.metadata["doc"] for f in dataclasses.fields(cls)}


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, str | None] | None = None
) -> Settings:
    """Build :class:`Settings` from ``FLEET_*`` variables, then apply CLI ``overrides``.

    ``overrides`` maps field names to raw CLI values (``None`` means "not given"); they are
    parsed like the variables and win over them. Variables named ``FLEET_TEST_*`` belong to the
    test suite and are ignored here.

    >>> load_settings({"FLEET_H3_RESOLUTION": "8"}).h3_resolution
    8
    >>> load_settings({"FLEET_H3_RESOLUTION": "99"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    server.settings.SettingsError: FLEET_H3_RESOLUTION=99 is invalid: must be a whole number from...
    """
    env = os.environ if environ is None else environ
    known = {PREFIX + f.name.upper(): f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name in env:
            try:
                values[f.name] = f.metadata["parse"](env[name])
            except ValueError as exc:
                raise SettingsError(f"{name}={env[name]} is invalid: {exc}.") from None
    unknown = sorted(
        k
        for k in env
        if k.startswith(PREFIX) and k not in known and not k.startswith("FLEET_TEST_")
    )
    if unknown:
        names = ", ".join(sorted(known))
        raise SettingsError(f"{unknown[0]} is not a setting fleet knows; the settings: {names}.")
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        flag = "--" + key.replace("_", "-")
        try:
            values[key] = fields[key].metadata["parse"](str(raw))
        except ValueError as exc:
            raise SettingsError(f"{flag} {raw} is invalid: {exc}.") from None
    return Settings(**values)
