"""Agreement between annotators: Krippendorff's alpha, Cohen's and Fleiss' kappa, raw agreement, bootstrap CIs.

Every statistic takes *units* (one per comparison): the values the annotators gave that unit, as a
mapping annotator -> value. Missing judgments are simply absent, so units may have any number of
values; a unit with fewer than two values is not pairable and counts for nothing.

Written here rather than taken from `krippendorff` or `statsmodels` because we need one small set of
functions over the same unit format, with a distance for rankings (which `krippendorff` lacks) and
bootstrap intervals over units; the tests check alpha against `krippendorff` to 1e-6.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from apprentice.verdicts import raw_agreement_share

Unit = Mapping[str, Any]  # annotator -> value given to this unit
Level = Literal["nominal", "ordinal", "interval"]

# Conventional reading of alpha (Krippendorff 2004, as quoted by crowd-kit).
ALPHA_RELIABLE = 0.8
ALPHA_TENTATIVE = 0.667


def _value_order(value: Any) -> tuple[int, Any]:
    """Numbers in numeric order (ordinal and interval need it), anything else after them by its repr."""
    if isinstance(value, int | float):
        return (0, float(value))
    return (1, repr(value))


def _value_counts(units: Sequence[Unit]) -> tuple[list[Any], np.ndarray]:
    """Sorted distinct values and a (units, values) matrix of how often each unit got each value."""
    values = sorted({value for unit in units for value in unit.values()}, key=_value_order)
    index = {value: position for position, value in enumerate(values)}
    counts = np.zeros((len(units), len(values)))
    for row, unit in enumerate(units):
        for value in unit.values():
            counts[row, index[value]] += 1
    return values, counts


def coincidence_matrix(counts: np.ndarray) -> np.ndarray:
    """Krippendorff's coincidences o_ck: each ordered pair of values within a unit, weighted 1/(m_u - 1)."""
    pairable = counts[counts.sum(axis=1) >= 2]
    m = pairable.sum(axis=1, keepdims=True)
    weighted = pairable / (m - 1)
    return weighted.T @ pairable - np.diag(weighted.sum(axis=0))


def _squared_distances(values: list[Any], marginals: np.ndarray, level: Level) -> np.ndarray:
    size = len(values)
    if level == "nominal":
        return 1.0 - np.eye(size)
    if level == "interval":
        numeric = np.asarray(values, dtype=float)
        return (numeric[:, None] - numeric[None, :]) ** 2
    # ordinal: the mass of values between c and k, counting the ends half (Krippendorff 2011, eq. for ordinal)
    cumulative = np.concatenate([[0.0], np.cumsum(marginals)])
    distances = np.zeros((size, size))
    for low in range(size):
        for high in range(low + 1, size):
            between = cumulative[high + 1] - cumulative[low] - (marginals[low] + marginals[high]) / 2
            distances[low, high] = distances[high, low] = between**2
    return distances


def krippendorff_alpha(units: Sequence[Unit], level: Level = "nominal") -> float:
    """Krippendorff's alpha = 1 - D_observed / D_expected over all pairable values.

    NaN when fewer than two pairable values or when all values are equal (no variation to agree on).
    """
    values, counts = _value_counts(units)
    coincidences = coincidence_matrix(counts)
    marginals = coincidences.sum(axis=1)
    total = marginals.sum()
    if total < 2:
        return float("nan")
    distances = _squared_distances(values, marginals, level)
    observed = float((coincidences * distances).sum() / total)
    expected = float((np.outer(marginals, marginals) * distances).sum() / (total * (total - 1)))
    if expected == 0:
        return float("nan")
    return 1.0 - observed / expected


def kendall_distance(ranks_a: Sequence[float], ranks_b: Sequence[float]) -> float:
    """Share of item pairs the two rankings order differently (a tie against a strict order counts half)."""
    if len(ranks_a) != len(ranks_b):
        raise ValueError("rankings of different lengths cannot be compared")
    pairs = list(itertools.combinations(range(len(ranks_a)), 2))
    if not pairs:
        return 0.0
    disagreement = 0.0
    for i, j in pairs:
        sign_a = np.sign(ranks_a[i] - ranks_a[j])
        sign_b = np.sign(ranks_b[i] - ranks_b[j])
        disagreement += abs(sign_a - sign_b) / 2
    return disagreement / len(pairs)


def alpha_with_distance(units: Sequence[Unit], distance: Callable[[Any, Any], float]) -> float:
    """Krippendorff's alpha for any values with a (squared) distance, e.g. rankings with `kendall_distance`.

    The same definition as `krippendorff_alpha`, written over pairs of values instead of a value table:
    D_o averages the distance within units (each unit's pairs weighted 1/(m_u - 1)), D_e over all pairs
    of pairable values.
    """
    pairable = [list(unit.values()) for unit in units if len(unit) >= 2]
    total = sum(len(values) for values in pairable)
    if total < 2:
        return float("nan")
    observed = 0.0
    for values in pairable:
        within = sum(distance(a, b) for a, b in itertools.permutations(values, 2))
        observed += within / (len(values) - 1)
    observed /= total
    everything = [value for values in pairable for value in values]
    expected = sum(distance(a, b) for a, b in itertools.permutations(everything, 2)) / (total * (total - 1))
    if expected == 0:
        return float("nan")
    return 1.0 - observed / expected


def raw_agreement(units: Sequence[Unit]) -> float:
    """Share of pairs of annotators on the same unit who gave the same value (NaN without pairs)."""
    share, _ = raw_agreement_share(unit.values() for unit in units)
    return float("nan") if share is None else share


def cohen_kappa(labels_a: Sequence[Hashable], labels_b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two annotators over the same items: (p_o - p_e) / (1 - p_e)."""
    if len(labels_a) != len(labels_b):
        raise ValueError("Cohen's kappa needs the two annotators' labels for the same items")
    if not labels_a:
        return float("nan")
    categories = sorted(set(labels_a) | set(labels_b), key=_value_order)
    observed = float(np.mean([a == b for a, b in zip(labels_a, labels_b, strict=True)]))
    share_a = np.array([sum(label == category for label in labels_a) for category in categories]) / len(labels_a)
    share_b = np.array([sum(label == category for label in labels_b) for category in categories]) / len(labels_b)
    chance = float(share_a @ share_b)
    if chance == 1.0:
        return float("nan")
    return (observed - chance) / (1 - chance)


@dataclass(frozen=True)
class PairKappa:
    annotator_a: str
    annotator_b: str
    shared_units: int
    kappa: float
    agreement: float


def pairwise_cohen_kappa(units: Sequence[Unit], *, min_shared: int = 2) -> list[PairKappa]:
    """Cohen's kappa for every pair of annotators who judged at least `min_shared` units in common."""
    shared: dict[tuple[str, str], tuple[list[Any], list[Any]]] = {}
    for unit in units:
        for a, b in itertools.combinations(sorted(unit), 2):
            first, second = shared.setdefault((a, b), ([], []))
            first.append(unit[a])
            second.append(unit[b])
    result = []
    for (a, b), (labels_a, labels_b) in sorted(shared.items()):
        if len(labels_a) < min_shared:
            continue
        agreement = float(np.mean([x == y for x, y in zip(labels_a, labels_b, strict=True)]))
        result.append(PairKappa(a, b, len(labels_a), cohen_kappa(labels_a, labels_b), agreement))
    return result


def fleiss_kappa(units: Sequence[Unit]) -> float:
    """Fleiss' kappa, generalised to units with different numbers of raters (each unit needs two or more).

    P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1)); P_bar their mean; p_j = share of all ratings in
    category j; P_e = sum_j p_j^2; kappa = (P_bar - P_e) / (1 - P_e).
    """
    _, counts = _value_counts(units)
    counts = counts[counts.sum(axis=1) >= 2]
    if len(counts) == 0:
        return float("nan")
    raters = counts.sum(axis=1)
    per_unit = ((counts**2).sum(axis=1) - raters) / (raters * (raters - 1))
    mean_agreement = float(per_unit.mean())
    shares = counts.sum(axis=0) / counts.sum()
    chance = float((shares**2).sum())
    if chance == 1.0:
        return float("nan")
    return (mean_agreement - chance) / (1 - chance)


@dataclass(frozen=True)
class Estimate:
    """A statistic with a percentile bootstrap interval over units."""

    value: float
    low: float
    high: float
    units: int

    def as_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "units": self.units}


def bootstrap_ci(
    units: Sequence[Unit],
    statistic: Callable[[Sequence[Unit]], float],
    *,
    resamples: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """The statistic and a percentile interval from resampling units with replacement."""
    value = statistic(units)
    pairable = [unit for unit in units if len(unit) >= 2]
    if len(pairable) < 2 or not np.isfinite(value):
        return Estimate(value, float("nan"), float("nan"), len(pairable))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        sample = [pairable[index] for index in rng.integers(0, len(pairable), len(pairable))]
        draw = statistic(sample)
        if np.isfinite(draw):
            draws.append(draw)
    if not draws:
        return Estimate(value, float("nan"), float("nan"), len(pairable))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Estimate(value, float(low), float(high), len(pairable))


def agreement_by_annotator(units: Sequence[Unit]) -> dict[str, tuple[float, int]]:
    """Each annotator's raw agreement with the others on shared units: (share agreeing, pairs)."""
    agreeing: dict[str, int] = {}
    pairs: dict[str, int] = {}
    for unit in units:
        for a, b in itertools.permutations(sorted(unit), 2):
            pairs[a] = pairs.get(a, 0) + 1
            agreeing[a] = agreeing.get(a, 0) + int(unit[a] == unit[b])
    return {name: (agreeing[name] / pairs[name], pairs[name]) for name in sorted(pairs)}
