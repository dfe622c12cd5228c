"""Back-ups of fleet's Redis: ``fleet backup FILE`` and ``fleet restore FILE``.

A back-up is a Redis snapshot (RDB) taken while the servers run, through Redis's own replication
stream (``redis-cli --rdb``): consistent to one moment, from the private Redis or any
``FLEET_REDIS_URL``. It holds personal data sealed, as Redis does: it opens only with the data
dir's key (``keys/pii.key``), which is not in it; keep a copy of the key apart from the back-ups.

A restore goes into the private Redis of a data dir whose servers are stopped: the append-only
files there are moved aside (``appendonlydir.before-restore-<time>``, never deleted), Redis is
started once on the snapshot with persistence off, told to write its append-only file
(``CONFIG SET appendonly yes``), and stopped once that file is complete; the next ``fleet
serve`` loads it. (A Redis of one's own is restored with its own tools.)
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import cast

import redis

from server.errors import StartupError
from server.redis_process import PrivateRedis, running_private_url

MAGIC = b"REDIS"  # how an RDB file starts
SNAPSHOT = "restore.rdb"


def _redis_cli() -> str:
    exe = shutil.which("redis-cli")
    if exe is None:
        raise StartupError("redis-cli is not installed: install it (apt-get install redis-tools).")
    return exe


def backup(redis_url: str, path: Path, *, timeout_s: float = 600.0) -> int:
    """Write a snapshot of the Redis at ``redis_url`` to ``path`` (whole or not at all); its
    size in bytes."""
    part = path.with_name(path.name + ".part")
    try:
        done = subprocess.run(
            [_redis_cli(), "-u", redis_url, "--rdb", str(part)],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
        with part.open("rb") as file:
            whole = done.returncode == 0 and file.read(len(MAGIC)) == MAGIC
            os.fsync(file.fileno())
        if not whole:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise StartupError("Redis sent no snapshot" + (f": {said[-1]}" if said else "") + ".")
        part.replace(path)
    except subprocess.TimeoutExpired:
        raise StartupError(f"The snapshot took over {timeout_s:g} s; nothing written.") from None
    except FileNotFoundError:
        raise StartupError("Redis sent no snapshot.") from None
    finally:
        part.unlink(missing_ok=True)
    return path.stat().st_size


class _FromSnapshot(PrivateRedis):
    """The private Redis started on a snapshot, with no persistence until told."""

    def _arguments(self) -> list[str]:
        arguments = super()._arguments()
        at = arguments.index("--appendonly")
        arguments[at + 1] = "no"
        return [*arguments, "--dbfilename", SNAPSHOT]


def restore(path: Path, data_dir: Path, *, timeout_s: float = 600.0) -> tuple[int, Path | None]:
    """Make the snapshot at ``path`` the data of ``data_dir``'s private Redis: how many keys it
    holds, and where the data it replaced was moved (None: there was none)."""
    with path.open("rb") as file:
        if file.read(len(MAGIC)) != MAGIC:
            raise StartupError(f"{path} is not a Redis snapshot (fleet backup writes them).")
    if running_private_url(data_dir) is not None:
        raise StartupError(f"A fleet server is running on {data_dir}: stop it first, then restore.")
    folder = (data_dir / "redis").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    moved = None
    if (folder / "appendonlydir").exists():
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        moved = folder / f"appendonlydir.before-restore-{stamp}"
        (folder / "appendonlydir").rename(moved)
    shutil.copyfile(path, folder / SNAPSHOT)
    try:
        with _FromSnapshot(data_dir, startup_timeout_s=timeout_s) as private:
            client = redis.Redis.from_url(private.url)
            try:
                keys = client.dbsize()
                client.config_set("appendonly", "yes")  # writes the whole data set out
                deadline = time.monotonic() + timeout_s
                while not _written(client):
                    if time.monotonic() > deadline:
                        raise StartupError(f"Redis did not write its data within {timeout_s:g} s.")
                    time.sleep(0.05)
            finally:
                client.close()
    finally:
        (folder / SNAPSHOT).unlink(missing_ok=True)
    return keys, moved


def _written(client: redis.Redis) -> bool:
    info = cast("dict[str, object]", client.info("persistence"))
    if info.get("aof_last_bgrewrite_status") != "ok" and not info.get("aof_rewrite_in_progress"):
        raise StartupError("Redis could not write its append-only file; see its redis.log.")
    return (
        info.get("aof_enabled") == 1
        and info.get("aof_rewrite_in_progress") == 0
        and info.get("aof_rewrite_scheduled") == 0
    )
