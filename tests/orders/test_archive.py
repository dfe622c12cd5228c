"""``fleet orders archive`` / ``restore`` against a live server and its real Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx
import redis
import redis.asyncio as aioredis

from server import keys
from server.orders.archive import archive_orders, open_for_append
from server.orders.crypto import Sealer, load_key
from server.orders.store import OrderStore
from tests.conftest import AUTH, STAFF_TOKEN, run_cli
from tests.orders.test_orders_api import create, order_body
from tests.orders.test_proofs import png, upload


def _later() -> str:
    """A cut-off just after now: every order that has ended so far ended before it."""
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat()


def _deliver(redis_url: str, data_dir: Path, order_id: str) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            store = OrderStore(client, Sealer(load_key(data_dir)))
            await store.advance(order_id, "delivered", by="test")
        finally:
            await client.aclose()

    asyncio.run(run())


def _orders_cli(action: str, redis_url: str, data_dir: Path, *extra: str) -> tuple[int, str, str]:
    """``fleet orders ACTION``: exit code, stdout, stderr."""
    return run_cli("orders", action, "--redis-url", redis_url, "--data-dir", str(data_dir), *extra)


def _seen(base: str, order_id: str, token: str) -> dict[str, Any]:
    """What staff and the customer get for an order: the order, its audit, the tracking view."""
    return {
        "order": httpx.get(f"{base}/orders/{order_id}", headers=AUTH),
        "audit": httpx.get(f"{base}/orders/{order_id}/audit", headers=AUTH),
        "tracking": httpx.get(f"{base}/track/{token}"),
        "proofs": httpx.get(f"{base}/orders/{order_id}/proofs", headers=AUTH),
    }


def _stable(answer: Any) -> Any:
    """An answer without the time it was made."""
    return (
        {k: v for k, v in answer.items() if k != "updated_at"}
        if isinstance(answer, dict)
        else answer
    )


def test_ended_orders_move_to_the_archive_and_back(
    live_server: str, redis_url: str, tmp_path: Path
) -> None:
    cancelled, delivered, still_open = (create(live_server) for _ in range(3))
    cancelled_id, delivered_id = cancelled["order"]["id"], delivered["order"]["id"]
    cancel = httpx.post(f"{live_server}/orders/{cancelled_id}/cancel", headers=AUTH)
    assert cancel.status_code == 200
    image = png(seed=3)
    proof = upload(live_server, delivered_id, STAFF_TOKEN, image)
    assert proof.status_code == 201
    image_url = f"{live_server}/orders/{delivered_id}/proofs/{proof.json()['id']}"
    _deliver(redis_url, tmp_path, delivered_id)
    ended = {o["order"]["id"]: o["tracking_token"] for o in (cancelled, delivered)}
    before = {i: _seen(live_server, i, t) for i, t in ended.items()}
    assert all(r.status_code == 200 for seen in before.values() for r in seen.values())
    archive = tmp_path / "orders.jsonl"

    file = ("--file", str(archive))
    code, out, _ = _orders_cli("archive", redis_url, tmp_path, "--older-than", "1", *file)
    assert code == 0
    assert "Archived 0 orders" in out
    code, out, _ = _orders_cli("archive", redis_url, tmp_path, "--before", _later(), "--dry-run")
    assert code == 0
    assert "2 orders ended before" in out
    assert httpx.get(f"{live_server}/orders/{cancelled_id}", headers=AUTH).status_code == 200

    code, out, _ = _orders_cli("archive", redis_url, tmp_path, "--before", _later(), *file)
    assert code == 0
    assert "Archived 2 orders" in out
    lines = [json.loads(line) for line in archive.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(ended)
    assert "Aino Virtanen" not in archive.read_text()  # personal data stays sealed
    for order_id, token in ended.items():
        gone = _seen(live_server, order_id, token)
        assert [r.status_code for r in gone.values()] == [404, 404, 404, 404]
    assert httpx.get(image_url, headers=AUTH).status_code == 404
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.zrange(keys.ORDERS, 0, -1) == [still_open["order"]["id"].encode()]
        assert not client.exists(*(keys.order_audit(i) for i in ended))
        assert not client.exists(
            keys.order_proofs(delivered_id), keys.order_proof_meta(delivered_id)
        )
        assert client.smembers(keys.orders_in("cancelled")) == set()
    finally:
        client.close()
    listed = httpx.get(f"{live_server}/orders", headers=AUTH).json()
    assert [o["id"] for o in listed] == [still_open["order"]["id"]]

    doubled = tmp_path / "twice.jsonl"  # archived again after a crash: each order twice
    doubled.write_text(archive.read_text() * 2)
    code, out, _ = _orders_cli("restore", redis_url, tmp_path, "--file", str(doubled))
    assert code == 0
    assert "Restored 2 orders" in out
    assert "2 orders Redis held already" in out  # the second line of each: left alone
    for order_id, token in ended.items():
        again = _seen(live_server, order_id, token)
        assert {k: _stable(r.json()) for k, r in again.items()} == {
            k: _stable(r.json()) for k, r in before[order_id].items()
        }
    assert before[delivered_id]["tracking"].json()["proofs"]  # the customer's too
    assert httpx.get(image_url, headers=AUTH).content == image
    statuses = {"cancelled": cancelled_id, "delivered": delivered_id}
    for status, order_id in statuses.items():
        listed = httpx.get(f"{live_server}/orders", headers=AUTH, params={"status": status})
        assert [o["id"] for o in listed.json()] == [order_id]
    code, out, _ = _orders_cli("restore", redis_url, tmp_path, *file)
    assert code == 0
    assert "Restored 0 orders" in out  # both there: they stay


class _Racing:
    """An archive file during whose first fsync a server changes an order being archived."""

    def __init__(self, file: IO[bytes], change: Any) -> None:
        self.file, self.change, self.changed = file, change, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)

    def fileno(self) -> int:
        if not self.changed:
            self.changed = True
            self.change()
        return self.file.fileno()


def test_an_order_changed_while_archived_is_archived_once_as_it_is_now(
    live_server: str, redis_url: str, tmp_path: Path
) -> None:
    order_id = create(live_server)["order"]["id"]
    assert httpx.post(f"{live_server}/orders/{order_id}/cancel", headers=AUTH).status_code == 200
    client = redis.Redis.from_url(redis_url)
    try:
        sealer = Sealer(load_key(tmp_path))
        ended_before = int((dt.datetime.now(dt.UTC).timestamp() + 60) * 1000)
        path = tmp_path / "race.jsonl"
        with path.open("ab") as file:
            racing = _Racing(file, lambda: client.hset(keys.order(order_id), "vehicle_id", "v-9"))
            done = archive_orders(client, sealer, racing, ended_before_ms=ended_before)  # type: ignore[arg-type]
        assert (done.archived, done.retries) == (1, 1)
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert [(line["id"], line["order"]["vehicle_id"]) for line in lines] == [(order_id, "v-9")]
        assert not client.exists(keys.order(order_id))
    finally:
        client.close()


def test_pages_of_ended_and_open_orders_are_all_looked_at(
    live_server: str, redis_url: str, tmp_path: Path
) -> None:
    made = [create(live_server)["order"]["id"] for _ in range(5)]
    for order_id in (made[0], made[1], made[3]):
        assert (
            httpx.post(f"{live_server}/orders/{order_id}/cancel", headers=AUTH).status_code == 200
        )
    client = redis.Redis.from_url(redis_url)
    try:
        ended_before = int((dt.datetime.now(dt.UTC).timestamp() + 60) * 1000)
        with (tmp_path / "paged.jsonl").open("ab") as file:
            done = archive_orders(
                client, Sealer(load_key(tmp_path)), file, ended_before_ms=ended_before, page_size=2
            )
        assert (done.looked_at, done.archived) == (5, 3)
        left = {i.decode() for i in client.zrange(keys.ORDERS, 0, -1)}
        assert left == {made[2], made[4]}
    finally:
        client.close()


def test_an_archived_idempotency_key_is_a_conflict(
    live_server: str, redis_url: str, tmp_path: Path
) -> None:
    headers = {**AUTH, "Idempotency-Key": "shop-order-7"}
    first = httpx.post(f"{live_server}/orders", headers=headers, json=order_body())
    order_id = first.json()["order"]["id"]
    assert httpx.post(f"{live_server}/orders/{order_id}/cancel", headers=AUTH).status_code == 200
    assert _orders_cli("archive", redis_url, tmp_path, "--before", _later())[0] == 0
    assert (tmp_path / "archive" / "orders.jsonl").is_file()
    again = httpx.post(f"{live_server}/orders", headers=headers, json=order_body())
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "conflict"
    assert f"{order_id}, has been archived" in again.json()["error"]["message"]


def test_bad_input_is_one_sentence(live_server: str, redis_url: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"v": 1, "id": "o-1", "order": {}, "audit": []}\n')
    bad_proof = tmp_path / "bad-proof.jsonl"
    fields = {"status": "delivered", "created": "1", "nodes": "{}", "doc": "{}", "pii": "v1:"}
    line = {"v": 1, "id": "o-1", "order": fields, "audit": [],
            "proofs": {"p-1": {"meta": "{}", "image": "not base64!"}}}  # fmt: skip
    bad_proof.write_text(json.dumps(line) + "\n")
    other = tmp_path / "elsewhere"
    cases = [
        (("restore", "--file", str(junk)), f"{junk}:1: the order lacks created, doc"),
        (("restore", "--file", str(tmp_path / "none.jsonl")), "No archive at"),
        (("restore", "--file", str(bad_proof)), f"{bad_proof}:1: proofs must be"),
        (("archive", "--before", "last tuesday"), "is not an ISO-8601 time"),
        (("archive", "--older-than", "-3"), "give days, 0 or more"),
    ]
    for args, said in cases:
        code, _, err = _orders_cli(args[0], redis_url, tmp_path, *args[1:])
        assert code == 2
        assert said in err, err
        assert "Traceback" not in err
    folder = tmp_path / "a-folder"
    folder.mkdir()
    code, _, err = _orders_cli("archive", redis_url, tmp_path, "--file", str(folder))
    assert code == 1  # a folder given as the file: one sentence, nothing removed
    assert "Is a directory" in err
    assert "Traceback" not in err
    code, _, err = _orders_cli("archive", redis_url, other)
    assert code == 2  # no key: nothing is read or created
    assert "No key at" in err
    order_id = create(live_server)["order"]["id"]
    assert httpx.post(f"{live_server}/orders/{order_id}/cancel", headers=AUTH).status_code == 200
    stranger = tmp_path / "stranger"
    (stranger / "keys").mkdir(parents=True)
    (stranger / "keys" / "pii.key").write_bytes(b"s" * 32)  # another installation's key
    code, _, err = _orders_cli("archive", redis_url, stranger, "--before", _later())
    assert code == 2
    assert f"order {order_id}: tracking does not decrypt with this key" in err
    assert httpx.get(f"{live_server}/orders/{order_id}", headers=AUTH).status_code == 200
    assert not (other / "keys").exists()


def test_a_server_archives_what_ended_long_enough_ago_by_itself(
    server_factory: Callable[..., str], redis_url: str, tmp_path: Path
) -> None:
    base = server_factory()
    ended, still_open = create(base)["order"]["id"], create(base)["order"]["id"]
    assert httpx.post(f"{base}/orders/{ended}/cancel", headers=AUTH).status_code == 200
    time.sleep(1.0)
    fresh = create(base)["order"]["id"]  # ended a moment ago: stays
    assert httpx.post(f"{base}/orders/{fresh}/cancel", headers=AUTH).status_code == 200
    archiving = server_factory(archive_after_days=0.5 / 86_400)  # half a second
    deadline = time.monotonic() + 10
    while httpx.get(f"{archiving}/orders/{ended}", headers=AUTH).status_code != 404:
        assert time.monotonic() < deadline, "the server did not archive the ended order"
        time.sleep(0.1)
    lines = (tmp_path / "archive" / "orders.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [ended]
    for kept in (still_open, fresh):
        assert httpx.get(f"{archiving}/orders/{kept}", headers=AUTH).status_code == 200
    with redis.Redis.from_url(redis_url) as client:
        assert client.exists(keys.ARCHIVE_LEASE)


def test_one_archiver_writes_a_file_at_a_time(
    live_server: str, redis_url: str, tmp_path: Path
) -> None:
    order_id = create(live_server)["order"]["id"]
    assert httpx.post(f"{live_server}/orders/{order_id}/cancel", headers=AUTH).status_code == 200
    path = tmp_path / "archive" / "orders.jsonl"
    with open_for_append(path):  # a cron job still running, say
        code, _, err = _orders_cli("archive", redis_url, tmp_path, "--before", _later())
        assert code == 2
        assert f"another archiver is writing {path}" in err
        assert httpx.get(f"{live_server}/orders/{order_id}", headers=AUTH).status_code == 200
    code, out, _ = _orders_cli("archive", redis_url, tmp_path, "--before", _later())
    assert code == 0
    assert "Archived 1 order " in out
