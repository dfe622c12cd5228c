"""Which stretches teach the learned pace: the ETA pass's sampling on a hand-made map."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from geo.network import import_osm
from geo.roads import Roads
from server.dispatching.etas import EtaRefresher
from server.orders.crypto import Sealer
from server.orders.store import OrderStore
from server.tracking.queries import Position
from tests.geo.conftest import TINY_OSM


def test_a_stretch_the_road_model_drives_round_the_block_is_no_sample(tmp_path: Path) -> None:
    osm = tmp_path / "tiny.osm"
    osm.write_text(TINY_OSM)
    network, _ = import_osm(osm, progress=lambda _: None)
    client = aioredis.Redis()  # never connected: sampling reads no Redis
    refresher = EtaRefresher(client, OrderStore(client, Sealer(b"k" * 32)), Roads(network))

    def drive(a: float, b: float, seconds: int) -> bool:
        """Whether driving from (a, 24.0) to (b, 24.0), near the one-way 2→3 (north), in
        ``seconds`` is a sample."""
        before = len(refresher.pace)
        refresher._last["van"] = Position(id="van", lat=a, lon=24.0, ts=0)
        now = Position(id="van", lat=b, lon=24.0, ts=seconds * 1000)
        refresher._learn({"van": now}, float(seconds), {"van"})
        return len(refresher.pace) > before

    assert drive(60.0012, 60.0018, 6), "67 m north, the way the road goes: a sample"
    # South, the fixes put it against the one-way: the model's way is 3→4→2, 310 m for 67 m,
    # about 30 s at its speeds, so the ratio alone (about 1) would keep it.
    assert not drive(60.0018, 60.0012, 30), "a fix on the wrong road: no sample"
