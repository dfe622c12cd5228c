"""The ETA calibration: errors of ETAs told in advance, by horizon, and their correction."""

from __future__ import annotations

import pytest

from dispatch.calibration import KNOTS_S, Correction, EtaCalibration


def told_at(horizons: list[float], eta: float) -> list[tuple[float, float]]:
    return [(eta - h, eta) for h in horizons]


def test_etas_told_far_ahead_that_came_out_late_are_corrected_there_only() -> None:
    calibration = EtaCalibration(prior=0)
    for i in range(20):  # 15 minutes out: two minutes early; 5 minutes out: right
        eta = 10_000.0 * i
        calibration.add(told_at([900.0], eta), arrived=eta + 120.0)
        calibration.add(told_at([300.0], eta), arrived=eta)
    curve = calibration.curve()
    assert curve.at(900.0) == pytest.approx(120.0)
    assert curve.at(300.0) == pytest.approx(0.0)
    assert curve.at(600.0) == pytest.approx(0.0)  # no samples there: no correction
    assert curve.correct(eta=5_900.0, now=5_000.0) == pytest.approx(6_020.0)


def test_a_few_samples_move_the_correction_a_little_many_move_it_to_their_median() -> None:
    calibration = EtaCalibration(prior=10)
    calibration.add(told_at([900.0], 0.0), arrived=200.0)
    assert calibration.curve().at(900.0) == pytest.approx(200.0 / 11)
    for i in range(1, 190):
        calibration.add(told_at([900.0], 0.0), arrived=100.0 + i % 3)  # median 101
    assert calibration.curve().at(900.0) == pytest.approx(101.0 * 190 / 200)


def test_the_correction_is_bounded_and_never_puts_an_eta_before_now() -> None:
    calibration = EtaCalibration(prior=0, limit=0.5)
    calibration.add(told_at([1800.0] * 5, 0.0), arrived=5000.0)
    calibration.add(told_at([0.0] * 5, 0.0), arrived=-400.0)  # far earlier than said
    curve = calibration.curve()
    assert curve.at(1800.0) == pytest.approx(900.0)  # half the horizon at most
    assert curve.at(0.0) == pytest.approx(-60.0)  # a minute at the shortest horizons
    assert curve.correct(eta=1_010.0, now=1_000.0) == 1_000.0


def test_the_oldest_samples_give_way_to_new_ones() -> None:
    calibration = EtaCalibration(window=10, prior=0)
    calibration.add(told_at([900.0] * 10, 0.0), arrived=300.0)
    calibration.add(told_at([900.0] * 10, 0.0), arrived=-30.0)
    assert len(calibration) == 10
    assert calibration.curve().at(900.0) == pytest.approx(-30.0)


def test_a_correction_survives_its_json_and_a_malformed_one_is_refused() -> None:
    curve = Correction(KNOTS_S, (0.0, 10.0, 20.0, 30.0, 40.0, 50.0))
    assert Correction.from_json(curve.to_json()) == curve
    with pytest.raises(ValueError, match="not a correction curve"):
        Correction.from_json({"knots": [0.0, 300.0], "values": [1.0]})
    with pytest.raises(ValueError, match="not a correction curve"):
        Correction.from_json({"knots": [300.0, 0.0], "values": [1.0, 2.0]})
