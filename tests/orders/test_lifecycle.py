"""The order lifecycle rules and the time-node limits of the operating documents."""

from __future__ import annotations

import itertools

import pytest

from server.orders.lifecycle import (
    FINAL,
    STATUSES,
    NodeLimits,
    TransitionError,
    breaches,
    check_transition,
)

H = 3_600_000  # an hour in ms
LIMITS = NodeLimits()


@pytest.mark.parametrize(
    "path",
    [
        ["received", "processed", "departed", "picked_up", "arrived", "delivered"],
        ["received", "processed", "departed", "picked_up", "failed", "processed"],
        ["received", "processed", "departed", "picked_up", "failed", "returned"],
        ["received", "cancelled"],
    ],
)
def test_the_documented_paths_are_allowed(path: list[str]) -> None:
    for current, target in itertools.pairwise(path):
        check_transition(current, target)


@pytest.mark.parametrize("final", sorted(FINAL))
def test_nothing_leaves_a_final_status(final: str) -> None:
    for target in STATUSES:
        with pytest.raises(TransitionError):
            check_transition(final, target)


def test_a_picked_up_order_cannot_be_cancelled() -> None:
    with pytest.raises(TransitionError, match="picked_up cannot become cancelled"):
        check_transition("picked_up", "cancelled")


def test_node_limits() -> None:
    assert breaches({"received": 0}, now_ms=1 * H, limits=LIMITS) == []
    assert breaches({"received": 0}, now_ms=3 * H, limits=LIMITS) == ["processing"]
    on_time = {"received": 0, "processed": 1 * H, "departed": 3 * H}
    assert breaches(on_time, now_ms=5 * H, limits=LIMITS) == []
    late_departure = {"received": 0, "processed": 1 * H}
    assert breaches(late_departure, now_ms=5 * H, limits=LIMITS) == ["departure"]
    assert "lead_time" in breaches(
        {"received": 0, "processed": H, "departed": 2 * H}, 49 * H, LIMITS
    )
    delivered = {"received": 0, "processed": H, "departed": 2 * H, "delivered": 47 * H}
    assert breaches(delivered, now_ms=100 * H, limits=LIMITS) == []
