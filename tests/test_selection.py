"""Acquisition rules for active selection, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apprentice.selection import RULES, bald, binary_entropy, choose, disagreement, uncertainty


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


def test_choose_takes_the_highest_scores_deterministically() -> None:
    assert choose(np.array([0.1, 0.9, 0.5, 0.9]), 3) == [1, 3, 2]
    assert choose(np.array([0.3]), 5) == [0]


def test_every_rule_scores_every_comparison() -> None:
    margins = np.random.default_rng(1).normal(size=(4, 7))
    for name, rule in RULES.items():
        scores = rule(margins)
        assert scores.shape == (7,), name
        assert np.all(np.isfinite(scores)), name
