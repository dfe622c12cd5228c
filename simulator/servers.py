"""A fleet server (with its private Redis) as a child process, for the simulator and the demo.

The child is the real ``fleet serve`` command; it dies with its parent (the server's Redis
dies with the server). The road cache is shared with the caller's data folder, so a second
server does not import the map again.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from server.auth import issue_token
from server.redis_process import die_with_parent

_LISTENING = re.compile(r"listening on (http://\S+)")
_REDIS = re.compile(r"Redis:\s+(redis://\S+)")


class ServerError(RuntimeError):
    """The server process did not come up."""


class ServerProcess:
    def __init__(
        self,
        data_dir: Path,
        *,
        osm_file: Path | None,
        roads_cache: Path,
        port: int = 0,
        host: str = "127.0.0.1",
        settings: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.osm_file = osm_file
        self.roads_cache = roads_cache
        self.port = port
        self.host = host
        self.settings = settings or {}
        self.log = log
        self.base_url = ""
        self.redis_url = ""
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.roads_cache.mkdir(parents=True, exist_ok=True)
        link = self.data_dir / "roads"
        if not link.exists() and link.resolve() != self.roads_cache.resolve():
            link.symlink_to(self.roads_cache.resolve(), target_is_directory=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
        env.update(
            FLEET_DATA_DIR=str(self.data_dir),
            FLEET_PORT=str(self.port),
            FLEET_HOST=self.host,
            FLEET_LOG_LEVEL="warning",
            **self.settings,
        )
        if self.osm_file is not None:
            env["FLEET_OSM_FILE"] = str(self.osm_file)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            preexec_fn=die_with_parent,
        )
        try:
            self._wait_ready(timeout_s=60.0)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, *, timeout_s: float) -> None:
        """Read the server's banner for its URL and its Redis; the rest of its output goes to
        the log file (or nowhere) from a thread, so the server never blocks on a full pipe."""
        assert self._process is not None
        assert self._process.stdout is not None
        lines: list[str] = []
        ready = threading.Event()
        sink = open(self.log, "a") if self.log else open(os.devnull, "w")  # noqa: SIM115

        def copy(stream: IO[str]) -> None:
            with sink:
                for line in stream:
                    if not ready.is_set():
                        lines.append(line)
                        if m := _LISTENING.search(line):
                            self.base_url = m.group(1)
                        if m := _REDIS.search(line):
                            self.redis_url = m.group(1)
                        if self.base_url and self.redis_url:
                            ready.set()
                    sink.write(line)
                    sink.flush()

        self._reader = threading.Thread(
            target=copy, args=(self._process.stdout,), daemon=True, name="server-output"
        )
        self._reader.start()
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.2):
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise ServerError("the fleet server did not start:\n" + "".join(lines[-20:]))

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1)

    def token(self, role: str, label: str) -> str:
        return issue_token(self.redis_url, role, label)

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
