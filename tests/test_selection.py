"""Acquisition rules for active selection, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apprentice.selection import (
    RULES,
    bald,
    binary_entropy,
    choose,
    disagreement,
    epig,
    uncertainty,
)
from selection_research import expected_error_reduction, expected_error_reduction_batch, fisher_design_batch


def test_binary_entropy_by_hand() -> None:
    values = binary_entropy(np.array([0.5, 1.0, 0.25]))
    assert values[0] == pytest.approx(math.log(2))
    assert values[1] == pytest.approx(0.0, abs=1e-9)
    assert values[2] == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))


def test_disagreement_is_the_spread_of_margins() -> None:
    margins = np.array([[1.0, 0.0], [3.0, 0.0]])  # two members, two comparisons
    assert disagreement(margins).tolist() == [1.0, 0.0]


def test_bald_separates_contradiction_from_shared_doubt() -> None:
    contradicting = np.array([[4.0], [-4.0]])  # each member sure, of opposite answers
    doubtful = np.array([[0.0], [0.0]])  # both members at 50/50
    p = 1 / (1 + math.exp(-4.0))
    expected = math.log(2) - float(binary_entropy(np.array([p]))[0])
    assert bald(contradicting)[0] == pytest.approx(expected)
    assert bald(doubtful)[0] == pytest.approx(0.0, abs=1e-12)
    # Plain uncertainty cannot tell them apart: both average to 0.5.
    assert uncertainty(contradicting)[0] == pytest.approx(uncertainty(doubtful)[0])


def _logit(probability: float) -> float:
    return math.log(probability / (1 - probability))


def test_epig_of_one_comparison_by_hand() -> None:
    # Two members say 0.9 and 0.5. The only target is the comparison itself (a second label of it):
    # P(1, 1) = (0.81 + 0.25) / 2, P(0, 0) = (0.01 + 0.25) / 2, P(1, 0) = P(0, 1) = (0.09 + 0.25) / 2,
    # and each label alone is 1 with probability 0.7.
    margins = np.array([[_logit(0.9)], [_logit(0.5)]])
    p11, p00, p10 = 0.53, 0.13, 0.17
    expected = p11 * math.log(p11 / 0.49) + p00 * math.log(p00 / 0.09) + 2 * p10 * math.log(p10 / 0.21)
    assert epig(margins)[0] == pytest.approx(expected)


def test_epig_counts_only_what_a_label_tells_about_the_targets() -> None:
    # Comparison 0: two sure members that contradict each other, so two labels of it always agree
    # (log 2 of shared information). Comparison 1: both members at 50/50, a coin that tells nothing.
    # Each is the target half of the time: EPIG(0) = (log 2 + 0) / 2, EPIG(1) = 0.
    margins = np.array([[50.0, 0.0], [-50.0, 0.0]])
    scores = epig(margins)
    assert scores[0] == pytest.approx(math.log(2) / 2)
    assert scores[1] == pytest.approx(0.0, abs=1e-12)
    # Members that agree leave nothing to learn, however unsure they are.
    assert np.allclose(epig(np.array([[0.3, -1.0, 2.0], [0.3, -1.0, 2.0]])), 0.0, atol=1e-12)


def test_epig_thins_the_targets_of_a_large_pool() -> None:
    margins = np.random.default_rng(2).normal(size=(3, 9))
    every_target = epig(margins)
    thinned = epig(margins, max_targets=3)  # targets 0, 4 and 8
    win = 1 / (1 + np.exp(-margins))
    for comparison in range(9):
        information = []
        for target in (0, 4, 8):
            total = 0.0
            for own in (win[:, comparison], 1 - win[:, comparison]):
                for other in (win[:, target], 1 - win[:, target]):
                    joint = float(np.mean(own * other))
                    total += joint * math.log(joint / (own.mean() * other.mean()))
            information.append(total)
        assert thinned[comparison] == pytest.approx(np.mean(information))
    assert not np.allclose(every_target, thinned)


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_expected_error_reduction_of_one_comparison_by_hand() -> None:
    # Two members at +1 and -1: the margin's belief has mean 0 and variance 2 (over K - 1), so its order is
    # wrong with probability 1/2 and P(first wins) = 1/2, Fisher weight 1/4. A label narrows the variance to
    # 2 - (1/4) 2^2 / (1 + (1/4) 2) = 4/3 and moves the mean by 2 (y - 1/2) / (3/2) = +-2/3 either way,
    # so the order is wrong with probability Phi(-(2/3) / sqrt(4/3)) afterwards.
    expected = 0.5 - _normal_cdf(-(2 / 3) / math.sqrt(4 / 3))
    assert expected_error_reduction(np.array([[1.0], [-1.0]]))[0] == pytest.approx(expected)
    # A second comparison the members agree on is settled: asking it helps nothing, and it does not
    # change the first one's score (its error stays 0).
    scores = expected_error_reduction(np.array([[1.0, 2.0], [-1.0, 2.0]]))
    assert scores[0] == pytest.approx(expected)
    assert scores[1] == pytest.approx(0.0, abs=1e-12)


def test_expected_error_reduction_counts_what_a_label_tells_about_other_comparisons() -> None:
    # Comparisons 0 and 1 move together across members; 2 is unrelated to them. A label on 0 or 1 settles
    # part of both, so each is worth more than the lone one with the same spread.
    margins = np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    scores = expected_error_reduction(margins)
    assert scores[0] == pytest.approx(scores[1])
    assert scores[0] > scores[2] > 0


def test_expected_error_reduction_batch_conditions_on_earlier_picks() -> None:
    margins = np.random.default_rng(3).normal(scale=2.0, size=(6, 12))
    one_step = expected_error_reduction(margins)
    batch = expected_error_reduction_batch(margins, candidates=range(1, 12), budget=4)
    assert batch[0] == 1 + int(np.argmax(one_step[1:]))  # the first pick is the best open one
    assert len(set(batch)) == 4 and 0 not in batch
    # Comparisons 0 and 1 are the same question (same margins in every member), 2 an unrelated one. One at a
    # time, 0 and 1 score highest; once 0 is asked, 1 is partly answered and the unrelated 2 is worth more.
    twins = np.array([[2.5, 2.5, 2.0], [-1.5, -1.5, 2.0], [0.5, 0.5, -4.0]])
    assert choose(expected_error_reduction(twins), 2) == [0, 1]
    assert expected_error_reduction_batch(twins, candidates=[0, 1, 2], budget=2) == [0, 2]
    assert expected_error_reduction_batch(twins, candidates=[0, 1, 2], budget=5) == [0, 2, 1]  # stops at the pool


def test_choose_takes_the_highest_scores_deterministically() -> None:
    assert choose(np.array([0.1, 0.9, 0.5, 0.9]), 3) == [1, 3, 2]
    assert choose(np.array([0.3]), 5) == [0]


def test_every_rule_scores_every_comparison() -> None:
    margins = np.random.default_rng(1).normal(size=(4, 7))
    for name, rule in RULES.items():
        scores = rule(margins)
        assert scores.shape == (7,), name
        assert np.all(np.isfinite(scores)), name


def test_the_settings_offer_exactly_the_rules_there_are() -> None:
    from typing import get_args

    from apprentice.settings import LoopSection

    offered = get_args(LoopSection.model_fields["selection"].annotation)
    assert set(offered) == set(RULES)
    assert LoopSection(selection="epig").selection == "epig"


# Three comparisons in two dimensions: d = (2, 0), (0, 1.5), (1.9, 0), every one a coin flip (p = 0.5, weight 1/4).
FISHER_DIFFERENCES = np.array([[2.0, 0.0], [0.0, 1.5], [1.9, 0.0]])


def test_fisher_design_takes_the_largest_information_then_conditions_on_it() -> None:
    # First pick: weight * |d|^2 = 1.0, 0.5625, 0.9025 -> comparison 0. Then A = I + diag(1, 0) = diag(2, 1):
    # comparison 2 gains 0.25 * 3.61 / 2 = 0.45125, comparison 1 still 0.5625 -> comparison 1, not the
    # near-duplicate that a top-k batch would take.
    chosen = fisher_design_batch(FISHER_DIFFERENCES, np.full(3, 0.5), [], 2)
    assert chosen == [0, 1]
    # Labels already held count as information: with 0 and 1 labeled only 2 is left.
    assert fisher_design_batch(FISHER_DIFFERENCES, np.full(3, 0.5), [0, 1], 5) == [2]


def test_fisher_design_passes_over_comparisons_whose_answer_is_known() -> None:
    # p = 0.99 on comparison 0: weight 0.0099, gain 0.0396, below 2's 0.9025 and 1's 0.5625.
    chosen = fisher_design_batch(FISHER_DIFFERENCES, np.array([0.99, 0.5, 0.5]), [], 1)
    assert chosen == [2]
