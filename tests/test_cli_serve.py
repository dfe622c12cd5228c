"""``fleet serve`` as a user runs it: a subprocess with its own private Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from server.redis_process import MAX_RESTARTS, PrivateRedis
from tests.conftest import default_sigint, scaled
from tests.dispatch.test_planning_service import reply_to
from tests.geo.conftest import TINY_OSM
from tests.tracking.test_driver_socket import ws_url

FLEET = [sys.executable, "-m", "server.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env.update(extra)
    return env


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


class Served:
    def __init__(self, process: subprocess.Popen[str], base: str, data_dir: Path) -> None:
        self.process, self.base, self.data_dir = process, base, data_dir

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    @property
    def redis_pid(self) -> int:
        owner = json.loads((self.data_dir / "redis" / "owner.json").read_text())
        return int(owner["redis_pid"])


def _start(data_dir: Path) -> Served:
    data_dir.mkdir(parents=True, exist_ok=True)
    tiny = data_dir / "tiny.osm"
    tiny.write_text(TINY_OSM)
    process = subprocess.Popen(
        [*FLEET, "serve", "--port", "0", "--data-dir", str(data_dir), "--osm", str(tiny)],
        env=_env(FLEET_LOG_LEVEL="warning"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=default_sigint,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + scaled(20)
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if match := re.search(r"listening on (http://\S+)", line):
            base = match.group(1)
            # It says it listens: a client connecting at once gets in (waiting in the backlog
            # while the server finishes starting), as the simulator's does. (It was refused.)
            assert httpx.get(f"{base}/health", timeout=scaled(10)).status_code == 200
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/ready").status_code == 200:
                        return Served(process, base, data_dir)
                except httpx.TransportError:
                    time.sleep(0.05)
        if not line and process.poll() is not None:
            break
    process.kill()
    output = process.stdout.read()
    process.stdout.close()
    pytest.fail(f"fleet serve did not become ready: {output}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = _start(tmp_path / "var")
    yield s
    s.close()


def test_serve_starts_its_own_redis_and_ctrl_c_stops_it(served: Served) -> None:
    answer = httpx.get(f"{served.base}/ready")
    assert answer.json()["checks"] == {"roads": "tiny: 4 nodes", "redis": "ok"}
    redis_pid = served.redis_pid
    assert _alive(redis_pid)
    assert (served.data_dir / "redis" / "appendonlydir").is_dir(), "AOF persistence is on"

    served.process.send_signal(signal.SIGINT)
    assert served.process.wait(scaled(15)) == 130  # the conventional exit status after Ctrl-C
    assert _wait_gone(redis_pid, scaled(5)), "Ctrl-C left redis-server running"
    assert not (served.data_dir / "redis" / "owner.json").exists()


def test_sigkill_does_not_leave_redis_running(served: Served) -> None:
    redis_pid = served.redis_pid
    served.process.kill()
    served.process.wait()
    assert _wait_gone(redis_pid, scaled(10)), "redis-server outlived a SIGKILLed server"
    # And the next start on the same data folder works, with the data kept.
    again = _start(served.data_dir)
    try:
        assert httpx.get(f"{again.base}/ready").status_code == 200
    finally:
        again.process.send_signal(signal.SIGINT)
        again.process.wait(scaled(15))
        again.close()


def test_a_second_server_on_the_same_data_folder_is_refused(served: Served) -> None:
    second = subprocess.run(
        [*FLEET, "serve", "--port", "0", "--data-dir", str(served.data_dir)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=scaled(20),
    )
    assert second.returncode == 2
    assert "in use by another fleet process" in second.stderr


def test_unreachable_redis_url_is_one_sentence_and_fails_fast() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [*FLEET, "serve", "--port", "0"],
        env=_env(FLEET_REDIS_URL="redis://127.0.0.1:1"),
        capture_output=True,
        text=True,
        timeout=scaled(20),
    )
    assert time.monotonic() - started < scaled(5)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("fleet: Cannot reach Redis at redis://127.0.0.1:1 (FLEET_REDIS_URL)")


def test_invalid_setting_names_the_variable() -> None:
    result = subprocess.run(
        [*FLEET, "serve"],
        env=_env(FLEET_H3_RESOLUTION="99"),
        capture_output=True,
        text=True,
        timeout=scaled(20),
    )
    assert result.returncode == 2
    assert "FLEET_H3_RESOLUTION=99 is invalid" in result.stderr


def test_missing_redis_binary_is_one_sentence(tmp_path: Path) -> None:
    result = subprocess.run(
        [*FLEET, "serve", "--port", "0", "--data-dir", str(tmp_path)],
        env=_env(PATH=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=scaled(20),
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "fleet: redis-server is not installed: install it (apt-get install redis-server) "
        "or set FLEET_REDIS_URL to a running Redis."
    )


@pytest.mark.parametrize(
    ("command", "prefix"),
    [
        (["serve", "--osm"], "Cannot load the road network: "),
        (["demo", "--duration", "1", "--osm"], "Cannot load the road network: "),
        (["simulate", "--scenario", "smoke", "--osm"], "Cannot load the road network: "),
        (["bench", "routing", "--osm"], "Cannot load the road network: "),
        (["import-osm"], "Cannot import {extract}: "),
    ],
)
def test_a_file_that_is_no_road_extract_is_one_sentence(
    command: list[str], prefix: str, tmp_path: Path
) -> None:
    extract = tmp_path / "notes.osm.pbf"
    extract.write_text("these are notes, not OpenStreetMap data\n")
    result = subprocess.run(
        [*FLEET, *command, str(extract)],
        env=_env(FLEET_DATA_DIR=str(tmp_path / "data")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    start = "fleet: " + prefix.format(extract=extract) + f"cannot read {extract}: "
    assert lines[0].startswith(start), lines[0]
    assert lines[0].endswith("."), lines[0]
    assert not lines[0].endswith(".."), lines[0]


@pytest.mark.parametrize("command", ["serve", "demo", "simulate", "import-osm", "bench"])
def test_every_subcommand_has_help(command: str) -> None:
    result = subprocess.run(
        [*FLEET, command, "--help"], capture_output=True, text=True, timeout=scaled(20)
    )
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: fleet {command}")


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("FLEET_PLAN_FREEZE_S", "expected NAME=VALUE"),
        ("FLEET_PLAN_FREZE_S=900", "FLEET_PLAN_FREZE_S is not a setting"),
        ("FLEET_PLAN_FREEZE_S=soon", "FLEET_PLAN_FREEZE_S=soon is invalid"),
        ("FLEET_REOPTIMIZE=off", "FLEET_REOPTIMIZE: this command sets it itself"),
    ],
)
def test_a_bad_server_setting_is_refused_before_anything_starts(flag: str, message: str) -> None:
    _simulate_refused(["--server-setting", flag], message)


def _simulate_refused(flags: list[str], message: str) -> None:
    """``fleet simulate`` with ``flags`` stops with ``message`` before its run begins."""
    result = subprocess.run(
        [*FLEET, "simulate", "--scenario", "smoke", *flags],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=scaled(20),
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "scenario" not in result.stdout, "refused before the run began"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["ingest", "--vehicles", "0"], "--vehicles 0 is invalid: must be at least 1."),
        (["ingest", "--rate", "-1"], "--rate -1.0 is invalid: must be above 0."),
        (["ingest", "--rate", "nan"], "--rate nan is invalid: must be above 0."),
        (["ingest", "--drop", "1.5"], "--drop 1.5 is invalid: must be from 0 to 1."),
        (["ingest", "--workers", "0"], "--workers 0 is invalid: must be at least 1."),
        (["ingest", "--repeat", "0"], "--repeat 0 is invalid: must be at least 1."),
        (["dispatch", "--limits", "1,soon"], "--limits 1,soon is invalid"),
        (["dispatch", "--trials", "0"], "--trials 0 is invalid: must be at least 1."),
    ],
)
def test_a_bad_benchmark_option_is_refused_before_anything_starts(
    flags: list[str], message: str
) -> None:
    result = subprocess.run(
        [*FLEET, "bench", *flags], env=_env(), capture_output=True, text=True, timeout=scaled(20)
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == "", "refused before Redis or a server started"


def test_server_settings_take_short_or_full_names() -> None:
    from server.cli import _server_settings

    given = ["plan_freeze_s=900", "FLEET_CONSOLE_INTERVAL_S = 0.05"]
    assert _server_settings(given) == {
        "FLEET_PLAN_FREEZE_S": "900",
        "FLEET_CONSOLE_INTERVAL_S": "0.05",
    }
    assert _server_settings(None) == {}


def test_scenario_options_set_gps_noise_and_failures_by_reason() -> None:
    from server.cli import _scenario_from, build_parser

    def scenario(*flags: str) -> object:
        args = build_parser().parse_args(["simulate", "--scenario", "rush", *flags])
        return _scenario_from(args, "rush")

    s = scenario("--gps-sigma", "12", "--failure-rate", "refused=0.1", "--failure-rate",
                 "customer_absent=0.05")  # fmt: skip
    assert (s.gps_sigma_m, s.failure_reasons) == (  # type: ignore[attr-defined]
        12.0,
        (("refused", 0.1), ("customer_absent", 0.05)),
    )
    s = scenario("--failure-rate", "0.2")
    assert (s.failure_rate, s.failure_reasons) == (0.2, ())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--failure-rate", "0.1", "--failure-rate", "refused=0.1"], "(not both)"),
        (["--failure-rate", "often"], "'often' is not a number"),
        (["--failure-rate", "late=0.1"], "unknown failure reason 'late'"),
        (["--gps-sigma", "-3"], "the GPS noise must be 0 m or more"),
    ],
)
def test_a_bad_scenario_option_is_refused_before_anything_starts(
    flags: list[str], message: str
) -> None:
    _simulate_refused(flags, message)


def _token(data_dir: Path) -> str:
    result = subprocess.run(
        [*FLEET, "token", "create", "--data-dir", str(data_dir)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=scaled(20),
        check=True,
    )
    return result.stdout.strip()


async def _ping(base: str, token: str, ts: int) -> dict[str, Any]:
    """One ping over a new driver socket; the answer to it (the van's route, which a socket
    gets first once the planner has stored one, skipped)."""
    async with connect(ws_url(base, f"/ws/driver?token={token}")) as driver:
        ping = {"lat": 60.1699, "lon": 24.9384 + ts % 1000 * 1e-6, "ts": ts}
        return await reply_to(driver, {"type": "pings", "seq": 1, "pings": [ping]})


async def test_a_private_redis_that_dies_is_started_again_with_its_data(served: Served) -> None:
    staff = {"Authorization": f"Bearer {_token(served.data_dir)}"}
    answer = httpx.post(f"{served.base}/vehicles", headers=staff, json={"id": "van-r"})
    assert answer.status_code == 201, answer.text
    driver_token = answer.json()["token"]
    before = int(time.time() * 1000)
    assert (await _ping(served.base, driver_token, before))["type"] == "ack"
    await asyncio.sleep(1.5)  # the AOF is fsynced every second: a crash loses at most that
    old_pid = served.redis_pid

    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + scaled(20)
    while served.redis_pid == old_pid or httpx.get(f"{served.base}/ready").status_code != 200:
        assert time.monotonic() < deadline, "the server never had a Redis again"
        await asyncio.sleep(0.1)

    # The data came back from the append-only file, and pings flow again, to the console too.
    track = httpx.get(f"{served.base}/vehicles/van-r/track?from={before - 1000}", headers=staff)
    assert track.status_code == 200, track.text
    assert [point["ts"] for point in track.json()] == [before]
    token = staff["Authorization"].removeprefix("Bearer ")
    async with connect(ws_url(served.base, f"/ws/console?token={token}")) as console:
        # The fan-out resubscribes on its own (a short back-off): ping until a console sees it.
        sent: set[int] = set()
        while True:
            assert time.monotonic() < deadline, "no position reached the console again"
            now = int(time.time() * 1000)
            assert (await _ping(served.base, driver_token, now))["type"] == "ack"
            sent.add(now)
            with contextlib.suppress(TimeoutError):
                frame = json.loads(await asyncio.wait_for(console.recv(), 0.5))
                if frame["type"] == "positions" and any(
                    v["id"] == "van-r" and v["ts"] in sent for v in frame["vehicles"]
                ):
                    break
    served.process.send_signal(signal.SIGINT)
    output, _ = served.process.communicate(timeout=scaled(15))
    assert f"the private redis-server (pid {old_pid}) exited with status -9" in output
    assert "restarted the private redis-server" in output


def _kill_until_exit(served: Served, kills: int) -> int:
    """SIGKILL the server's Redis each time it is back, until the server exits; the kills made."""
    made, last = 0, 0
    deadline = time.monotonic() + scaled(30)
    while served.process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = served.redis_pid
            if pid != last and _alive(pid) and made < kills:
                os.kill(pid, signal.SIGKILL)
                made, last = made + 1, pid
        time.sleep(0.05)
    return made


def test_a_redis_that_keeps_dying_stops_the_server_with_the_reason(served: Served) -> None:
    kills = _kill_until_exit(served, kills=MAX_RESTARTS + 1)
    output, _ = served.process.communicate(timeout=scaled(15))
    assert kills == MAX_RESTARTS + 1
    assert served.process.returncode == 2, output
    assert (
        f"fleet: Stopped: the private redis-server exited {MAX_RESTARTS + 1} times within 60 s"
        in output
    )
    assert output.count("exited with status -9") == MAX_RESTARTS + 1
    assert not (served.data_dir / "redis" / "owner.json").exists()


def test_a_supervisor_that_gives_up_says_why_and_calls_back(tmp_path: Path) -> None:
    gave_up = threading.Event()
    private = PrivateRedis(
        tmp_path, supervise=True, on_give_up=gave_up.set, watch_interval_s=0.05, max_restarts=1
    )
    with private:
        first = private.process
        assert first is not None
        first.kill()
        deadline = time.monotonic() + scaled(10)
        while private.process is first:
            assert time.monotonic() < deadline, "the supervisor did not start Redis again"
            time.sleep(0.05)
        second = private.process
        assert second is not None
        second.kill()
        assert gave_up.wait(scaled(10))
        assert private.gave_up is not None
        assert private.gave_up.startswith("the private redis-server exited 2 times within 60 s")
        assert private.process is None
    assert not (tmp_path / "redis" / "owner.json").exists()
