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
- `epig`: expected predictive information gain (Bickford Smith et al. 2023): how much the label of a
  comparison would tell, on average, about the labels of the pool's comparisons. BALD asks what a label
  tells about the model, so it can favor odd comparisons unlike any other; EPIG asks what it tells
  about the predictions that matter, with the pool standing in for the comparisons to come.
- `random`: the baseline every rule is measured against.

`select_next` applies a rule to a pool, leaving out what is already labeled. The harness that measures
the rules against random selection (acquisition curves, labels to reach an accuracy, intervals over
seeds, the reference designs that know the truth) is research code and lives in
`benchmarks/selection_research.py`, beside `benchmarks/label_efficiency.py`, which uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np
from numpy.typing import NDArray

from apprentice.errors import ApprenticeError

Scores = NDArray[np.float64]


def win_probabilities(member_margins: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-member_margins))


def binary_entropy(probability: NDArray[np.float64]) -> NDArray[np.float64]:
    """Entropy in nats of a yes/no answer with P(yes) = probability; 0 at certainty, log 2 at 0.5."""
    p = np.clip(probability, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def disagreement(member_margins: NDArray[np.float64]) -> Scores:
    """Spread of the margins across members, per comparison. Input shape (members, comparisons)."""
    return np.asarray(np.std(member_margins, axis=0), dtype=np.float64)


def uncertainty(member_margins: NDArray[np.float64]) -> Scores:
    mean_probability: NDArray[np.float64] = win_probabilities(member_margins).mean(axis=0)
    return binary_entropy(mean_probability)


def bald(member_margins: NDArray[np.float64]) -> Scores:
    probabilities = win_probabilities(member_margins)
    mean_probability: NDArray[np.float64] = probabilities.mean(axis=0)
    mean_member_entropy: NDArray[np.float64] = binary_entropy(probabilities).mean(axis=0)
    return binary_entropy(mean_probability) - mean_member_entropy


def _log_ratio(joint: NDArray[np.float64], product: NDArray[np.float64]) -> NDArray[np.float64]:
    """joint * log(joint / product), 0 where joint is 0 (the limit)."""
    safe_joint = np.clip(joint, 1e-300, None)
    return np.where(joint > 0, joint * (np.log(safe_joint) - np.log(np.clip(product, 1e-300, None))), 0.0)


def thinned_targets(comparisons: int, max_targets: int) -> NDArray[np.int_]:
    """The pool's comparisons as look-ahead targets, thinned to `max_targets` evenly spaced ones."""
    return np.unique(np.linspace(0, comparisons - 1, min(comparisons, max_targets)).round().astype(int))


def epig(member_margins: NDArray[np.float64], *, max_targets: int = 512) -> Scores:
    """Mean mutual information between a comparison's label and each target comparison's label.

    The labels of comparisons i and j are independent given a member, so their joint under the
    ensemble is the members' average: P(y_i = a, y_j = b) = mean_k P_k(y_i = a) P_k(y_j = b).
    The targets are the pool's comparisons themselves (each one included, as a second label of
    itself), thinned to `max_targets` evenly spaced ones on a large pool to bound the cost at
    comparisons x targets x members.
    """
    members, comparisons = member_margins.shape
    win = win_probabilities(member_margins)  # (K, N)
    targets = thinned_targets(comparisons, max_targets)
    target_win = win[:, targets]  # (K, T)
    information = np.zeros((comparisons, len(targets)))
    for own in (win, 1 - win):
        for other in (target_win, 1 - target_win):
            joint = own.T @ other / members  # (N, T)
            product = own.mean(axis=0)[:, None] * other.mean(axis=0)[None, :]
            information += _log_ratio(joint, product)
    return np.asarray(information.mean(axis=1), dtype=np.float64)


def random_scores(member_margins: NDArray[np.float64], *, seed: int = 0) -> Scores:
    return np.asarray(np.random.default_rng(seed).random(member_margins.shape[1]), dtype=np.float64)


RULES: dict[str, Callable[[NDArray[np.float64]], Scores]] = {
    "disagreement": disagreement,
    "bald": bald,
    "uncertainty": uncertainty,
    "epig": epig,
    "random": random_scores,
}


def choose(scores: Scores, budget: int) -> list[int]:
    """Indices of the `budget` highest scores, best first (ties broken by index, so it is deterministic)."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    return [int(index) for index in order[:budget]]


def select_next(
    rule: str, member_margins: NDArray[np.float64], labeled: Collection[int], budget: int, *, seed: int = 0
) -> list[int]:
    """The `budget` unlabeled comparisons that `rule` scores highest (pool indices, best first).

    `member_margins` has shape (members, pool size); `seed` only matters to `random`.
    """
    if rule not in RULES:
        raise ApprenticeError(f"unknown acquisition rule {rule!r}; use one of {', '.join(RULES)}")
    if budget < 0:
        raise ApprenticeError(f"budget must be at least 0, got {budget}")
    scores = random_scores(member_margins, seed=seed) if rule == "random" else RULES[rule](member_margins)
    taken = np.zeros(member_margins.shape[1], dtype=bool)
    taken[list(labeled)] = True
    candidates = np.flatnonzero(~taken)
    return [int(candidates[position]) for position in choose(scores[candidates], budget)]
