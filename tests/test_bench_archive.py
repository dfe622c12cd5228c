"""``fleet bench archive`` on a few orders: every order leaves Redis and comes back the same."""

from __future__ import annotations

from bench import archive


def test_a_small_archive_bench_moves_every_order_and_back() -> None:
    said: list[str] = []
    result = archive.run(orders=60, progress=said.append)
    assert result["archived"] == result["restored"] == 60
    assert result["left_in_redis"] == 0
    assert result["orders_in_redis_after_restore"] == 60
    assert result["restored_equal"] is True
    assert 1000 < result["redis_bytes_per_delivered_order"] < 50_000
    assert 0 < result["freed_bytes_per_order"] <= result["redis_bytes_per_delivered_order"]
    assert any(line.startswith("archived 60") for line in said)
