"""Which stretches teach the learned pace: the ETA pass's sampling on a hand-made map."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from dispatch.pace import AreaPace
from geo.network import import_osm
from geo.roads import Roads
from server.dispatching.etas import EtaRefresher
from server.orders.crypto import Sealer
from server.orders.store import OrderStore
from server.tracking.queries import Position
from tests.geo.conftest import TINY_OSM


def tiny_refresher(folder: Path) -> EtaRefresher:
    """An ETA pass on the hand-made map (tests/geo/conftest.py), for its sampling alone."""
    osm = folder / "tiny.osm"
    osm.write_text(TINY_OSM)
    network, _ = import_osm(osm, progress=lambda _: None)
    client = aioredis.Redis()  # never connected: sampling reads no Redis
    return EtaRefresher(client, OrderStore(client, Sealer(b"k" * 32)), Roads(network))


def test_a_stretch_the_road_model_drives_round_the_block_is_no_sample(tmp_path: Path) -> None:
    refresher = tiny_refresher(tmp_path)

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


def test_a_van_crawling_through_a_jam_teaches_the_pace_how_slow_it_is(tmp_path: Path) -> None:
    """North on the 50 km/h road 2→3 at 2 m/s, one fix per 15 s pass: no single pass moves the
    van the 40 m a sample needs (GPS noise), so the stretch goes on from the same fix until it
    has; and a jam about seven times slower than the road model is congestion to learn, not an
    accident to drop."""
    refresher = tiny_refresher(tmp_path)
    refresher.pace = AreaPace(min_samples=1, highest=10.0)
    for lat, t in ((60.00110, 0), (60.00137, 15), (60.00164, 30)):
        van = Position(id="van", lat=lat, lon=24.0, ts=t * 1000)
        refresher._learn({"van": van}, float(t), {"van"})
        assert len(refresher.pace) == (1 if t == 30 else 0)
    city, _ = refresher.pace.values(30.0)
    assert 5.0 < city < 9.0, city  # 60 m in 30 s where the model says about 4.3 s


def test_a_van_that_had_no_route_for_a_while_starts_a_new_stretch(tmp_path: Path) -> None:
    """Only vehicles with a route are in a pass: one that drops out (route done) and comes back
    (a new route) starts afresh, so its time without a route, parked or wandering, is not
    counted as driving to a stop."""
    refresher = tiny_refresher(tmp_path)
    refresher.pace = AreaPace(min_samples=1, highest=10.0)
    start = Position(id="van", lat=60.0012, lon=24.0, ts=0)
    refresher._learn({"van": start}, 0.0, {"van"})
    refresher._learn({}, 15.0, set())  # its route is done: not in this pass
    back = Position(id="van", lat=60.0018, lon=24.0, ts=30_000)  # 67 m in 30 s: a crawl
    refresher._learn({"van": back}, 30.0, {"van"})
    assert len(refresher.pace) == 0, "the stretch spanned the time without a route"
    on = Position(id="van", lat=60.0024, lon=24.0, ts=36_000)  # then 67 m in 6 s, driving
    refresher._learn({"van": on}, 36.0, {"van"})
    assert len(refresher.pace) == 1
