"""``fleet backup`` / ``fleet restore``: a snapshot of a running Redis, put back into a data dir."""

from __future__ import annotations

from pathlib import Path

import redis

from server.redis_process import PrivateRedis
from tests.conftest import run_cli


def _contents(url: str) -> dict[str, object]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return {
            "order": client.hgetall("fleet:order:o-1"),
            "audit": [fields for _, fields in client.xrange("fleet:audit:o-1")],
            "extra": client.get("fleet:extra"),
            "ttl_kept": 0 < client.ttl("fleet:idem:k") <= 3600,
        }
    finally:
        client.close()


def test_a_backup_taken_while_running_is_what_a_restore_brings_back(tmp_path: Path) -> None:
    data = tmp_path / "var"
    snapshot = tmp_path / "backups" / "monday.rdb"
    snapshot.parent.mkdir()
    with PrivateRedis(data) as private:
        client = redis.Redis.from_url(private.url)
        client.hset("fleet:order:o-1", mapping={"status": "delivered", "pii": "v1:sealed"})
        client.xadd("fleet:audit:o-1", {"status": "received"})
        client.xadd("fleet:audit:o-1", {"status": "delivered"})
        client.set("fleet:idem:k", "o-1", ex=3600)
        client.close()
        code, out, _ = run_cli("backup", str(snapshot), "--redis-url", private.url)
        assert code == 0, out
        assert "keys/pii.key" in out
        at_backup = _contents(private.url)
        client = redis.Redis.from_url(private.url)
        client.delete("fleet:order:o-1")  # what happens after the back-up
        client.set("fleet:extra", "later")
        client.close()
        code, _, err = run_cli("restore", str(snapshot), "--data-dir", str(data))
        assert code == 2  # its server is running
        assert "stop it first" in err
        assert _contents(private.url)["extra"] == "later", "nothing touched"
    code, out, _ = run_cli("restore", str(snapshot), "--data-dir", str(data))
    assert code == 0, out
    assert "Restored 3 keys" in out
    aside = list((data / "redis").glob("appendonlydir.before-restore-*"))
    assert len(aside) == 1, "the data it replaced is kept"
    assert not (data / "redis" / "restore.rdb").exists()
    with PrivateRedis(data) as private:  # as fleet serve starts it: from the append-only file
        assert _contents(private.url) == at_backup
        assert at_backup["order"] == {"status": "delivered", "pii": "v1:sealed"}
        assert at_backup["ttl_kept"] is True


def test_bad_backups_and_restores_are_one_sentence(tmp_path: Path, redis_url: str) -> None:
    junk = tmp_path / "junk.rdb"
    junk.write_bytes(b"not a snapshot")
    cases = [
        (("restore", str(junk), "--data-dir", str(tmp_path)), "is not a Redis snapshot"),
        (("restore", str(tmp_path / "none.rdb"), "--data-dir", str(tmp_path)), "No back-up at"),
        (("restore", str(junk), "--redis-url", redis_url), "restore a Redis of your own"),
        (("backup", str(tmp_path), "--redis-url", redis_url), "is a folder"),
        (("backup", str(tmp_path / "no" / "x.rdb"), "--redis-url", redis_url), "No folder"),
    ]
    for args, said in cases:
        code, _, err = run_cli(*args)
        assert code == 2, err
        assert said in err
        assert "Traceback" not in err
    code, _, err = run_cli(
        "backup", str(tmp_path / "x.rdb"), "--redis-url", "redis://127.0.0.1:1/0"
    )
    assert code == 2
    assert not (tmp_path / "x.rdb").exists()
