"""The ``fleet`` command line: ``serve``, ``demo``, ``simulate``, ``import-osm``, ``token``,
``orders``, ``backup``, ``restore``, ``bench``.

Settings come from ``FLEET_*`` variables; flags given here win. Errors a user can fix are printed
as one sentence on stderr with exit code 2; nothing prints a traceback for them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from geo.errors import GeoError, OsmImportError
from server.auth import (
    ID_LENGTH,
    TokenLookupError,
    issue_token,
    list_tokens,
    revoke_token,
    token_id,
)
from server.errors import StartupError
from server.orders.archive import ArchiveError
from server.orders.crypto import MissingKeyError
from server.settings import Settings, SettingsError, load_settings

EXIT_USAGE = 2

if TYPE_CHECKING:
    import uvicorn

    from geo.roads import Roads
    from simulator.scenario import Scenario


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (FLEET_HOST, default 127.0.0.1)")
    parser.add_argument("--port", help="HTTP port, 0 = any free port (FLEET_PORT, default 8000)")
    parser.add_argument(
        "--redis-url",
        help="use this Redis instead of starting a private redis-server (FLEET_REDIS_URL)",
    )
    parser.add_argument(
        "--data-dir",
        help="folder for the private Redis data and caches (FLEET_DATA_DIR, default ./var)",
    )
    parser.add_argument(
        "--osm", dest="osm_file", help="road network extract (.osm.pbf) (FLEET_OSM_FILE)"
    )


def _add_admin_flags(parser: argparse.ArgumentParser) -> None:
    """Where an admin command finds Redis and the installation's key."""
    parser.add_argument("--redis-url", help="(FLEET_REDIS_URL)")
    parser.add_argument("--data-dir", help="(FLEET_DATA_DIR, default ./var)")


def _add_scenario_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vehicles", type=int, help="simulated vehicles (scenario's default)")
    parser.add_argument("--orders", type=int, help="orders over the run (scenario's default)")
    parser.add_argument("--duration", type=float, help="seconds to run (scenario's default)")
    parser.add_argument("--seed", type=int, help="random seed (scenario's default)")
    parser.add_argument(
        "--gps-sigma", type=float, metavar="METRES",
        help="GPS noise: the standard deviation of each fix's error (scenario's default, 5 m)",
    )  # fmt: skip
    parser.add_argument(
        "--failure-rate", action="append", metavar="SHARE|REASON=SHARE",
        help="share of first drop-off attempts that fail: a number (the reasons alike), or "
        "REASON=SHARE, repeatable, for customer_absent, refused, address_wrong, other "
        "(scenario's default, 0.03)",
    )  # fmt: skip


def _add_speed_flag(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument(
        "--speed",
        help="run N times faster than real time (server and simulated fleet on one simulated "
        f"clock; default 1 = real time): {example}",
    )


def _settings_from(args: argparse.Namespace) -> Settings:
    names = {f.name for f in dataclasses.fields(Settings)}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    return load_settings(overrides=overrides)


def _serve(settings: Settings, *, banner: Callable[[str, str], list[str]]) -> int:
    """Start Redis (or check the configured one), load the roads, then serve until Ctrl-C.

    ``banner(base_url, redis_url)`` gives the lines printed once everything is up."""
    from server.app import create_app
    from server.redis_process import redis_for
    from server.serving import build_server

    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        raise StartupError(
            f"Cannot listen on {settings.host}:{settings.port} (FLEET_PORT/--port): {exc.strerror}."
        ) from None
    port = sock.getsockname()[1]
    # Listening from now on: a client that reads the banner below and connects at once waits
    # in the backlog until the server accepts (a socket bound but not listening refuses it).
    sock.listen(2048)
    server: uvicorn.Server | None = None

    def stop_serving() -> None:  # the private Redis keeps exiting: stop, and say why
        if server is not None:
            server.should_exit = True

    try:
        with redis_for(
            settings.redis_url,
            settings.data_dir,
            timeout_s=settings.redis_timeout_s,
            on_give_up=stop_serving,
        ) as redis_url:
            settings = dataclasses.replace(settings, redis_url=redis_url, port=port)
            app = create_app(settings, roads=_load_roads(settings))
            server = build_server(
                app, log_level=settings.log_level, ws_max_size=settings.ws_max_frame_bytes
            )
            base = f"http://{settings.host}:{port}"
            for line in banner(base, redis_url):
                print(line, flush=True)
            print(f"  Redis:   {redis_url}", flush=True)
            server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


def _load_roads(settings: Settings) -> Roads:
    """The road network the server runs on (imported on first use, then from the cache)."""
    from geo.roads import Roads
    from server.regions import osm_file_for

    extract = osm_file_for(settings)
    started = time.perf_counter()
    # An extract that cannot be read is one sentence from main(), as for every command.
    roads = Roads.open(
        extract, settings.data_dir / "roads", max_snap_m=settings.snap_max_distance_m
    )
    net = roads.network
    print(
        f"road network {net.name}: {net.node_count:,} nodes, {net.arc_count:,} arcs "
        f"({time.perf_counter() - started:.2f} s)",
        flush=True,
    )
    return roads


def _cmd_import(args: argparse.Namespace) -> int:
    from geo.roads import Roads

    settings = _settings_from(args)
    extract = Path(args.file)
    if not extract.is_file():
        raise StartupError(f"{extract} does not exist.")
    started = time.perf_counter()
    try:
        roads = Roads.open(extract, settings.data_dir / "roads")
    except GeoError as exc:
        raise StartupError(f"Cannot import {extract}: {_clause(exc)}.") from None
    net = roads.network
    print(
        f"{net.name}: {net.node_count:,} nodes, {net.arc_count:,} arcs ready in "
        f"{time.perf_counter() - started:.2f} s; cached under {settings.data_dir / 'roads'}"
    )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    return _serve(
        _settings_from(args),
        banner=lambda base, _: [
            f"fleet server listening on {base}",
            f"  health:  {base}/health",
            f"  ready:   {base}/ready",
            f"  API doc: {base}/schema/swagger",
        ],
    )


def _scenario_from(args: argparse.Namespace, name: str, *, with_duration: bool = True) -> Scenario:
    from simulator.scenario import SCENARIOS

    if name not in SCENARIOS:
        raise StartupError(f"Unknown scenario {name!r}: choose one of {', '.join(SCENARIOS)}.")
    scenario = SCENARIOS[name]
    changes = {
        k: v
        for k, v in (("vehicles", args.vehicles), ("orders", args.orders), ("seed", args.seed))
        if v is not None
    }
    if args.duration is not None and with_duration:
        changes["duration_s"] = args.duration
    for key, value in changes.items():
        if value <= 0 and key != "seed":
            raise StartupError(f"--{key.removesuffix('_s')} must be positive.")
    if args.gps_sigma is not None:
        changes["gps_sigma_m"] = args.gps_sigma
    if args.failure_rate:
        changes.update(_failure_rates(args.failure_rate))
    try:
        return dataclasses.replace(scenario, **changes) if changes else scenario
    except ValueError as exc:
        raise StartupError(f"Bad scenario option: {exc}.") from None


def _failure_rates(specs: list[str]) -> dict[str, Any]:
    """``--failure-rate`` values: one share for all reasons, or ``REASON=SHARE`` pairs."""
    if len(specs) == 1 and "=" not in specs[0]:
        return {"failure_rate": _share(specs[0], "--failure-rate")}
    pairs = []
    for spec in specs:
        reason, sep, share = spec.partition("=")
        if not sep:
            raise StartupError(
                f"--failure-rate {spec!r}: give one share for all reasons, or REASON=SHARE "
                "for each reason (not both)."
            )
        pairs.append((reason.strip(), _share(share, f"--failure-rate {spec}")))
    return {"failure_reasons": tuple(pairs)}


def _share(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise StartupError(f"{flag}: {text!r} is not a number.") from None


def _cmd_demo(args: argparse.Namespace) -> int:
    """The server with a simulated fleet on it (``simulator.run.demo``)."""
    from server.regions import osm_file_for
    from simulator.run import demo

    settings = _settings_from(args)
    if settings.redis_url is not None:
        raise StartupError("fleet demo always runs on a private Redis; unset FLEET_REDIS_URL.")
    demo(
        _scenario_from(args, "demo", with_duration=False),  # --duration only stops it sooner
        osm_file=osm_file_for(settings),
        roads_cache=settings.data_dir / "roads",
        host=settings.host,
        port=settings.port,
        duration_s=args.duration,
        speed=_speed(args.speed),
    )
    return 0


# Set by ``simulate`` and ``bench ingest`` for the servers they start: not for --server-setting.
_MANAGED = {"FLEET_REDIS_URL", "FLEET_DATA_DIR", "FLEET_HOST", "FLEET_PORT", "FLEET_OSM_FILE",
            "FLEET_REOPTIMIZE", "FLEET_LOG_LEVEL"}  # fmt: skip
_CLOCK = {"FLEET_CLOCK_RATE", "FLEET_CLOCK_ANCHOR"}  # real time, or simulate's --speed


def _server_settings(pairs: Sequence[str] | None, *, clock_hint: str = "") -> dict[str, str]:
    """``--server-setting NAME=VALUE`` flags as variables for the servers a command starts,
    each checked as ``fleet serve`` would check it. The servers' clock is the command's:
    ``clock_hint`` says how to set it, if it can be."""
    settings: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        name = name.strip().upper()
        if not sep or not name:
            raise StartupError(f"--server-setting {pair!r}: expected NAME=VALUE.")
        if not name.startswith("FLEET_"):
            name = "FLEET_" + name
        if name in _MANAGED:
            raise StartupError(f"--server-setting {name}: this command sets it itself.")
        if name in _CLOCK:
            raise StartupError(
                f"--server-setting {name}: this command sets the servers' clock itself{clock_hint}."
            )
        settings[name] = value.strip()
    load_settings(settings)  # an unknown name or a bad value: a SettingsError naming it
    return settings


def _speed(raw: str | None) -> float:
    """``--speed``: a number of at least 1 (1 = real time)."""
    if raw is None:
        return 1.0
    try:
        speed = float(raw)
    except ValueError:
        speed = float("nan")
    if not 1 <= speed < float("inf"):
        raise StartupError(f"--speed {raw} is invalid: must be a number of at least 1.")
    return speed


def _cmd_simulate(args: argparse.Namespace) -> int:
    from server.regions import osm_file_for
    from simulator.run import simulate

    settings = _settings_from(args)
    scenario = _scenario_from(args, args.scenario)
    server_settings = _server_settings(args.server_setting, clock_hint=" (with --speed)")
    speed = _speed(args.speed)
    report = Path(args.report or f"var/reports/{scenario.name}-{scenario.seed}.json")
    simulate(
        scenario,
        osm_file=osm_file_for(settings),
        roads_cache=settings.data_dir / "roads",
        report_path=report,
        baseline=not args.no_baseline,
        server_settings=server_settings,
        speed=speed,
    )
    return 0


def _bench_numbers(args: argparse.Namespace) -> list[float]:
    """The benchmark's numeric flags, checked before anything starts; ``--limits`` parsed."""
    rules = [  # flag, value, allowed, what is allowed
        ("--vehicles", args.vehicles, args.vehicles >= 1, "at least 1"),
        ("--rate", args.rate, args.rate > 0, "above 0"),
        ("--per-message", args.per_message, args.per_message >= 1, "at least 1"),
        ("--duration", args.duration, args.duration > 0, "above 0"),
        ("--warmup", args.warmup, args.warmup >= 0, "0 or more"),
        ("--workers", args.workers, args.workers >= 1, "at least 1"),
        ("--consoles", args.consoles, args.consoles >= 0, "0 or more"),
        ("--drop", args.drop, 0 <= args.drop <= 1, "from 0 to 1"),
        ("--repeat", args.repeat, args.repeat >= 1, "at least 1"),
        ("--trials", args.trials, args.trials >= 1, "at least 1"),
        ("--instances", args.instances, args.instances is None or args.instances >= 1,
         "at least 1"),
    ]  # fmt: skip
    for flag, value, allowed, what in rules:
        if not allowed:
            raise StartupError(f"{flag} {value} is invalid: must be {what}.")
    try:
        limits = [float(x) for x in args.limits.split(",")]
    except ValueError:
        limits = []
    if not limits or not all(x > 0 for x in limits):
        raise StartupError(f"--limits {args.limits} is invalid: must be seconds above 0, "
                           "comma-separated.")  # fmt: skip
    return limits


def _cmd_bench(args: argparse.Namespace) -> int:
    import json

    limits = _bench_numbers(args)
    if args.name == "routing":
        from bench import routing

        osm = Path(args.osm_file) if args.osm_file else _default_bench_osm()
        result = routing.run(osm)
    elif args.name == "dispatch":
        from bench import dispatch

        vrp = Path(__file__).resolve().parents[2] / "shared" / "data" / "vrp"
        if not (vrp / "bks.csv").is_file():
            raise StartupError(f"the benchmark instances are not at {vrp}.")
        sets = args.sets.split(",")
        unknown = set(sets) - {*dispatch.SETS, "dynamic"}
        unknown |= set(args.engines.split(",")) - {"fleet", "ortools", "pyvrp", "vroom"}
        if unknown:
            raise StartupError(f"unknown --sets or --engines: {', '.join(sorted(unknown))}.")
        static = [s for s in sets if s != "dynamic"]
        result = {}
        if static:
            result = dispatch.run(
                vrp,
                time_limits=limits,
                sets=static,
                instances=args.instances,
                engines=args.engines.split(","),
            )
        if "dynamic" in sets:
            from bench import replan

            osm = Path(args.osm_file) if args.osm_file else _default_bench_osm()
            result["dynamic"] = replan.run(osm, trials=args.trials)
    elif args.name == "archive":
        from bench import archive

        if not 0 < args.orders <= 1_000_000:
            raise StartupError("--orders: give 1 to 1,000,000.")
        result = archive.run(orders=args.orders)
    elif args.name == "search":
        from bench import search

        if not 0 < args.orders <= 1_000_000:
            raise StartupError("--orders: give 1 to 1,000,000.")
        result = search.run(orders=args.orders)
    else:  # "ingest" (argparse allows only these names)
        from bench import ingest

        load = functools.partial(
            ingest.run,
            server_settings=_server_settings(args.server_setting),
            vehicles=args.vehicles,
            rate=args.rate,
            pings_per_message=args.per_message,
            duration_s=args.duration,
            warmup_s=args.warmup,
            workers=args.workers,
            consoles=args.consoles,
            drop_fraction=args.drop,
        )
        runs = []
        for i in range(args.repeat):
            if args.repeat > 1:
                print(f"run {i + 1} of {args.repeat}", flush=True)
            runs.append(load())
        result = ingest.combine(runs)
        if args.repeat > 1:
            print(ingest.spread_line(result), flush=True)
    print(json.dumps({"bench": args.name, **result}), flush=True)
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    from server.redis_process import redis_for_admin

    settings = _settings_from(args)
    with redis_for_admin(
        settings.redis_url, settings.data_dir, timeout_s=settings.redis_timeout_s
    ) as url:
        if args.token_command == "create":
            token = issue_token(url, args.role, args.label or "")
            print(f"token id {token_id(token)} (what `fleet token revoke` takes)", file=sys.stderr)
            print(token)
        elif args.token_command == "list":
            tokens = list_tokens(url)
            print(f"{'id':<{ID_LENGTH}}  {'role':<10}  {'created (UTC)':<16}  label")
            for t in tokens:
                made = dt.datetime.fromtimestamp(t.created, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")
                print(f"{t.id:<{ID_LENGTH}}  {t.role:<10}  {made:<16}  {t.label}")
            print(f"{len(tokens)} token{'' if len(tokens) == 1 else 's'}", file=sys.stderr)
        else:
            gone = revoke_token(url, args.id)
            print(f"Revoked {gone.role} token {gone.id} ({gone.label or 'no label'}): the API "
                  "refuses it within 10 s and consoles open with it are closed.")  # fmt: skip
    return 0


def _cmd_orders(args: argparse.Namespace) -> int:
    """``fleet orders archive`` and ``fleet orders restore`` (``server.orders.archive``)."""
    import redis

    from server.orders import archive
    from server.orders.crypto import Sealer, load_key
    from server.redis_process import redis_for_admin

    settings = _settings_from(args)
    sealer = Sealer(load_key(settings.data_dir))
    restore = args.orders_command == "restore"
    cutoff_ms = 0 if restore else _cutoff_ms(args)
    path = Path(args.file) if args.file else settings.data_dir / "archive" / "orders.jsonl"
    if restore and not path.is_file():
        raise StartupError(f"No archive at {path}.")
    progress = _every(2.0)
    with redis_for_admin(
        settings.redis_url, settings.data_dir, timeout_s=settings.redis_timeout_s
    ) as url:
        client = redis.Redis.from_url(url)
        try:
            if restore:
                back = archive.restore_orders(
                    client, sealer, path,
                    progress=lambda r: progress(f"… {_orders(r.restored)} restored"),
                )  # fmt: skip
                print(
                    f"Restored {_orders(back.restored)} from {path}; {_orders(back.present)} "
                    "Redis held already stayed as they are."
                )
                return 0
            with open(os.devnull, "ab") if args.dry_run else archive.open_for_append(path) as out:
                done = archive.archive_orders(
                    client, sealer, out, ended_before_ms=cutoff_ms, dry_run=args.dry_run,
                    progress=lambda r: progress(
                        f"… {_orders(r.looked_at)} looked at, {r.archived:,} archived"),
                )  # fmt: skip
        finally:
            client.close()
    before = dt.datetime.fromtimestamp(cutoff_ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")
    if args.dry_run:
        print(f"{_orders(done.archived)} ended before {before}: they would be archived (dry "
              "run: nothing changed).")  # fmt: skip
    else:
        print(
            f"Archived {_orders(done.archived)} ended before {before} to {path} and removed "
            f"them from Redis ({_orders(done.looked_at)} created before then looked at)."
        )
    return 0


def _orders(count: int) -> str:
    return f"{count:,} order" + ("" if count == 1 else "s")


def _cmd_backup(args: argparse.Namespace) -> int:
    from server.backup import backup
    from server.redis_process import redis_for_admin

    settings = _settings_from(args)
    path = Path(args.file)
    if path.is_dir():
        raise StartupError(f"{path} is a folder: give the file to write.")
    if not path.parent.is_dir():
        raise StartupError(f"No folder {path.parent} to write {path.name} in.")
    with redis_for_admin(
        settings.redis_url, settings.data_dir, timeout_s=settings.redis_timeout_s
    ) as url:
        size = backup(url, path)
    key = settings.data_dir / "keys" / "pii.key"
    print(f"Backed up to {path} ({size:,} bytes). Its personal data opens only with {key}: keep "
          "a copy of that key, apart from the back-ups.")  # fmt: skip
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    from server.backup import restore

    settings = _settings_from(args)
    if settings.redis_url is not None:
        raise StartupError(
            "fleet restore fills the private Redis of FLEET_DATA_DIR; restore a Redis of your "
            "own (FLEET_REDIS_URL) with its own tools."
        )
    path = Path(args.file)
    if not path.is_file():
        raise StartupError(f"No back-up at {path}.")
    keys, moved = restore(path, settings.data_dir)
    print(f"Restored {keys:,} keys from {path} into {settings.data_dir / 'redis'}"
          + (f"; the data it replaced is in {moved}." if moved else ".")
          + " Start fleet serve on it as before.")  # fmt: skip
    return 0


def _every(seconds: float) -> Callable[[str], None]:
    """A printer of progress lines to stderr that says at most one every ``seconds``."""
    said = -seconds

    def say(line: str) -> None:
        nonlocal said
        if time.monotonic() - said >= seconds:
            said = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    return say


def _cutoff_ms(args: argparse.Namespace) -> int:
    """``--before TIME`` or ``--older-than DAYS`` (default 90) as Unix ms."""
    if args.before is not None:
        try:
            when = dt.datetime.fromisoformat(args.before)
        except ValueError:
            raise StartupError(
                f"--before {args.before!r} is not an ISO-8601 time (2026-08-31T00:00:00Z)."
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return int(when.timestamp() * 1000)
    days = 90.0 if args.older_than is None else _share(args.older_than, "--older-than")
    if not 0 <= days < 100_000:
        raise StartupError(f"--older-than {args.older_than}: give days, 0 or more.")
    return int((time.time() - days * 86_400) * 1000)


def _default_bench_osm() -> Path:
    """Andorra from ../shared/data/osm when it is there, else the built-in map."""
    from server.regions import ensure_default_region

    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "osm" / "andorra.osm.pbf"
    if shared.is_file():
        return shared
    return ensure_default_region(load_settings().data_dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleet",
        description="Real-time fleet tracking and dispatch server.",
        epilog="Settings: " + ", ".join(Settings.variables()) + ". See docs/ARCHITECTURE.md.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run the server (starts a private Redis unless FLEET_REDIS_URL)"
    )
    _add_server_flags(serve)
    serve.set_defaults(run=_cmd_serve)

    demo = sub.add_parser(
        "demo", help="run the live demo: the server and a simulated fleet on the built-in map"
    )
    _add_server_flags(demo)
    _add_scenario_flags(demo)
    _add_speed_flag(demo, "a shift in minutes: --speed 10 plays an hour in six")
    demo.set_defaults(run=_cmd_demo)

    simulate = sub.add_parser(
        "simulate",
        help="run a simulation scenario and its baseline; write a report",
        description="Runs the scenario twice side by side, with re-optimisation and without "
        "(the baseline: plan each order once), and writes a JSON report, a summary and charts.",
    )
    simulate.add_argument(
        "--scenario", default="rush", help="smoke, rush (30 min, 25 vans, 150 orders) or demo"
    )
    simulate.add_argument("--report", help="the JSON report (default var/reports/NAME-SEED.json)")
    simulate.add_argument("--no-baseline", action="store_true", help="skip the baseline run")
    _add_speed_flag(simulate, "--speed 3 plays the rush scenario's 30 minutes in 10")
    simulate.add_argument(
        "--osm", dest="osm_file", help="road network extract (.osm.pbf) (FLEET_OSM_FILE)"
    )
    simulate.add_argument("--data-dir", help="where the road cache is (FLEET_DATA_DIR)")
    _add_server_setting_flag(simulate, "both servers (re-optimised and baseline)")
    _add_scenario_flags(simulate)
    simulate.set_defaults(run=_cmd_simulate)

    imp = sub.add_parser("import-osm", help="import an OpenStreetMap extract into the road cache")
    imp.add_argument("file", help="the .osm.pbf extract")
    imp.add_argument("--data-dir", help="where the road cache goes (FLEET_DATA_DIR)")
    imp.set_defaults(run=_cmd_import)

    token = sub.add_parser(
        "token", help="create, list or revoke access tokens for the API and the console"
    )
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_sub.add_parser(
        "create",
        help="create a token and print it (only its hash is stored)",
        description="Prints a new token on stdout. Uses FLEET_REDIS_URL, the Redis of a server "
        "running on FLEET_DATA_DIR, or starts that private Redis for a moment.",
    )
    create.add_argument("--role", choices=["dispatcher", "admin"], default="dispatcher")
    create.add_argument("--label", help="who the token is for (free text)")
    listing = token_sub.add_parser(
        "list", help="list the tokens: id, role, when made, label (never the token itself)"
    )
    revoke = token_sub.add_parser(
        "revoke",
        help="revoke a token by the id `list` shows",
        description="The API refuses the token within 10 s; consoles open with it are closed.",
    )
    revoke.add_argument("id", help="the token's id (6 or more of its hex digits)")
    for action in (create, listing, revoke):
        _add_admin_flags(action)
        action.set_defaults(run=_cmd_token)

    orders = sub.add_parser(
        "orders",
        help="archive ended orders out of Redis, or restore them",
        description="Redis keeps every order until it is archived. Uses FLEET_REDIS_URL, the "
        "Redis of a server running on FLEET_DATA_DIR, or starts that private Redis for a moment; "
        "needs that data dir's key (keys/pii.key): personal data stays sealed in the archive.",
    )
    orders_sub = orders.add_subparsers(dest="orders_command", required=True, metavar="ACTION")
    arch = orders_sub.add_parser(
        "archive",
        help="move orders that ended (delivered, returned, cancelled) before a time to a file",
        description="Appends each order that ended before the cut-off, with its audit trail, "
        "as one JSON line to the archive, then removes it from Redis (its tracking link stops "
        "working). Safe to run while servers run, and again after a crash.",
    )
    when = arch.add_mutually_exclusive_group()
    when.add_argument("--older-than", metavar="DAYS", help="ended over DAYS days ago (90)")
    when.add_argument("--before", metavar="TIME", help="ended before an ISO-8601 time (UTC)")
    arch.add_argument("--dry-run", action="store_true", help="count them; change nothing")
    rest = orders_sub.add_parser(
        "restore",
        help="put the orders of an archive back in Redis",
        description="Orders Redis already holds are left as they are.",
    )
    for action in (arch, rest):
        action.add_argument(
            "--file", help="the archive (JSON Lines; default DATA_DIR/archive/orders.jsonl)"
        )
        _add_admin_flags(action)
    orders.set_defaults(run=_cmd_orders)

    back = sub.add_parser(
        "backup",
        help="write a snapshot of the Redis (orders, vehicles, tracks…) to a file",
        description="Takes a consistent snapshot while the servers run, from FLEET_REDIS_URL, "
        "the Redis of a server running on FLEET_DATA_DIR, or that private Redis started for a "
        "moment. Personal data in it opens only with the data dir's keys/pii.key.",
    )
    back.add_argument("file", help="the snapshot to write (a Redis RDB file)")
    rest_all = sub.add_parser(
        "restore",
        help="make a backup the data of FLEET_DATA_DIR (its servers stopped)",
        description="The data there is moved aside (redis/appendonlydir.before-restore-TIME), "
        "not deleted. Only for the private Redis of a data dir.",
    )
    rest_all.add_argument("file", help="a snapshot written by fleet backup")
    for action in (back, rest_all):
        _add_admin_flags(action)
    back.set_defaults(run=_cmd_backup)
    rest_all.set_defaults(run=_cmd_restore)

    bench = sub.add_parser(
        "bench",
        help="run a benchmark; ends with one JSON line of figures",
        description="Benchmarks print progress, then one line of JSON with every figure.",
    )
    bench.add_argument(
        "name",
        choices=["routing", "ingest", "dispatch", "archive", "search"],
        help="which benchmark",
    )
    bench.add_argument("--osm", dest="osm_file", help="routing: road network extract (.osm.pbf)")
    plan = bench.add_argument_group("dispatch")
    plan.add_argument("--limits", default="1,5", help="seconds per instance, comma-separated")
    plan.add_argument(
        "--sets",
        default="solomon,homberger_200,dynamic",
        help="solomon, homberger_200 (static quality) and dynamic (re-planning on a live server)",
    )
    plan.add_argument("--engines", default="fleet,pyvrp,vroom", help="static: solvers to compare")
    plan.add_argument("--trials", type=int, default=8, help="dynamic: events of each kind (8)")
    plan.add_argument("--instances", type=int, help="only the first N of each set")
    kept = bench.add_argument_group("archive, search")
    kept.add_argument("--orders", type=int, default=20_000, help="orders made (20000)")
    load = bench.add_argument_group("ingest")
    load.add_argument("--vehicles", type=int, default=10_000, help="simulated vehicles (10000)")
    load.add_argument("--rate", type=float, default=2.0, help="pings a second per vehicle (2)")
    load.add_argument("--per-message", type=int, default=1, help="pings per message (1)")
    load.add_argument("--duration", type=float, default=60.0, help="measured seconds (60)")
    load.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring (10)")
    load.add_argument("--workers", type=int, default=2, help="server processes (2)")
    load.add_argument("--consoles", type=int, default=2, help="console subscribers (2)")
    load.add_argument("--drop", type=float, default=0.1, help="share of connections cut (0.1)")
    load.add_argument(
        "--repeat", type=int, default=1, help="independent runs (1): the median run and the spread"
    )
    _add_server_setting_flag(load, "the server processes")
    bench.set_defaults(run=_cmd_bench)
    return parser


def _add_server_setting_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                             whose: str) -> None:  # fmt: skip
    parser.add_argument(
        "--server-setting",
        action="append",
        metavar="NAME=VALUE",
        help=f"a FLEET_* setting for {whose}, e.g. FLEET_PLAN_FREEZE_S=900 (repeatable)",
    )


def _clause(exc: Exception) -> str:
    """An exception's message to go inside a sentence (without its own full stop)."""
    return str(exc).rstrip(".")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (SettingsError, StartupError) as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OsmImportError as exc:  # --osm given a file that is no road extract (demo, bench…)
        print(f"fleet: Cannot load the road network: {_clause(exc)}.", file=sys.stderr)
        return EXIT_USAGE
    except (ArchiveError, MissingKeyError, TokenLookupError) as exc:  # orders, token revoke
        print(f"fleet: {_clause(exc)}.", file=sys.stderr)
        return EXIT_USAGE
    except RedisError as exc:  # Redis went away in the middle of an admin command
        print(f"fleet: Redis failed: {_clause(exc)}. Nothing after that was done.", file=sys.stderr)
        return 1
    except OSError as exc:  # a file an admin command reads or writes (archive, back-up)
        print(
            f"fleet: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": ") + ".",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
