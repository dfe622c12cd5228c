"""The learned pace per area: local congestion stays local, little evidence moves little."""

from __future__ import annotations

from dispatch.pace import AreaPace, leg_factors


def test_no_area_speaks_before_the_city_wide_pace_is_known() -> None:
    pace = AreaPace(min_samples=5, prior=2)
    for k in range(4):
        pace.add("a", expected_s=100.0, actual_s=250.0, at_s=float(k))
    assert pace.values(10.0) == (1.0, {})
    pace.add("b", expected_s=100.0, actual_s=100.0, at_s=4.0)
    city, areas = pace.values(10.0)
    assert city == 2.5  # the median of four 2.5 and one 1.0
    assert areas["a"] == 2.5
    # One sample against a prior of two: a third of the way from the city's to its own.
    assert areas["b"] == round((1 * 1.0 + 2 * 2.5) / 3, 3)


def test_a_slow_area_is_slower_than_the_city_and_a_free_one_faster() -> None:
    pace = AreaPace(min_samples=10, prior=10)
    for k in range(30):
        pace.add("jam", expected_s=60.0, actual_s=120.0, at_s=float(k))
        pace.add("open", expected_s=60.0, actual_s=66.0, at_s=float(k))
    city, areas = pace.values(60.0)
    assert areas["open"] < city < areas["jam"]
    assert areas["open"] == round((30 * 1.1 + 10 * city) / 40, 3)
    assert areas["jam"] == round((30 * 2.0 + 10 * city) / 40, 3)


def test_accidents_are_left_out_and_old_samples_forgotten() -> None:
    pace = AreaPace(window_s=300, min_samples=3, prior=1)
    for k in range(3):
        assert pace.add("a", expected_s=100.0, actual_s=120.0, at_s=float(k))
    assert not pace.add("a", expected_s=400.0, actual_s=20.0, at_s=3.0), "a detour"
    assert not pace.add("a", expected_s=0.0, actual_s=20.0, at_s=3.0)
    assert pace.values(10.0) == (1.2, {"a": 1.2})
    assert pace.values(400.0) == (1.0, {}), "samples older than the window are gone"


def test_a_leg_takes_the_mean_of_its_ends() -> None:
    f = leg_factors([1.0, 3.0, 2.0])
    assert f[0, 1] == f[1, 0] == 2.0
    assert f[1, 2] == 2.5
    assert f[2, 2] == 2.0
