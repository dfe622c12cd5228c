"""``fleet bench search`` on a few orders: each query finds what it should, and is timed."""

from __future__ import annotations

from bench import search


def test_a_small_search_bench_finds_what_each_query_asks_for() -> None:
    said: list[str] = []
    result = search.run(orders=40, repeat=1, progress=said.append)
    found = {name: q["found"] for name, q in result["queries"].items()}
    assert found == {"nothing_matches": 0, "one_by_name": 1, "one_by_phone": 1, "many_by_name": 20}
    assert (result["open_orders"], result["looked_at"]) == (30, 40)
    assert all(q["wall_ms"] > 0 and q["cpu_ms"] >= 0 for q in result["queries"].values())
    assert any(line.startswith("nothing_matches") for line in said)
