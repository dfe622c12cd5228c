"""The private ``redis-server`` that ``fleet serve`` and ``fleet demo`` start when no
``FLEET_REDIS_URL`` is given.

Lifecycle:

1. A free loopback port is chosen; ``redis-server`` starts with persistence on (AOF, fsync every
   second) and its files in ``<data_dir>/redis``, in its own session so that Ctrl-C reaches the
   server first and Redis is stopped after the server has finished with it.
2. The child asks the kernel (``PR_SET_PDEATHSIG``) to send it SIGTERM when its parent dies, so a
   server killed with SIGKILL does not leave Redis running forever.
3. ``<data_dir>/redis/owner.json`` records both pids. A start that finds a live Redis whose owner
   is dead stops it and takes over the data; one whose owner is alive refuses to start.
4. On exit (normal, Ctrl-C, crash) Redis gets SIGTERM, which makes it flush the AOF and exit.
5. Supervised (how ``fleet serve`` runs it), a Redis that exits on its own (killed, out of
   memory) is started again on the same port and folder: it reloads its data from the AOF and the
   server's connections find it again. After ``max_restarts`` restarts (default 5) within
   ``RESTART_WINDOW_S``, the supervisor gives up and calls ``on_give_up`` (``fleet serve`` then
   stops, with the reason, rather than answer 503 forever).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from server.errors import StartupError

log = logging.getLogger("fleet.redis")

_PR_SET_PDEATHSIG = 1
_NO_RETRY = Retry(NoBackoff(), 0)
MAX_RESTARTS = 5  # restarts of a supervised Redis within RESTART_WINDOW_S before giving up
RESTART_WINDOW_S = 60.0


def die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); read its state to be sure.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _is_redis(pid: int) -> bool:
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def check_redis(url: str, *, timeout_s: float, source: str = "FLEET_REDIS_URL") -> None:
    """Raise :class:`StartupError` unless the Redis at ``url`` answers PING within ``timeout_s``."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, retry=_NO_RETRY
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = str(exc).rstrip(".") or type(exc).__name__
        raise StartupError(f"Cannot reach Redis at {url} ({source}): {reason}.") from None
    finally:
        client.close()


class PrivateRedis:
    """A ``redis-server`` child process owned by this process. Use as a context manager."""

    def __init__(
        self,
        data_dir: Path,
        *,
        binary: str = "redis-server",
        host: str = "127.0.0.1",
        startup_timeout_s: float = 10.0,
        stop_timeout_s: float = 10.0,
        supervise: bool = False,
        on_give_up: Callable[[], None] | None = None,
        watch_interval_s: float = 0.5,
        max_restarts: int = MAX_RESTARTS,
    ) -> None:
        self.dir = (Path(data_dir) / "redis").resolve()
        self.binary = binary
        self.host = host
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.supervise = supervise
        self.on_give_up = on_give_up
        self.watch_interval_s = watch_interval_s
        self.max_restarts = max_restarts
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.gave_up: str | None = None  # why the supervisor stopped restarting, once it has
        self._exe = ""
        self._lock = threading.Lock()  # the supervisor and stop() both replace the process
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("Redis has not been started")
        return f"redis://{self.host}:{self.port}/0"

    @property
    def _owner_file(self) -> Path:
        return self.dir / "owner.json"

    def start(self) -> str:
        """Start Redis and wait until it answers; return its URL."""
        exe = shutil.which(self.binary)
        if exe is None:
            raise StartupError(
                f"{self.binary} is not installed: install it (apt-get install redis-server) "
                "or set FLEET_REDIS_URL to a running Redis."
            )
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"Cannot create the Redis data folder {self.dir}: {exc}.") from None
        self._take_over_orphan()
        self._exe = exe
        for attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_port(self.host)
            self._spawn()
            if self._wait_ready():
                if self.supervise:
                    self._stopping.clear()
                    self._supervisor = threading.Thread(
                        target=self._supervise, name="redis-supervisor", daemon=True
                    )
                    self._supervisor.start()
                return self.url
            if attempt == 2:
                break
        log_tail = self._log_tail()
        self.stop()
        raise StartupError(
            f"redis-server did not start within {self.startup_timeout_s:g} s"
            + (f"; its log ends with: {log_tail}" if log_tail else ".")
        )

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [self._exe, *self._arguments()],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        # Written whole, then moved into place: a reader (an admin command looking for the
        # running server's Redis, while the supervisor restarts it) never sees it half-written.
        partial = self._owner_file.with_suffix(".json.partial")
        partial.write_text(
            json.dumps({"owner_pid": os.getpid(), "redis_pid": self.process.pid, "port": self.port})
        )
        os.replace(partial, self._owner_file)

    def _supervise(self) -> None:
        """Start Redis again, on the same port and folder, whenever it exits on its own."""
        recent: collections.deque[float] = collections.deque()
        while not self._stopping.wait(self.watch_interval_s):
            with self._lock:
                if self._stopping.is_set() or self.process is None:
                    return
                code = self.process.poll()
                if code is None:
                    continue
                tail = self._log_tail()
                log.error(
                    "the private redis-server (pid %d) exited with status %d%s",
                    self.process.pid, code, f"; its log ends with: {tail}" if tail else "",
                )  # fmt: skip
                now = time.monotonic()
                while recent and now - recent[0] > RESTART_WINDOW_S:
                    recent.popleft()
                if len(recent) >= self.max_restarts:
                    self.gave_up = (
                        f"the private redis-server exited {len(recent) + 1} times within "
                        f"{RESTART_WINDOW_S:g} s" + (f"; its log ends with: {tail}" if tail else "")
                    )
                    log.critical("%s; not starting it again", self.gave_up)
                    self.process = None
                    break
                recent.append(now)
                self._spawn()
                if self._wait_ready():
                    log.warning(
                        "restarted the private redis-server on port %d (pid %d); "
                        "its data was reloaded from the append-only file",
                        self.port, self.process.pid,
                    )  # fmt: skip
                # else: it exited again or is not answering yet; the next look decides
        if self.gave_up is not None and self.on_give_up is not None:
            self.on_give_up()

    def _arguments(self) -> list[str]:
        return [
            "--port", str(self.port),
            "--bind", self.host,
            "--protected-mode", "yes",
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", "redis.log",
        ]  # fmt: skip

    def _wait_ready(self) -> bool:
        assert self.process is not None
        assert self.port is not None
        deadline = time.monotonic() + self.startup_timeout_s
        client = redis.Redis(
            host=self.host, port=self.port, socket_connect_timeout=0.5, retry=_NO_RETRY
        )
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except redis.BusyLoadingError:
                    pass  # still loading a large AOF: keep waiting
                except redis.ConnectionError:
                    pass
                time.sleep(0.05)
            return False
        finally:
            client.close()

    def _take_over_orphan(self) -> None:
        """Stop a Redis left by a dead owner; refuse to share the folder with a live one."""
        try:
            owner = json.loads(self._owner_file.read_text())
            owner_pid, redis_pid = int(owner["owner_pid"]), int(owner["redis_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if not (_alive(redis_pid) and _is_redis(redis_pid)):
            return
        if owner_pid != os.getpid() and _alive(owner_pid):
            raise StartupError(
                f"The data folder {self.dir.parent} is in use by another fleet process "
                f"(pid {owner_pid}); stop it or set FLEET_DATA_DIR to another folder."
            )
        _terminate(redis_pid, self.stop_timeout_s)

    def _log_tail(self) -> str:
        try:
            lines = (self.dir / "redis.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""

    def stop(self) -> None:
        """SIGTERM (Redis flushes its AOF and exits), SIGKILL after ``stop_timeout_s``."""
        self._stopping.set()  # the supervisor must not take this exit for a crash
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(self.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join()
        with contextlib.suppress(OSError):
            self._owner_file.unlink()

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _terminate(pid: int, timeout_s: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def running_private_url(data_dir: Path, host: str = "127.0.0.1") -> str | None:
    """The URL of the private Redis a live fleet server runs on ``data_dir``, if there is one."""
    try:
        owner = json.loads((Path(data_dir).resolve() / "redis" / "owner.json").read_text())
        owner_pid, redis_pid, port = (
            int(owner["owner_pid"]),
            int(owner["redis_pid"]),
            int(owner["port"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if _alive(owner_pid) and _alive(redis_pid) and _is_redis(redis_pid):
        return f"redis://{host}:{port}/0"
    return None


@contextlib.contextmanager
def redis_for_admin(redis_url: str | None, data_dir: Path, *, timeout_s: float) -> Iterator[str]:
    """Redis for a one-off admin command: the configured one, the running server's private one,
    or the private one started just for the command."""
    if redis_url is None:
        redis_url = running_private_url(data_dir)
    with redis_for(redis_url, data_dir, timeout_s=timeout_s) as url:
        yield url


@contextlib.contextmanager
def redis_for(
    redis_url: str | None,
    data_dir: Path,
    *,
    timeout_s: float,
    on_give_up: Callable[[], None] | None = None,
) -> Iterator[str]:
    """Yield the URL of the Redis to use: ``redis_url`` once it answers, else a private one,
    supervised: ``on_give_up`` is called (from another thread) if it keeps exiting, and the
    context then ends with a :class:`StartupError` that says why."""
    if redis_url is not None:
        check_redis(redis_url, timeout_s=timeout_s)
        yield redis_url
        return
    with PrivateRedis(
        data_dir,
        startup_timeout_s=max(timeout_s, 10.0),
        supervise=True,
        on_give_up=on_give_up,
    ) as private:
        yield private.url
    if private.gave_up is not None:
        raise StartupError(f"Stopped: {private.gave_up}.")
