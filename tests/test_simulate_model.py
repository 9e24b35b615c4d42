"""The simulated annotators' decision model and its calibration to human agreement."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from apprentice.simulate import (
    HUMAN_AGREEMENT,
    AnnotatorProfile,
    SimulationReport,
    answer_prob_first,
    calibrate_temperature,
    choose_first,
    expected_agreement,
    prob_first,
    reachable_temperature,
    sigmoid,
)


def test_bradley_terry_choice_probability_by_hand() -> None:
    honest = AnnotatorProfile("h", temperature=0.5)
    # (0.8 - 0.3) / 0.5 = 1 -> sigmoid(1) = 0.731059
    assert prob_first(0.8, 0.3, honest) == pytest.approx(0.7310586, abs=1e-6)
    assert prob_first(0.3, 0.8, honest) == pytest.approx(1 - 0.7310586, abs=1e-6)
    assert prob_first(0.5, 0.5, honest) == 0.5


def test_biases_move_the_log_odds_as_documented() -> None:
    left = AnnotatorProfile("l", left_bias=math.log(4))  # 80% left when the responses are equally good
    assert prob_first(0.0, 0.0, left) == pytest.approx(0.8)
    longer = AnnotatorProfile("len", length_bias=1.0)  # +1 log-odds per 100 characters longer
    assert prob_first(0.0, 0.0, longer, length_first=300, length_second=200) == pytest.approx(sigmoid(1.0))


def test_careless_clicks_and_flips_by_hand() -> None:
    # p = 0.9 before noise; careless 0.2: 0.8 * 0.9 + 0.2 * 0.5 = 0.82; flips 0.25: 0.75 * 0.82 + 0.25 * 0.18 = 0.66
    profile = AnnotatorProfile("n", temperature=1.0, careless_rate=0.2, flip_rate=0.25)
    score = math.log(9)  # sigmoid(log 9) = 0.9
    assert answer_prob_first(score, 0.0, profile) == pytest.approx(0.66)


def test_expected_agreement_by_hand() -> None:
    # One pair with p = sigmoid(1) = 0.731059: agreement 0.731059^2 + 0.268941^2 = 0.606776
    assert expected_agreement([1.0], temperature=1.0) == pytest.approx(0.606776, abs=1e-6)
    assert expected_agreement([0.0, 0.0], temperature=1.0) == pytest.approx(0.5)


@pytest.mark.parametrize("flip_rate", [0.0, 0.1])
def test_calibrated_temperature_hits_the_target_and_monte_carlo_agrees(flip_rate: float) -> None:
    rng = random.Random(0)
    differences = [rng.gauss(0.0, 0.6) for _ in range(400)]
    temperature = calibrate_temperature(differences, HUMAN_AGREEMENT, flip_rate=flip_rate)
    assert expected_agreement(differences, temperature, flip_rate) == pytest.approx(HUMAN_AGREEMENT, abs=1e-3)
    first = AnnotatorProfile("a", temperature=temperature, flip_rate=flip_rate)
    second = AnnotatorProfile("b", temperature=temperature, flip_rate=flip_rate)
    trials = 20_000
    agreed = 0
    for index in range(trials):
        difference = differences[index % len(differences)]
        agreed += choose_first(difference, 0.0, first, rng) == choose_first(difference, 0.0, second, rng)
    assert agreed / trials == pytest.approx(HUMAN_AGREEMENT, abs=0.015)


def test_unreachable_targets_are_refused_with_the_reachable_range() -> None:
    with pytest.raises(ValueError, match="out of reach"):
        calibrate_temperature([0.1, -0.2], 0.5)
    with pytest.raises(ValueError, match=r"between 0\.5 and"):
        calibrate_temperature([1.0], 0.95, flip_rate=0.25)  # 25% flips cap agreement at 0.625


def test_reachable_temperature_calibrates_or_falls_back_to_choices_by_the_scores() -> None:
    differences = [random.Random(1).gauss(0.0, 0.6) for _ in range(200)]
    assert reachable_temperature(differences, flip_rate=0.1) == calibrate_temperature(differences, flip_rate=0.1)
    # 25% flips cap agreement at 0.625, under the 73% target: no noise beyond the flips.
    assert reachable_temperature(differences, flip_rate=0.25) == 1e-3


def test_the_simulation_report_puts_measured_agreement_beside_the_expected() -> None:
    report = SimulationReport(
        temperature=1e-3, judgments=48, per_annotator={}, agreement=1.0, overlapping_pairs=2, expected_agreement=0.625
    )
    # two pairs of answers are too few to show a rate: no "100%" resting on them
    assert report.describe_agreement() == (
        "agreement between two answers to the same comparison too little data (n=2), expected 62%"
    )
    measured = replace(report, agreement=0.75, overlapping_pairs=40)
    assert measured.describe_agreement() == (
        "agreement between two answers to the same comparison 0.75 (95% CI 0.60-0.86, n=40), expected 62%"
    )
    unmeasured = SimulationReport(temperature=0.3, judgments=5, per_annotator={}, agreement=None, overlapping_pairs=0)
    assert unmeasured.describe_agreement() == "no pair judged twice yet"
