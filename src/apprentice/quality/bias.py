"""Bias detection with tests, effect sizes and intervals: position, length, rating harshness, coverage.

- Position: the share of left choices against 0.5 (exact binomial test, Wilson interval), overall and
  per annotator; the display order is random per judgment, so any departure is the annotators'.
- Length: logistic regression of "chose A" on log(length A / length B) with a Wald interval for the
  slope, and the share of pairs in which the longer response won (Wilson interval).
- Harshness: each annotator's mean rating minus the mean of the others on the same items (t interval).
- Coverage: judged comparisons per prompt category (naming categories left without labels) and each
  annotator's share of the judgments (no single annotator should dominate).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, norm
from scipy.stats import t as student_t

from apprentice.quality.pairs import PairTable
from apprentice.quality.reliability import logistic_fit
from apprentice.rates import wilson_interval
from apprentice.store.quality_queries import QualityJudgment


@dataclass(frozen=True)
class ShareTest:
    """A share against a null value: exact binomial p-value, Wilson interval, and Cohen's h as effect size."""

    label: str
    successes: int
    trials: int
    share: float
    low: float
    high: float
    p_value: float
    cohens_h: float

    def as_dict(self) -> dict[str, float | int | str]:
        return dict(vars(self))


def share_test(label: str, successes: int, trials: int, null: float = 0.5) -> ShareTest:
    if trials == 0:
        nan = float("nan")
        return ShareTest(label, 0, 0, nan, nan, nan, nan, nan)
    share = successes / trials
    low, high = wilson_interval(successes, trials)
    p_value = float(binomtest(successes, trials, null).pvalue)
    cohens_h = float(2 * np.arcsin(np.sqrt(share)) - 2 * np.arcsin(np.sqrt(null)))
    return ShareTest(label, successes, trials, share, low, high, p_value, cohens_h)


def position_bias(table: PairTable) -> tuple[ShareTest, list[ShareTest]]:
    """Left-choice share overall and per annotator (each against 0.5)."""
    overall = share_test("all annotators", int(table.chose_left.sum()), len(table))
    per_annotator = [
        share_test(name, int(table.chose_left[table.annotator == index].sum()), int((table.annotator == index).sum()))
        for index, name in enumerate(table.annotators)
    ]
    return overall, per_annotator


@dataclass(frozen=True)
class LengthBias:
    """How preference moves with length: P(chose A) = sig(intercept + slope * log(len A / len B))."""

    pairs: int
    slope: float
    slope_low: float
    slope_high: float
    slope_p_value: float
    intercept: float
    longer_wins: ShareTest  # pairs of unequal length: share in which the longer response won
    bins: list[dict[str, float]]  # for the plot: centre of each log-ratio bin, share chose A, count

    def odds_ratio_for_doubling(self) -> float:
        """How the odds of choosing a response change when it is twice as long as the other."""
        return float(np.exp(self.slope * np.log(2)))

    def as_dict(self) -> dict[str, object]:
        return {
            "pairs": self.pairs,
            "slope": self.slope,
            "slope_low": self.slope_low,
            "slope_high": self.slope_high,
            "slope_p_value": self.slope_p_value,
            "intercept": self.intercept,
            "odds_ratio_for_doubling": self.odds_ratio_for_doubling(),
            "longer_wins": self.longer_wins.as_dict(),
            "bins": self.bins,
        }


def length_log_ratio(length_a: np.ndarray, length_b: np.ndarray) -> np.ndarray:
    """log(len A / len B), with lengths floored at one character."""
    return np.asarray(np.log(np.maximum(length_a, 1) / np.maximum(length_b, 1)))


def length_bias(chose_a: np.ndarray, length_a: np.ndarray, length_b: np.ndarray, *, bins: int = 9) -> LengthBias:
    """Fit the length logistic regression with a 95% Wald interval for the slope, and bin the data for a plot."""
    chose_a = np.asarray(chose_a, dtype=float)
    ratio = length_log_ratio(np.asarray(length_a, float), np.asarray(length_b, float))
    features = np.stack([np.ones(len(ratio)), ratio], axis=1)
    coefficients, _ = logistic_fit(features, chose_a, ridge=1e-6)
    probability = 1 / (1 + np.exp(-(features @ coefficients)))
    information = (features * (probability * (1 - probability))[:, None]).T @ features
    covariance = np.linalg.pinv(information)
    slope_se = float(np.sqrt(max(covariance[1, 1], 0.0)))
    z = float(norm.ppf(0.975))
    slope = float(coefficients[1])
    p_value = float(2 * norm.sf(abs(slope) / slope_se)) if slope_se > 0 else float("nan")
    unequal = ratio != 0
    longer_won = int(((ratio > 0) & (chose_a > 0.5) | (ratio < 0) & (chose_a < 0.5))[unequal].sum())
    edges = np.quantile(ratio, np.linspace(0, 1, bins + 1)) if len(ratio) else np.zeros(bins + 1)
    binned = []
    for low, high in itertools.pairwise(edges):
        inside = (ratio >= low) & (ratio <= high)
        if inside.any():
            binned.append(
                {
                    "log_ratio": float(ratio[inside].mean()),
                    "chose_a": float(chose_a[inside].mean()),
                    "count": int(inside.sum()),
                }
            )
    return LengthBias(
        pairs=len(ratio),
        slope=slope,
        slope_low=slope - z * slope_se,
        slope_high=slope + z * slope_se,
        slope_p_value=p_value,
        intercept=float(coefficients[0]),
        longer_wins=share_test("longer response chosen", longer_won, int(unequal.sum())),
        bins=binned,
    )


def length_bias_of_table(table: PairTable) -> LengthBias:
    """Length bias in display terms (A = the left response), so the intercept carries the position bias."""
    return length_bias(table.chose_left, table.length_left, table.length_right)


@dataclass(frozen=True)
class Harshness:
    annotator: str
    ratings: int
    mean_difference: float  # own rating minus the others' mean on the same items
    low: float
    high: float


def rating_harshness(judgments: Sequence[QualityJudgment]) -> list[Harshness]:
    """Per annotator: how much lower (negative) or higher they rate than the others on the same items."""
    by_item: dict[int, dict[str, float]] = defaultdict(dict)
    for judgment in judgments:
        score = judgment.answer.get("score") if judgment.kind == "rating" else None
        if isinstance(score, int | float):
            by_item[judgment.comparison_id][judgment.annotator] = float(score)
    differences: dict[str, list[float]] = defaultdict(list)
    for scores in by_item.values():
        if len(scores) < 2:
            continue
        total = sum(scores.values())
        for name, score in scores.items():
            differences[name].append(score - (total - score) / (len(scores) - 1))
    result = []
    for name, values in sorted(differences.items()):
        array = np.asarray(values)
        mean = float(array.mean())
        if len(array) > 1:
            half = float(student_t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array)))
        else:
            half = float("nan")
        result.append(Harshness(name, len(array), mean, mean - half, mean + half))
    return result


@dataclass(frozen=True)
class Coverage:
    judged_by_category: dict[str, int]  # judged comparisons per prompt category
    prompts_by_category: dict[str, int]
    unlabelled_categories: list[str]  # categories with prompts and no judgment
    annotator_share: dict[str, float]
    dominant_annotator: str | None  # an annotator with more than `dominance` of the judgments

    def as_dict(self) -> dict[str, object]:
        return dict(vars(self))


UNCATEGORISED = "(none)"


def coverage(
    judgments: Sequence[QualityJudgment],
    prompts_by_category: Mapping[str | None, int] | None = None,
    *,
    dominance: float = 0.5,
) -> Coverage:
    """Which topics got labels and who gave them; `prompts_by_category` names topics still unlabelled."""
    judged: dict[str, set[int]] = defaultdict(set)
    for judgment in judgments:
        judged[judgment.category or UNCATEGORISED].add(judgment.comparison_id)
    judged_counts = {category: len(ids) for category, ids in sorted(judged.items())}
    prompts = {(category or UNCATEGORISED): count for category, count in (prompts_by_category or {}).items()}
    unlabelled = sorted(category for category, count in prompts.items() if count and category not in judged_counts)
    counts = Counter(judgment.annotator for judgment in judgments)
    total = sum(counts.values())
    shares = {name: count / total for name, count in sorted(counts.items())} if total else {}
    dominant = next((name for name, share in shares.items() if share > dominance and len(shares) > 1), None)
    return Coverage(judged_counts, dict(sorted(prompts.items())), unlabelled, shares, dominant)
