"""``fleet demo`` as a user runs it: vans move within 10 s, the printed links work."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from geo.distance import haversine_m
from tests.conftest import REPO, default_sigint, scaled


class Demo:
    """``fleet demo`` in a subprocess, as a user runs it, with its output gathered."""

    def __init__(self, helsinki_pbf: Path, data_dir: Path, *flags: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
        env.update(FLEET_DATA_DIR=str(data_dir), FLEET_OSM_FILE=str(helsinki_pbf), FLEET_PORT="0")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "demo", *flags],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=default_sigint,
        )  # fmt: skip
        self.lines: list[str] = []
        stdout = self.process.stdout
        self.reader = threading.Thread(target=lambda: self.lines.extend(stdout or []), daemon=True)
        self.reader.start()

    def printed(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            assert self.process.poll() is None, "".join(self.lines)
            time.sleep(0.1)
        raise AssertionError(f"never printed {pattern!r}:\n" + "".join(self.lines))

    def console(self) -> tuple[str, dict[str, str]]:
        """The printed console's base URL and a dispatcher's authorisation header."""
        console = self.printed(r"console:\s+(http://\S+)/console#token=(\S+)", scaled(30))
        return console.group(1), {"Authorization": f"Bearer {console.group(2)}"}

    def first_move_s(self, base: str, auth: dict[str, str]) -> float | None:
        """Seconds from the command to the first van seen 20 m from where it was first seen."""
        first: dict[str, tuple[float, float]] = {}
        while time.monotonic() - self.started < scaled(30):
            for v in httpx.get(f"{base}/vehicles", headers=auth).json():
                here = (v["lat"], v["lon"])
                first.setdefault(v["id"], here)
                if haversine_m(*first[v["id"]], *here) > 20:
                    return time.monotonic() - self.started
            time.sleep(0.5)
        return None

    def stop(self) -> None:
        """Ctrl-C, as a user stops it; it must end cleanly."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        self.reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        assert self.process.returncode == 0, "".join(self.lines)
        assert "stopping" in "".join(self.lines)


def test_demo_moves_vans_within_ten_seconds_and_its_tracking_link_shows_an_eta(
    helsinki_pbf: Path, tmp_path: Path
) -> None:
    demo = Demo(helsinki_pbf, tmp_path, "--vehicles", "6", "--duration", "90")
    try:
        base, auth = demo.console()
        assert demo.printed(r"driver:\s+http://\S+/driver#token=\S+", 1)
        assert httpx.get(f"{base}/console").status_code == 200
        moved_after = demo.first_move_s(base, auth)
        assert moved_after is not None, "no van moved"
        print(f"first van moved {moved_after:.1f} s after the command started")
        assert moved_after <= scaled(10), f"the first van moved only after {moved_after:.1f} s"

        link = demo.printed(r"tracking:\s+(http://\S+)/t/(\S+)", scaled(60))
        assert httpx.get(f"{link.group(1)}/t/{link.group(2)}").status_code == 200
        eta = None
        deadline = time.monotonic() + scaled(30)
        while eta is None and time.monotonic() < deadline:
            view = httpx.get(f"{link.group(1)}/track/{link.group(2)}").json()
            eta = view["eta"]
            time.sleep(0.5)
        assert eta is not None, f"the tracking link never showed an ETA: {view}"
        assert eta >= time.time() * 1000 - 1000, "an ETA in the past"
    finally:
        demo.stop()


def test_demo_runs_faster_than_real_time_on_one_clock(helsinki_pbf: Path, tmp_path: Path) -> None:
    demo = Demo(helsinki_pbf, tmp_path, "--vehicles", "4", "--speed", "4", "--duration", "240")
    try:
        base, auth = demo.console()
        assert demo.printed(r"4x faster than real time", 1)
        clock = httpx.get(f"{base}/web/config").json()["clock"]
        assert clock["rate"] == 4.0
        assert clock["now_ms"] > time.time() * 1000 + 1000, "the server's time runs ahead"
        assert demo.first_move_s(base, auth) is not None, "no van moved"
    finally:
        demo.stop()
