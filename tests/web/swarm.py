"""A swarm of simulated vehicles for the browser tests, run as its own process.

``python -m tests.web.swarm BASE_URL STAFF_TOKEN --count 2000 …`` registers the vehicles over
``POST /vehicles``, opens one real ``/ws/driver`` socket each and sends a ping every
``--interval`` seconds (stop-and-wait on the ack, like the driver app), moving each vehicle at
``--speed`` m/s in its own direction inside a box around ``--centre``. It prints ``ready N`` once
every vehicle's first ping is acked, then runs until it is terminated. Its own process, so that
the test's server does not share a Python interpreter (and its GIL) with thousands of clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import time

import httpx
from websockets.asyncio.client import connect

M_PER_DEG = 111_320.0


async def register(base: str, token: str, ids: list[str]) -> dict[str, str]:
    tokens: dict[str, str] = {}
    gate = asyncio.Semaphore(16)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:

        async def one(vehicle_id: str) -> None:
            async with gate:
                answer = await client.post("/vehicles", json={"id": vehicle_id, "name": vehicle_id})
                answer.raise_for_status()
                tokens[vehicle_id] = answer.json()["token"]

        await asyncio.gather(*(one(i) for i in ids))
    return tokens


class Vehicle:
    def __init__(self, vehicle_id: str, lat: float, lon: float, heading: float) -> None:
        self.id, self.lat, self.lon, self.heading = vehicle_id, lat, lon, heading

    def step(self, dt: float, speed: float, box: tuple[float, float, float, float]) -> None:
        rad = math.radians(self.heading)
        self.lat += math.cos(rad) * speed * dt / M_PER_DEG
        self.lon += math.sin(rad) * speed * dt / (M_PER_DEG * math.cos(math.radians(self.lat)))
        min_lat, min_lon, max_lat, max_lon = box
        if not (min_lat <= self.lat <= max_lat and min_lon <= self.lon <= max_lon):
            self.heading = (self.heading + 180) % 360  # turn back into the box
            self.lat = min(max(self.lat, min_lat), max_lat)
            self.lon = min(max(self.lon, min_lon), max_lon)


async def drive(
    base: str,
    token: str,
    vehicle: Vehicle,
    args: argparse.Namespace,
    box: tuple[float, ...],
    ready: list[int],
    total: int,
) -> None:
    url = base.replace("http", "ws", 1) + f"/ws/driver?token={token}"
    # Connect gradually (about 250 vehicles a second), as a fleet coming on shift would.
    await asyncio.sleep(random.random() * max(args.interval, total / 250))
    seq = 0
    counted = False
    last = time.time()
    while True:
        try:
            async with connect(
                url, compression=None, proxy=None, open_timeout=60, max_queue=8
            ) as ws:
                while True:
                    now = time.time()
                    vehicle.step(now - last, args.speed, box)  # type: ignore[arg-type]
                    last = now
                    seq += 1
                    ping = {
                        "lat": round(vehicle.lat, 6),
                        "lon": round(vehicle.lon, 6),
                        "ts": int(now * 1000),
                        "speed": args.speed,
                        "heading": round(vehicle.heading, 1),
                    }
                    await ws.send(json.dumps({"type": "pings", "seq": seq, "pings": [ping]}))
                    while True:
                        reply = json.loads(await ws.recv())
                        if reply.get("type") in ("ack", "error") and reply.get("seq") == seq:
                            break
                    if not counted and reply["type"] == "ack":
                        counted = True
                        ready[0] += 1
                        if ready[0] == total:
                            print(f"ready {total}", flush=True)
                    await asyncio.sleep(args.interval)
        except Exception:  # reconnect after anything, like the app
            await asyncio.sleep(0.5)


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    lat0, lon0 = (float(v) for v in args.centre.split(","))
    dlat = args.radius_m / M_PER_DEG
    dlon = args.radius_m / (M_PER_DEG * math.cos(math.radians(lat0)))
    box = (lat0 - dlat, lon0 - dlon, lat0 + dlat, lon0 + dlon)
    ids = [f"{args.prefix}{i:04d}" for i in range(args.count)]
    tokens = await register(args.base, args.token, ids)
    print(f"registered {len(tokens)}", flush=True)
    vehicles = [
        Vehicle(i, rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3]), rng.uniform(0, 360))
        for i in ids
    ]
    ready = [0]

    async def progress() -> None:
        while ready[0] < len(ids):
            await asyncio.sleep(2)
            print(f"swarm: {ready[0]}/{len(ids)} vehicles acked", file=sys.stderr, flush=True)

    await asyncio.gather(
        progress(),
        *(drive(args.base, tokens[v.id], v, args, box, ready, len(ids)) for v in vehicles),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base")
    parser.add_argument("token")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--prefix", default="sim-")
    parser.add_argument("--centre", default="42.5078,1.5211")
    parser.add_argument("--radius-m", type=float, default=1500.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--speed", type=float, default=12.0)
    parser.add_argument("--seed", type=int, default=1)
    try:
        asyncio.run(main(parser.parse_args()))
    except KeyboardInterrupt:
        sys.exit(0)
