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


def test_demo_moves_vans_within_ten_seconds_and_its_tracking_link_shows_an_eta(
    helsinki_pbf: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env.update(FLEET_DATA_DIR=str(tmp_path), FLEET_OSM_FILE=str(helsinki_pbf), FLEET_PORT="0")
    started = time.monotonic()
    demo = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "demo", "--vehicles", "6", "--duration", "90"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=default_sigint,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout or []), daemon=True)
    reader.start()
    try:

        def printed(pattern: str, timeout: float) -> re.Match[str]:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for line in list(lines):
                    if m := re.search(pattern, line):
                        return m
                assert demo.poll() is None, "".join(lines)
                time.sleep(0.1)
            raise AssertionError(f"never printed {pattern!r}:\n" + "".join(lines))

        console = printed(r"console:\s+(http://\S+)/console#token=(\S+)", scaled(30))
        base, token = console.group(1), console.group(2)
        assert printed(r"driver:\s+http://\S+/driver#token=\S+", 1)
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/console").status_code == 200
        first: dict[str, tuple[float, float]] = {}
        moved_after = None
        while time.monotonic() - started < scaled(30):
            for v in httpx.get(f"{base}/vehicles", headers=auth).json():
                here = (v["lat"], v["lon"])
                first.setdefault(v["id"], here)
                if haversine_m(*first[v["id"]], *here) > 20:
                    moved_after = time.monotonic() - started
            if moved_after is not None:
                break
            time.sleep(0.5)
        assert moved_after is not None, "no van moved"
        print(f"first van moved {moved_after:.1f} s after the command started")
        assert moved_after <= scaled(10), f"the first van moved only after {moved_after:.1f} s"

        link = printed(r"tracking:\s+(http://\S+)/t/(\S+)", scaled(60))
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
        demo.send_signal(signal.SIGINT)  # Ctrl-C, as a user stops it
        demo.wait(timeout=30)
        reader.join(timeout=5)
        if demo.stdout is not None:
            demo.stdout.close()
    assert demo.returncode == 0, "".join(lines)
    assert "stopping" in "".join(lines)
