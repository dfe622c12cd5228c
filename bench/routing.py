"""``fleet bench routing``: the road engine on a real extract, against plain Dijkstra.

Measures, on one extract: the import (fresh), the load from cache, the 1000 x 1000 many-to-many
matrix between random snapped points (median of runs), point-to-point queries (p50/p99), a traffic
event covering about 2% of the arcs applied plus the matrix recomputed, snapping throughput, and,
in the same run, ``scipy.sparse.csgraph.dijkstra`` from the same 1000 source nodes; it also
checks that a 100 x 100 sample of the engine's node-to-node times equals Dijkstra's exactly.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from geo.network import RoadNetwork
from geo.roads import Roads
from geo.traffic import TrafficEvent, square_around


def dijkstra_graph(network: RoadNetwork, weights_ms: npt.NDArray[np.int64]) -> sp.csr_matrix:
    """The network as a sparse matrix for scipy, keeping the cheapest of parallel arcs."""
    key = network.tail.astype(np.int64) * network.node_count + network.head
    order = np.lexsort((weights_ms, key))
    first = np.ones(order.shape[0], dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    keep = order[first]
    return sp.csr_matrix(
        (weights_ms[keep].astype(np.float64), (network.tail[keep], network.head[keep])),
        shape=(network.node_count, network.node_count),
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def run(
    osm_path: Path,
    cache_dir: Path | None = None,
    *,
    progress: Callable[[str], None] = print,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure the road engine on ``osm_path``; a flat dict of figures (also printed).

    The fresh import always goes into a temporary cache; the load from cache is timed in
    ``cache_dir`` (warmed first when empty), or in that temporary cache when it is ``None``.
    """
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-routing-") as tmp:
        progress(f"importing {osm_path} into an empty cache")
        started = time.perf_counter()
        Roads.open(osm_path, Path(tmp), progress=lambda line: progress("  " + line))
        import_s = time.perf_counter() - started
        cache = Path(tmp) if cache_dir is None else cache_dir
        if cache_dir is not None:
            Roads.open(osm_path, cache, progress=lambda line: progress("  " + line))
        started = time.perf_counter()
        roads = Roads.open(osm_path, cache, progress=progress)
        load_s = time.perf_counter() - started
    net = roads.network
    progress(f"import {import_s:.2f} s (network + CCH), load from cache {load_s * 1000:.0f} ms; "
             f"{net.node_count:,} nodes, {net.arc_count:,} arcs")  # fmt: skip

    # Random positions near roads: network nodes jittered by up to ~50 m.
    def positions(n: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        pick = rng.integers(0, net.node_count, n)
        return (net.node_lat[pick] + rng.normal(0, 0.0003, n),
                net.node_lon[pick] + rng.normal(0, 0.0004, n))  # fmt: skip

    lat, lon = positions(100_000)
    started = time.perf_counter()
    for first in range(0, lat.shape[0], 10_000):
        roads.snapper.snap(lat[first : first + 10_000], lon[first : first + 10_000])
    snap_rate = lat.shape[0] / (time.perf_counter() - started)
    progress(f"snapping: {snap_rate:,.0f} points/s (batches of 10,000)")

    lat, lon = positions(1000)
    points = [roads.snap(float(a), float(b)) for a, b in zip(lat, lon, strict=True)]
    runs = []
    for _ in range(7):
        started = time.perf_counter()
        roads.matrix_s(points, points)
        runs.append(time.perf_counter() - started)
    matrix_s = statistics.median(runs)
    sources = net.head[[p.arc for p in points]].astype(np.int64)
    targets = net.tail[[p.arc for p in points]].astype(np.int64)
    node_runs = []
    for _ in range(7):
        started = time.perf_counter()
        engine_ms = roads.engine.matrix_ms(sources, targets)
        node_runs.append(time.perf_counter() - started)
    node_matrix_s = statistics.median(node_runs)
    graph = dijkstra_graph(net, roads.engine.weights_ms)
    started = time.perf_counter()
    reference = dijkstra(graph, indices=sources)
    scipy_s = time.perf_counter() - started
    sample = reference[:100][:, targets[:100]]
    finite = np.isfinite(sample)
    equal = bool(np.array_equal(sample[finite].astype(np.int64), engine_ms[:100, :100][finite]))
    progress(f"matrix 1000 x 1000: {matrix_s * 1000:.1f} ms median between snapped points, "
             f"{node_matrix_s * 1000:.1f} ms node to node; scipy Dijkstra from the same 1000 "
             f"sources: {scipy_s * 1000:.0f} ms ({scipy_s / matrix_s:.0f}x snapped, "
             f"{scipy_s / node_matrix_s:.0f}x node to node); 100 x 100 sample "
             f"{'equal' if equal else 'DIFFERENT'}")  # fmt: skip

    queries = []
    pairs = rng.integers(0, net.node_count, (2000, 2))
    for s, t in pairs:
        started = time.perf_counter()
        roads.engine.path(int(s), int(t))
        queries.append((time.perf_counter() - started) * 1e6)
    p50, p99 = float(np.percentile(queries, 50)), float(np.percentile(queries, 99))
    progress(f"point to point (with path): p50 {p50:.0f} µs, p99 {p99:.0f} µs")

    # A traffic event over ~2% of the arcs: a square around a busy node, grown until it fits.
    centre = int(rng.integers(0, net.node_count))
    half, share, event = 100.0, 0.0, None
    while share < 0.02 and half < 20_000:
        half *= 1.05
        ring = square_around(
            roads.frame, float(net.node_lat[centre]), float(net.node_lon[centre]), half
        )
        event = TrafficEvent(id="bench", factor=0.3, polygon=ring)
        share = roads.traffic.arcs_of(event).shape[0] / net.arc_count
    assert event is not None
    before = roads.matrix_s(points, points)
    started = time.perf_counter()
    touched = roads.add_event(event, now_s=0.0)
    during = roads.matrix_s(points, points)
    event_s = time.perf_counter() - started
    started = time.perf_counter()
    roads.end_event(event.id, now_s=1.0)
    after = roads.matrix_s(points, points)
    end_s = time.perf_counter() - started
    restored = bool(np.array_equal(before, after))
    slower = int(np.count_nonzero(during > before))
    progress(f"traffic event on {touched:,} arcs ({100 * share:.1f}%) applied and the matrix "
             f"recomputed: {event_s * 1000:.1f} ms ({slower:,} of {before.size:,} times slower); "
             f"ended + recomputed: {end_s * 1000:.1f} ms, times "
             f"{'restored exactly' if restored else 'NOT RESTORED'}")  # fmt: skip

    return {
        "osm": osm_path.name,
        "nodes": net.node_count,
        "arcs": net.arc_count,
        "import_s": round(import_s, 3),
        "load_from_cache_ms": _ms(load_s),
        "snap_points_per_s": round(snap_rate),
        "matrix_1000_ms_median": _ms(matrix_s),
        "matrix_1000_node_ms_median": _ms(node_matrix_s),
        "scipy_dijkstra_1000_ms": _ms(scipy_s),
        "speedup_vs_scipy": round(scipy_s / node_matrix_s, 1),
        "speedup_vs_scipy_snapped": round(scipy_s / matrix_s, 1),
        "sample_100x100_equal_to_dijkstra": equal,
        "p2p_us_p50": round(p50, 1),
        "p2p_us_p99": round(p99, 1),
        "event_arcs_share": round(share, 4),
        "event_plus_matrix_ms": _ms(event_s),
        "event_end_plus_matrix_ms": _ms(end_s),
        "event_end_restores_exactly": restored,
    }
