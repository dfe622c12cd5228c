"""``GET /roads/geometry``: the loaded road network as polylines, for the offline basemap.

The network's arcs are straight segments in both directions; here they become undirected
polylines: each chain of segments through nodes of degree two (with the same road class on both
sides) is one line. Lines are built once per process and filtered by the requested viewport.
Road classes by free-flow speed: 0 ≥ 70 km/h, 1 ≥ 50, 2 ≥ 35, 3 slower.

The answer (open to anyone: it is OpenStreetMap data, and the customer's page draws it too)::

    {"bbox": [min_lon, min_lat, max_lon, max_lat], "lines": [[class, lat, lon, lat, lon, …], …]}
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Annotated, Any, cast

import numpy as np
import numpy.typing as npt
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.params import QueryParameter

from geo.network import RoadNetwork
from server.errors import ServiceUnavailable
from server.openapi import BBOX_SCHEMA
from server.tracking.queries import BBOX_FORM, bbox_query

CLASS_SPEEDS_KMH = (70.0, 50.0, 35.0)
MAX_LINES = 60_000


@dataclass(frozen=True, slots=True)
class RoadLines:
    lines: list[list[float]]  # [class, lat, lon, lat, lon, …]
    boxes: npt.NDArray[np.float64]  # one row per line: min_lon, min_lat, max_lon, max_lat


def road_class(speed_kmh: float) -> int:
    """The basemap class of a road by its free-flow speed.

    >>> [road_class(s) for s in (100, 50, 40, 20)]
    [0, 1, 2, 3]
    """
    for i, limit in enumerate(CLASS_SPEEDS_KMH):
        if speed_kmh >= limit:
            return i
    return len(CLASS_SPEEDS_KMH)


def build_lines(network: RoadNetwork) -> RoadLines:
    """Chain the network's undirected segments into polylines, one road class each."""
    tail = network.tail.astype(np.int64)
    head = network.head.astype(np.int64)
    a, b = np.minimum(tail, head), np.maximum(tail, head)
    pairs, first = np.unique(np.stack([a, b], axis=1), axis=0, return_index=True)
    classes = [road_class(float(s)) for s in network.speed_kmh[first]]
    incident: dict[int, list[int]] = defaultdict(list)
    for i, (u, v) in enumerate(pairs.tolist()):
        incident[u].append(i)
        incident[v].append(i)

    def through(node: int) -> bool:
        edges = incident[node]
        return len(edges) == 2 and classes[edges[0]] == classes[edges[1]]

    used = np.zeros(len(pairs), dtype=bool)
    chains: list[tuple[int, list[int]]] = []

    def walk(start: int, edge: int) -> None:
        nodes, node = [start], start
        while True:
            used[edge] = True
            u, v = int(pairs[edge, 0]), int(pairs[edge, 1])
            node = v if u == node else u
            nodes.append(node)
            if not through(node):
                break
            nxt = next((e for e in incident[node] if not used[e]), None)
            if nxt is None:
                break
            edge = nxt
        chains.append((classes[edge], nodes))

    for node in incident:
        if not through(node):
            for edge in incident[node]:
                if not used[edge]:
                    walk(node, edge)
    for edge in np.flatnonzero(~used).tolist():  # loops made only of through-nodes
        if not used[edge]:
            walk(int(pairs[edge, 0]), edge)

    lat = np.round(network.node_lat, 5)
    lon = np.round(network.node_lon, 5)
    lines: list[list[float]] = []
    boxes = np.empty((len(chains), 4))
    for i, (kind, nodes) in enumerate(chains):
        idx = np.asarray(nodes)
        coords = np.empty(2 * len(idx))
        coords[0::2], coords[1::2] = lat[idx], lon[idx]
        lines.append([float(kind), *coords.tolist()])
        boxes[i] = (lon[idx].min(), lat[idx].min(), lon[idx].max(), lat[idx].max())
    return RoadLines(lines=lines, boxes=boxes)


async def lines_of(state: State) -> RoadLines:
    """The process's road lines, built on first use (in a worker thread)."""
    cached = cast("RoadLines | None", state.get("road_lines"))
    if cached is None:
        roads = state.get("roads")
        if roads is None:
            raise ServiceUnavailable("this server has no road network")
        cached = await asyncio.to_thread(build_lines, roads.network)
        state.road_lines = cached
    return cached


class BasemapController(Controller):
    path = "/roads/geometry"
    tags = ["web"]  # noqa: RUF012 - Litestar reads this class attribute

    @get("/", summary="The road network as polylines inside a viewport (the offline basemap)")
    async def geometry(
        self,
        state: State,
        bbox: Annotated[
            str | None, QueryParameter(description=BBOX_FORM, schema_extra=BBOX_SCHEMA)
        ] = None,
    ) -> Response[dict[str, Any]]:
        road_lines = await lines_of(state)
        network = state.roads.network
        box = network.bbox() if bbox is None else bbox_query(bbox)
        b = road_lines.boxes
        hit = np.flatnonzero(
            (b[:, 0] <= box[2]) & (b[:, 2] >= box[0]) & (b[:, 1] <= box[3]) & (b[:, 3] >= box[1])
        )[:MAX_LINES]
        body = {"bbox": list(network.bbox()), "lines": [road_lines.lines[i] for i in hit.tolist()]}
        return Response(body, headers={"Cache-Control": "private, max-age=300"})
