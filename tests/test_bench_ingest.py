"""How ``fleet bench ingest --repeat N`` sums up its runs."""

from __future__ import annotations

import math
from typing import Any

from bench.ingest import SPREAD_FIGURES, SUMMED_FIGURES, combine, spread_line


def a_run(acked_per_s: int, p99: float, **counts: int) -> dict[str, Any]:
    run: dict[str, Any] = dict.fromkeys(SPREAD_FIGURES, 1.0)
    run.update(dict.fromkeys(SUMMED_FIGURES, 0))
    run.update(acked_pings_per_s=acked_per_s, console_latency_ms_p99=p99, vehicles=10_000)
    run.update(counts)
    return run


def test_one_run_is_itself() -> None:
    run = a_run(19_000, 120.0)
    assert combine([run]) is run


def test_repeated_runs_give_the_median_run_the_spread_and_every_loss() -> None:
    runs = [a_run(16_700, 390.0), a_run(19_200, 104.0, stored_twice=2), a_run(16_900, 250.0)]
    runs[0]["ack_latency_ms_p50"] = math.nan  # a run that measured no ack
    result = combine(runs)
    assert result["acked_pings_per_s"] == 16_900, "the median run's figures"
    assert result["console_latency_ms_p99"] == 250.0, "all of them from that run"
    assert result["stored_twice"] == 2, "a duplicate in any run shows"
    assert result["repeats"] == 3
    assert result["spread"]["acked_pings_per_s"] == {
        "min": 16_700, "median": 16_900, "max": 19_200, "runs": [16_700, 19_200, 16_900],
    }  # fmt: skip
    assert result["spread"]["console_latency_ms_p99"]["max"] == 390.0
    assert result["spread"]["ack_latency_ms_p50"]["min"] == 1.0, "no NaN in the spread"
    line = spread_line(result)
    assert "16,700 to 19,200 acked pings/s (median 16,900)" in line
    assert "0 acked pings lost and 2 stored twice in all" in line


def test_of_two_middles_the_slower_run_is_the_median_run() -> None:
    result = combine([a_run(19_000, 100.0), a_run(17_000, 300.0)])
    assert result["acked_pings_per_s"] == 17_000
    assert result["spread"]["acked_pings_per_s"]["median"] == 18_000
