"""Travel times on the current weights: the only module that imports ``pyroutingkit``.

RoutingKit's customizable contraction hierarchy (CCH): the topology is built once per network
(and cached next to the network), re-weighting (``customize``) takes milliseconds, queries take
microseconds. Weights are whole milliseconds per arc (:func:`geo.network.travel_ms`); a closed arc
weighs :data:`CLOSED`. Swapping the engine means rewriting this module only.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pyroutingkit import CCH, INF_WEIGHT

from geo.errors import NoRoute
from geo.network import RoadNetwork

CLOSED = int(INF_WEIGHT)  # an arc nobody may use
UNREACHABLE = float("inf")


@dataclass(frozen=True, slots=True)
class NodePath:
    """A shortest path between two nodes under the weights it was computed with."""

    time_s: float
    distance_m: float
    nodes: list[int]
    arcs: list[int]


def topology_matches(topology_dir: Path, network: RoadNetwork) -> bool:
    """Whether ``topology_dir`` holds a complete CCH topology of exactly this network.

    RoutingKit trusts its files (a truncated one crashes the process), so they are checked
    first: the arcs must be the network's, and the node order a permutation with its inverse.
    """
    n = network.node_count

    def read(name: str) -> npt.NDArray[np.uint32]:
        return np.fromfile(topology_dir / name, dtype="<u4")

    try:
        count, order, rank = read("node_count"), read("order"), read("rank")
        tail, head = read("tail"), read("head")
    except (OSError, ValueError):
        return False
    if count.tolist() != [n] or order.shape != (n,) or rank.shape != (n,):
        return False
    if not (np.array_equal(tail, network.tail) and np.array_equal(head, network.head)):
        return False
    if order.max(initial=0) >= n or rank.max(initial=0) >= n:
        return False
    return bool(np.array_equal(rank[order], np.arange(n)))


class TravelTimeEngine:
    """Point-to-point and many-to-many travel times on one network's current weights."""

    def __init__(self, network: RoadNetwork, *, topology_dir: Path | None = None) -> None:
        self.network = network
        self._cch = CCH()
        if topology_dir is not None and topology_matches(topology_dir, network):
            self._cch.load_topology(str(topology_dir))
        else:
            self._cch.build_topology(
                network.tail.astype(np.uint32),
                network.head.astype(np.uint32),
                network.node_lat.astype(np.float32),
                network.node_lon.astype(np.float32),
                node_count=network.node_count,
            )
            if topology_dir is not None:
                self._save_topology(topology_dir)
        self.weights_ms: npt.NDArray[np.int64] = network.free_flow_ms.copy()
        self._pair_index: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None
        self.generation = 0  # goes up whenever the weights change: what caches of paths key on
        self._cch.customize_weights(self.weights_ms.astype(np.uint32))

    def _save_topology(self, topology_dir: Path) -> None:
        """Write the topology next to the network cache, atomically (a directory renamed into
        place), so a crash never leaves a half-written one behind."""
        partial = topology_dir.with_name(f"{topology_dir.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        self._cch.save_topology(str(partial))
        shutil.rmtree(topology_dir, ignore_errors=True)
        try:
            partial.rename(topology_dir)
        except OSError:  # another process got there first
            shutil.rmtree(partial, ignore_errors=True)

    def customize(self, weights_ms: npt.NDArray[np.int64]) -> None:
        """Use new arc weights (ms; :data:`CLOSED` for a closed arc). No rebuild; nothing at
        all when they are the weights in use."""
        if weights_ms.shape != self.network.free_flow_ms.shape:
            raise ValueError("one weight per arc is needed")
        weights = np.minimum(weights_ms, CLOSED).astype(np.int64)
        if np.array_equal(weights, self.weights_ms):
            return  # a refresh that changed nothing (say, no event started or ended)
        self.weights_ms = weights
        self._cch.customize_weights(self.weights_ms.astype(np.uint32))
        self._pair_index = None
        self.generation += 1

    def matrix_raw(self, sources: npt.ArrayLike, targets: npt.ArrayLike) -> npt.NDArray[np.uint32]:
        """Node-to-node travel times in ms as the engine gives them (uint32); :data:`CLOSED`
        where there is no path."""
        raw = self._cch.distances_many_to_many(
            np.asarray(sources, dtype=np.uint32), np.asarray(targets, dtype=np.uint32)
        )
        return np.asarray(raw, dtype=np.uint32)

    def matrix_ms(
        self, sources: npt.NDArray[np.int64], targets: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """Node-to-node travel times in ms; :data:`CLOSED` where there is no path."""
        return self.matrix_raw(sources, targets).astype(np.int64)

    def matrix_s(
        self, sources: npt.NDArray[np.int64], targets: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """Node-to-node travel times in seconds; ``inf`` where there is no path."""
        ms = self.matrix_ms(sources, targets)
        out = ms.astype(np.float64) / 1000.0
        out[ms >= CLOSED] = UNREACHABLE
        return out

    def _pairs(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Sorted ``tail * n + head`` keys and, for each, the cheapest current arc joining them."""
        if self._pair_index is None:
            net = self.network
            key = net.tail.astype(np.int64) * net.node_count + net.head
            order = np.lexsort((self.weights_ms, key))  # by key, cheapest first
            first = np.ones(order.shape[0], dtype=bool)
            first[1:] = key[order][1:] != key[order][:-1]
            self._pair_index = (key[order][first], order[first].astype(np.int64))
        return self._pair_index

    def arcs_along(self, nodes: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """The arcs a node path drives (the cheapest of parallel arcs), vectorised."""
        path = np.asarray(nodes, dtype=np.int64)
        if path.shape[0] < 2:
            return np.zeros(0, dtype=np.int64)
        keys, arcs = self._pairs()
        wanted = path[:-1] * self.network.node_count + path[1:]
        at = np.minimum(np.searchsorted(keys, wanted), keys.shape[0] - 1)
        if not np.array_equal(keys[at], wanted):
            raise ValueError("the node path uses a pair of nodes no arc joins")
        found: npt.NDArray[np.int64] = arcs[at]
        return found

    def path(self, source: int, target: int) -> NodePath:
        """The fastest path between two nodes; :class:`~geo.errors.NoRoute` if there is none."""
        if source == target:
            return NodePath(0.0, 0.0, [source], [])
        ms, nodes = self._cch.query(int(source), int(target))
        if ms >= CLOSED or not nodes:
            raise NoRoute(f"no route from node {source} to node {target}")
        arcs = self.arcs_along(nodes)
        distance = float(self.network.length_m[arcs].sum())
        return NodePath(ms / 1000.0, distance, list(nodes), arcs.tolist())
