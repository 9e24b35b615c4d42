"""Evaluation measures against hand-computed values."""

from __future__ import annotations

import math

import pytest

from apprentice.reward.data import PreferenceData, RankingGroup, RewardPair
from apprentice.reward.evaluate import (
    agreement_level,
    evaluate_scores,
    evaluation_pairs,
    expected_calibration_error,
    length_baseline_accuracy,
    pairwise_accuracy,
    score_distribution,
)

P = [{"role": "user", "content": "p"}]


def test_pairwise_accuracy_counts_ties_half() -> None:
    assert pairwise_accuracy([1.0, 2.0, 0.0, 3.0], [0.0, 3.0, 0.0, 1.0]) == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert math.isnan(pairwise_accuracy([], []))


def test_expected_calibration_error_by_hand() -> None:
    # Two predictions at confidence 0.9 (one right, one wrong: accuracy 0.5 there) and two at 0.6 (both right).
    # ECE = 2/4 * |0.5 - 0.9| + 2/4 * |1.0 - 0.6| = 0.2 + 0.2 = 0.4
    probabilities = [0.9, 0.1, 0.6, 0.6]
    outcomes = [True, True, True, True]  # the second predicted "rejected wins" with 0.9 and was wrong
    assert expected_calibration_error(probabilities, outcomes) == pytest.approx(0.4)
    assert expected_calibration_error([0.75] * 4, [True, True, True, False]) == pytest.approx(0.0)


def test_length_baseline_says_the_longer_response_wins() -> None:
    pairs = [RewardPair(P, "long answer", "short"), RewardPair(P, "no", "longer"), RewardPair(P, "same", "four")]
    assert length_baseline_accuracy(pairs) == pytest.approx((1 + 0 + 0.5) / 3)


def test_agreement_levels_and_report() -> None:
    assert [agreement_level(a) for a in (None, 1.0, 0.75, 2 / 3, 0.5)] == [
        "judged once",
        "unanimous",
        "majority (>= 2/3)",
        "majority (>= 2/3)",
        "split (< 2/3)",
    ]
    pairs = [
        RewardPair(P, "a", "bb", agreement=1.0),
        RewardPair(P, "a", "bb", agreement=0.5),
        RewardPair(P, "aaa", "b"),
    ]
    report = evaluate_scores(pairs, [1.0, 0.0, 2.0], [0.0, 1.0, 0.0])
    assert report["accuracy"] == pytest.approx(2 / 3)
    assert report["length_baseline_accuracy"] == pytest.approx(1 / 3)
    assert report["accuracy_by_agreement"] == {
        "judged once": {"pairs": 1, "accuracy": 1.0},
        "split (< 2/3)": {"pairs": 1, "accuracy": 0.0},
        "unanimous": {"pairs": 1, "accuracy": 1.0},
    }
    assert report["mean_margin"] == pytest.approx((1 - 1 + 2) / 3)


def test_evaluation_pairs_leave_out_ties_and_expand_rankings() -> None:
    data = PreferenceData(
        pairs=[RewardPair(P, "a", "b"), RewardPair(P, "c", "d", target=0.5)],
        groups=[RankingGroup(P, ["x", "y", "z"], [2, 1, 2])],
    )
    assert [(pair.chosen, pair.rejected) for pair in evaluation_pairs(data)] == [("a", "b"), ("y", "x"), ("y", "z")]


def test_score_distribution() -> None:
    summary = score_distribution([0.0, 1.0, 2.0, 3.0, 4.0], bins=4)
    assert summary["mean"] == pytest.approx(2.0) and summary["std"] == pytest.approx(math.sqrt(2.5))
    assert summary["quantiles"]["p50"] == pytest.approx(2.0)
    assert summary["histogram"]["counts"] == [1, 1, 1, 2]
