"""Simulated annotators: noisy, biased judges built on a gold oracle, as in AlpacaFarm.

Each simulated annotator makes Bradley-Terry choices on the oracle's scores: it prefers the response
shown first with probability sigmoid((s_first - s_second) / temperature). The temperature is
calibrated so that two simulated annotators agree about as often as people do (InstructGPT reports
72.6% +/- 1.5% agreement between labelers). On top of that, a profile adds the failure modes that
quality control must catch: label flips, a pull towards the left (first shown) response, a pull
towards the longer response, careless clicking at random, and a speed.

This module holds the decision model and its calibration (pure, tested); the client that judges
through the studio's HTTP API uses them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

HUMAN_AGREEMENT = 0.73  # InstructGPT: labelers agreed 72.6 +/- 1.5% of the time


def sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exp = math.exp(value)
    return exp / (1.0 + exp)


@dataclass(frozen=True)
class AnnotatorProfile:
    """How one simulated annotator judges. All effects are off by default (an honest annotator)."""

    name: str
    temperature: float = 1.0  # Bradley-Terry temperature on oracle score differences
    flip_rate: float = 0.0  # chance the final answer is flipped (AlpacaFarm used 25%)
    left_bias: float = 0.0  # added to the log-odds of choosing the response shown first
    length_bias: float = 0.0  # log-odds per 100 characters of length difference, towards the longer
    careless_rate: float = 0.0  # chance of clicking at random without reading
    seconds_per_judgment: float = 20.0


def prob_first(
    score_first: float, score_second: float, profile: AnnotatorProfile, length_first: int = 0, length_second: int = 0
) -> float:
    """Probability that `profile` picks the response shown first (before careless clicks and flips)."""
    logit = (score_first - score_second) / profile.temperature
    logit += profile.left_bias + profile.length_bias * (length_first - length_second) / 100.0
    return sigmoid(logit)


def answer_prob_first(
    score_first: float, score_second: float, profile: AnnotatorProfile, length_first: int = 0, length_second: int = 0
) -> float:
    """Probability of the answer "first" after careless clicking and label flips are applied."""
    p = prob_first(score_first, score_second, profile, length_first, length_second)
    p = (1 - profile.careless_rate) * p + profile.careless_rate * 0.5
    return (1 - profile.flip_rate) * p + profile.flip_rate * (1 - p)


def choose_first(
    score_first: float,
    score_second: float,
    profile: AnnotatorProfile,
    rng: random.Random,
    length_first: int = 0,
    length_second: int = 0,
) -> bool:
    """One simulated choice: True when the response shown first is preferred."""
    return rng.random() < answer_prob_first(score_first, score_second, profile, length_first, length_second)


def expected_agreement(score_differences: Sequence[float], temperature: float, flip_rate: float = 0.0) -> float:
    """Mean chance that two independent simulated annotators give the same answer to a pair.

    For one pair with winning probability p, two annotators agree with probability p^2 + (1-p)^2.
    """
    if not score_differences:
        raise ValueError("need at least one score difference")
    honest = AnnotatorProfile("a", temperature=temperature, flip_rate=flip_rate)
    total = 0.0
    for difference in score_differences:
        p = answer_prob_first(difference, 0.0, honest)
        total += p * p + (1 - p) * (1 - p)
    return total / len(score_differences)


def calibrate_temperature(
    score_differences: Sequence[float],
    target_agreement: float = HUMAN_AGREEMENT,
    *,
    flip_rate: float = 0.0,
    tolerance: float = 1e-4,
) -> float:
    """The Bradley-Terry temperature at which two simulated annotators agree `target_agreement` of the time.

    Agreement falls monotonically from its noiseless maximum towards 0.5 as the temperature rises, so
    bisection on log-temperature finds it. Raises ValueError when the target is out of reach (above the
    agreement of noiseless annotators with these flips, or at or below chance).
    """
    low, high = 1e-6, 1e6
    ceiling = expected_agreement(score_differences, low, flip_rate)
    if not 0.5 < target_agreement <= ceiling + 1e-12:
        raise ValueError(
            f"target agreement {target_agreement:.3f} is out of reach: with flip rate {flip_rate} "
            f"these scores allow agreement between 0.5 and {ceiling:.3f}"
        )
    for _ in range(200):
        middle = math.sqrt(low * high)
        if expected_agreement(score_differences, middle, flip_rate) > target_agreement:
            low = middle
        else:
            high = middle
        if high / low < 1 + tolerance:
            break
    return math.sqrt(low * high)
