"""Active selection: which comparisons people should judge next.

Human time is the scarce input of RLHF, so each round asks people about the comparisons that teach
the reward model most. Following Christiano et al. (2017), a comparison is worth asking about when a
reward-model ensemble disagrees on it. The rules here score every open comparison from the ensemble's
predicted margins (reward of the first response minus the second, one row per ensemble member); the
loop writes the scores into the studio's priorities, highest first.

- `disagreement`: the spread (standard deviation) of the members' margins.
- `bald`: mutual information between the label and the ensemble member (Houlsby et al. 2011):
  the entropy of the mean Bradley-Terry probability minus the mean of the members' entropies. High
  when members are confident but contradict each other, low when all are merely unsure.
- `uncertainty`: the entropy of the mean probability (plain uncertainty sampling).
- `random`: the baseline every rule is measured against.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

Scores = NDArray[np.float64]


def _probabilities(member_margins: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-member_margins))


def binary_entropy(probability: NDArray[np.float64]) -> NDArray[np.float64]:
    """Entropy in nats of a yes/no answer with P(yes) = probability; 0 at certainty, log 2 at 0.5."""
    p = np.clip(probability, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def disagreement(member_margins: NDArray[np.float64]) -> Scores:
    """Spread of the margins across members, per comparison. Input shape (members, comparisons)."""
    return np.asarray(np.std(member_margins, axis=0), dtype=np.float64)


def uncertainty(member_margins: NDArray[np.float64]) -> Scores:
    mean_probability: NDArray[np.float64] = _probabilities(member_margins).mean(axis=0)
    return binary_entropy(mean_probability)


def bald(member_margins: NDArray[np.float64]) -> Scores:
    probabilities = _probabilities(member_margins)
    mean_probability: NDArray[np.float64] = probabilities.mean(axis=0)
    mean_member_entropy: NDArray[np.float64] = binary_entropy(probabilities).mean(axis=0)
    return binary_entropy(mean_probability) - mean_member_entropy


def random_scores(member_margins: NDArray[np.float64], *, seed: int = 0) -> Scores:
    return np.asarray(np.random.default_rng(seed).random(member_margins.shape[1]), dtype=np.float64)


RULES: dict[str, Callable[[NDArray[np.float64]], Scores]] = {
    "disagreement": disagreement,
    "bald": bald,
    "uncertainty": uncertainty,
    "random": random_scores,
}


def choose(scores: Scores, budget: int) -> list[int]:
    """Indices of the `budget` highest scores, best first (ties broken by index, so it is deterministic)."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    return [int(index) for index in order[:budget]]
