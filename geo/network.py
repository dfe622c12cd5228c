"""The road network as arrays, its largest strongly connected component, and its cache.

A :class:`RoadNetwork` holds nodes (lat, lon) and directed arcs (tail, head, length in metres,
free-flow speed, free-flow travel time in milliseconds). It is built from an OSM extract by
:func:`import_osm` and cached as one ``.npz`` of plain arrays (no pickles) named after the
extract's SHA-256, next to the CCH topology, so a second start loads in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from geo.geometry import geodesic_lengths_m
from geo.osm import read_drivable

CACHE_VERSION = 1
MIN_ARC_MS = 1  # an arc always costs something, so no zero-weight cycles


def travel_ms(
    length_m: npt.NDArray[np.float64], speed_kmh: npt.NDArray[np.float32]
) -> npt.NDArray[np.int64]:
    """Integer scaling of travel times: whole milliseconds, at least :data:`MIN_ARC_MS`.

    >>> travel_ms(np.array([100.0, 0.001]), np.array([36.0, 50.0], dtype=np.float32)).tolist()
    [10000, 1]
    """
    ms = np.rint(length_m / (speed_kmh.astype(np.float64) / 3.6) * 1000.0).astype(np.int64)
    return np.maximum(ms, MIN_ARC_MS)


@dataclass(frozen=True, slots=True, eq=False)
class RoadNetwork:
    """Nodes and directed arcs as plain numpy arrays (arc ``i`` runs ``tail[i]`` → ``head[i]``,
    a straight segment between two consecutive OSM nodes of a way)."""

    name: str
    source_sha256: str
    node_lat: npt.NDArray[np.float64]
    node_lon: npt.NDArray[np.float64]
    tail: npt.NDArray[np.int32]
    head: npt.NDArray[np.int32]
    length_m: npt.NDArray[np.float64]
    speed_kmh: npt.NDArray[np.float32]
    free_flow_ms: npt.NDArray[np.int64]

    @property
    def node_count(self) -> int:
        """The number of nodes (junctions and shape points)."""
        return int(self.node_lat.shape[0])

    @property
    def arc_count(self) -> int:
        """The number of directed arcs."""
        return int(self.tail.shape[0])

    def bbox(self) -> tuple[float, float, float, float]:
        """``(min_lon, min_lat, max_lon, max_lat)``."""
        return (float(self.node_lon.min()), float(self.node_lat.min()),
                float(self.node_lon.max()), float(self.node_lat.max()))  # fmt: skip


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import read, kept and dropped (the largest-component rule), and how long."""

    ways: int
    nodes_read: int
    arcs_read: int
    nodes_kept: int
    arcs_kept: int
    seconds: float

    def lines(self) -> list[str]:
        """Human-readable progress lines."""
        dropped_nodes = self.nodes_read - self.nodes_kept
        dropped_arcs = self.arcs_read - self.arcs_kept
        return [
            f"  {self.ways:,} drivable ways → {self.nodes_read:,} nodes, {self.arcs_read:,} arcs",
            f"  largest strongly connected component: {self.nodes_kept:,} nodes, "
            f"{self.arcs_kept:,} arcs (dropped {dropped_nodes:,} nodes = "
            f"{100 * dropped_nodes / max(1, self.nodes_read):.1f}%, {dropped_arcs:,} arcs)",
        ]


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's content, in hex (names the cache)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def largest_component(
    node_count: int, tail: npt.NDArray[np.int64], head: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """A node mask of the largest strongly connected component."""
    graph = csr_matrix((np.ones(tail.shape[0]), (tail, head)), shape=(node_count, node_count))
    _, labels = connected_components(graph, directed=True, connection="strong")
    biggest = np.bincount(labels).argmax()
    return np.asarray(labels == biggest)


def import_osm(
    path: Path, *, progress: Callable[[str], None] = print, sha256: str | None = None
) -> tuple[RoadNetwork, ImportReport]:
    """Build the network of the extract at ``path`` (largest strongly connected component)."""
    started = time.perf_counter()
    progress(f"reading {path.name}")
    raw = read_drivable(path, progress=progress)
    keep = largest_component(raw.node_lat.shape[0], raw.tail, raw.head)
    arc_keep = keep[raw.tail] & keep[raw.head]
    renumber = np.cumsum(keep) - 1
    tail = renumber[raw.tail[arc_keep]].astype(np.int32)
    head = renumber[raw.head[arc_keep]].astype(np.int32)
    lat, lon = raw.node_lat[keep], raw.node_lon[keep]
    length = geodesic_lengths_m(lat[tail], lon[tail], lat[head], lon[head])
    speed = raw.speed_kmh[arc_keep]
    network = RoadNetwork(
        name=path.name.split(".")[0],
        source_sha256=sha256 or file_sha256(path),
        node_lat=lat,
        node_lon=lon,
        tail=tail,
        head=head,
        length_m=length,
        speed_kmh=speed,
        free_flow_ms=travel_ms(length, speed),
    )
    report = ImportReport(
        ways=raw.ways,
        nodes_read=int(raw.node_lat.shape[0]),
        arcs_read=int(raw.tail.shape[0]),
        nodes_kept=network.node_count,
        arcs_kept=network.arc_count,
        seconds=time.perf_counter() - started,
    )
    for line in report.lines():
        progress(line)
    return network, report


def cache_path(cache_dir: Path, sha256: str) -> Path:
    """Where the network of the extract with this content hash is cached."""
    return cache_dir / f"roads-{sha256[:16]}-v{CACHE_VERSION}.npz"


def save(network: RoadNetwork, path: Path) -> None:
    """Write the network as one ``.npz`` of plain arrays, atomically (write, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    meta = json.dumps({"name": network.name, "sha256": network.source_sha256, "v": CACHE_VERSION})
    np.savez(
        partial,
        meta=np.frombuffer(meta.encode(), dtype=np.uint8),
        node_lat=network.node_lat,
        node_lon=network.node_lon,
        tail=network.tail,
        head=network.head,
        length_m=network.length_m,
        speed_kmh=network.speed_kmh,
        free_flow_ms=network.free_flow_ms,
    )
    partial.replace(path)


def load(path: Path) -> RoadNetwork:
    """Read a network written by :func:`save` (no pickles are ever loaded)."""
    with path.open("rb") as file, np.load(file, allow_pickle=False) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        return RoadNetwork(
            name=meta["name"],
            source_sha256=meta["sha256"],
            node_lat=data["node_lat"],
            node_lon=data["node_lon"],
            tail=data["tail"],
            head=data["head"],
            length_m=data["length_m"],
            speed_kmh=data["speed_kmh"],
            free_flow_ms=data["free_flow_ms"],
        )


def load_or_import(
    path: Path, cache_dir: Path, *, progress: Callable[[str], None] = print
) -> RoadNetwork:
    """The network of ``path``: from the cache when it matches the file's hash, else imported
    (and cached)."""
    sha = file_sha256(path)
    cached = cache_path(cache_dir, sha)
    if cached.exists():
        try:
            return load(cached)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            progress(f"the road cache {cached} is unreadable; importing again")
    network, _ = import_osm(path, progress=progress, sha256=sha)
    save(network, cached)
    progress(f"road cache written to {cached}")
    return network
