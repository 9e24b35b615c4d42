"""The research harness of active selection: measuring the loop's rules against random selection.

None of this runs in a user's loop, so it lives beside the benchmark that uses it
(`benchmarks/label_efficiency.py`) rather than in the package:

- `expected_error_reduction` and its batch form, a noise-aware rule that is not in the loop's rules
  until it beats BALD; `fisher_design_batch`, a reference design that knows the annotators' true
  probabilities (only a simulation does), to show what asking well could save;
- `acquisition_curve`: batch acquisition (fit, measure, choose the next batch, repeat) for one rule;
  the fitting is told the step number, never the rule, so that every rule gets the same training;
- `labels_to_reach` (and `_interpolated`), `share_by_budget`, `share_of_baseline` and `share_interval`:
  how many labels a rule needs to reach random's accuracy, and how far that could move with other seeds;
- `fit_bootstrap_heads`: the ensemble the rules read, K linear Bradley-Terry heads on frozen features,
  one per bootstrap resample of the labels (`apprentice.reward.ensemble.fit_head`'s objective, solved
  for all heads at once).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from apprentice.errors import ApprenticeError
from apprentice.selection import RULES, Scores, choose, select_next, thinned_targets, win_probabilities


def _sign_error(mean: NDArray[np.float64], variance: NDArray[np.float64]) -> NDArray[np.float64]:
    """P(the margin's sign differs from its mean's) for a Gaussian margin: Phi(-|mean| / sd)."""
    from scipy.special import ndtr

    return np.asarray(ndtr(-np.abs(mean) / np.sqrt(variance)), dtype=np.float64)


def _gaussian_belief(
    member_margins: NDArray[np.float64], max_targets: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int_]]:
    """The members' margins as a Gaussian belief: their mean (N,), their deviations (K, N) scaled so that
    deviations.T @ deviations is their covariance, and the look-ahead targets."""
    members, comparisons = member_margins.shape
    mean = member_margins.mean(axis=0)
    deviations = (member_margins - mean) / np.sqrt(max(members - 1, 1))
    return mean, deviations, thinned_targets(comparisons, max_targets)


def _eer_step(
    mean: NDArray[np.float64], deviations: NDArray[np.float64], targets: NDArray[np.int_]
) -> tuple[Scores, NDArray[np.float64]]:
    """One look-ahead: for every comparison i, the drop in the targets' summed sign error that a label on i
    is expected to bring, and the Fisher weight p(1 - p) of that label. `deviations` (K, N) are the members'
    margins minus their mean over sqrt(K - 1), so deviations.T @ deviations is their covariance."""
    variance = np.clip((deviations**2).sum(axis=0), 1e-12, None)  # (N,)
    covariance = deviations.T @ deviations[:, targets]  # (N, T)
    # The probability of the answer "first wins", with the margin's spread (probit approximation, MacKay 1992).
    win = win_probabilities(mean / np.sqrt(1 + np.pi * variance / 8))
    weight = win * (1 - win)
    shrink = 1 + weight * variance  # (N,)
    # After a label y on i (a Gaussian view of the Bradley-Terry likelihood, one Newton step): target j's
    # mean moves by cov(j, i) (y - p_i) / shrink_i and its variance drops by weight_i cov(j, i)^2 / shrink_i.
    narrowed = weight[:, None] * covariance**2 / shrink[:, None]
    after_variance = np.clip(variance[targets][None, :] - narrowed, 1e-12, None)  # (N, T)
    gain = covariance / shrink[:, None]
    expected_after = np.zeros_like(covariance)
    for answer, chance in ((1.0, win), (0.0, 1 - win)):
        moved = mean[targets][None, :] + gain * (answer - win)[:, None]
        expected_after += chance[:, None] * _sign_error(moved, after_variance)
    now = _sign_error(mean[targets], variance[targets]).sum()
    return np.asarray(now - expected_after.sum(axis=1), dtype=np.float64), weight


def expected_error_reduction(member_margins: NDArray[np.float64], *, max_targets: int = 512) -> Scores:
    """How much a comparison's label is expected to cut the number of pool comparisons whose order is wrong.

    The members' margins are read as a Gaussian belief about each margin (their mean and covariance). A
    comparison's order is wrong with probability Phi(-|mean| / sd); a label on comparison i moves every
    margin correlated with i's and narrows it (`_eer_step`), and the score is the expected fall of the
    summed error over the targets (the pool, thinned as in `epig`). It is noise-aware where BALD is not:
    a label on a pair the members put near 50/50 comes out either way, and its expected effect on which
    side of zero the other margins end up is small. The measure the benchmark reports, validation accuracy
    against the true order, is the quantity it estimates (Roy and McCallum 2001, on a linear-Gaussian view).
    """
    mean, deviations, targets = _gaussian_belief(member_margins, max_targets)
    return _eer_step(mean, deviations, targets)[0]


def expected_error_reduction_batch(
    member_margins: NDArray[np.float64], candidates: Sequence[int], budget: int, *, max_targets: int = 512
) -> list[int]:
    """`budget` comparisons picked one at a time by `expected_error_reduction`, each after the belief has been
    narrowed by the labels picked before it (which does not depend on their answers), so a batch does not
    ask the same question twice."""
    mean, deviations, targets = _gaussian_belief(member_margins, max_targets)
    open_ = np.zeros(len(mean), dtype=bool)
    open_[list(candidates)] = True
    chosen: list[int] = []
    while len(chosen) < budget and open_.any():
        scores, weight = _eer_step(mean, deviations, targets)
        scores[~open_] = -np.inf
        pick = int(choose(scores, 1)[0])
        chosen.append(pick)
        open_[pick] = False
        # Condition the belief on a label at `pick`: covariance C - w c c^T / (1 + w C_pp), kept as the factor
        # (I - beta e e^T / |e|^2) @ deviations with e = deviations[:, pick] and (1 - beta)^2 = 1 / (1 + w |e|^2).
        column = deviations[:, pick].copy()
        size = float(column @ column)
        if size > 0:
            beta = 1 - 1 / np.sqrt(1 + weight[pick] * size)
            deviations = deviations - beta * np.outer(column, column @ deviations) / size
    return chosen


def fisher_design_batch(
    differences: NDArray[np.float64],
    win_probability: NDArray[np.float64],
    labeled: Sequence[int],
    budget: int,
    *,
    ridge: float = 1.0,
) -> list[int]:
    """A reference design, not a rule: greedy D-optimal comparisons for a Bradley-Terry model whose win
    probabilities are known, which only a simulation knows.

    A label on comparison i (features of a minus features of b: d_i, chance of "a wins" p_i) adds
    p_i (1 - p_i) d_i d_i^T to the Fisher information of a linear reward; starting from ridge * I plus
    the labeled comparisons' information A, each pick is the open comparison with the largest
    p (1 - p) d^T A^-1 d (the largest rise of log det A), and A grows by it before the next pick. With
    the true probabilities this is the classical optimal design for the logistic model (optimal for the
    estimate's variance, not necessarily for accuracy), so the benchmark uses it as a reference for what
    asking well could save when the answer is known; no rule can use it, since it needs the truth.
    """
    if budget < 0:
        raise ApprenticeError(f"budget must be at least 0, got {budget}")
    weight = win_probability * (1 - win_probability)
    done = list(labeled)
    information = ridge * np.eye(differences.shape[1]) + (differences[done] * weight[done, None]).T @ differences[done]
    inverse = np.linalg.inv(information)
    open_ = np.ones(len(differences), dtype=bool)
    open_[done] = False
    chosen: list[int] = []
    while len(chosen) < budget and open_.any():
        gain = weight * np.einsum("nh,hk,nk->n", differences, inverse, differences)
        gain[~open_] = -np.inf
        pick = int(choose(gain, 1)[0])
        chosen.append(pick)
        open_[pick] = False
        column = inverse @ differences[pick]  # Sherman-Morrison: the inverse after adding the pick's information
        inverse -= weight[pick] * np.outer(column, column) / (1 + weight[pick] * differences[pick] @ column)
    return chosen


# Rules that pick a whole batch at once (each pick accounts for the ones before it). They are not in
# RULES, which the loop's settings mirror, until one is shown to beat BALD (benchmarks/label_efficiency.py).
BATCH_RULES: dict[str, Callable[[NDArray[np.float64], Sequence[int], int], list[int]]] = {
    "eer": expected_error_reduction_batch,
}


def select_next_any(
    rule: str, member_margins: NDArray[np.float64], labeled: Collection[int], budget: int, *, seed: int = 0
) -> list[int]:
    """`apprentice.selection.select_next`, plus the research rules that pick a whole batch at once."""
    if rule in BATCH_RULES:
        if budget < 0:
            raise ApprenticeError(f"budget must be at least 0, got {budget}")
        done = set(labeled)
        open_ = [index for index in range(member_margins.shape[1]) if index not in done]
        return BATCH_RULES[rule](member_margins, open_, budget)
    if rule not in RULES:
        raise ApprenticeError(f"unknown acquisition rule {rule!r}; use one of {', '.join([*RULES, *BATCH_RULES])}")
    return select_next(rule, member_margins, labeled, budget, seed=seed)


Model = TypeVar("Model")


@dataclass(frozen=True)
class CurvePoint:
    labels: int
    accuracy: float


@dataclass(frozen=True)
class AcquisitionRun:
    """What one rule did: the accuracy after each step and every label it asked for, in order."""

    rule: str
    curve: list[CurvePoint]
    labeled: list[int]


def acquisition_curve(
    rule: str,
    *,
    initial: Sequence[int],
    batch: int,
    steps: int,
    fit: Callable[[list[int], int], Model],
    pool_margins: Callable[[Model], NDArray[np.float64]],
    accuracy: Callable[[Model], float],
    seed: int = 0,
    choose_batch: Callable[[Model, list[int], int], list[int]] | None = None,
    max_labels: int | None = None,
) -> AcquisitionRun:
    """Batch active learning: fit on the labels so far, measure, add the `batch` the rule picks; `steps` times.

    `fit(labeled, step)` trains a model (an ensemble) on the labeled pool indices; `pool_margins(model)`
    gives its members' margins on the whole pool, shape (members, pool size); `accuracy(model)` is the
    measure (validation accuracy). The curve has steps + 1 points, from len(initial) labels up.
    `choose_batch(model, labeled, batch)`, when given, picks the next labels in place of the rule (a
    reference design such as `fisher_design_batch`; `rule` then only names the run). With `max_labels`, the
    batch that would pass it is cut to end there, so a budget that is not a whole number of batches is met.
    """
    if len(set(initial)) != len(initial):
        raise ApprenticeError("the initial labels repeat a comparison")
    labeled = list(initial)
    curve = []
    for step in range(steps + 1):
        model = fit(list(labeled), step)
        curve.append(CurvePoint(len(labeled), accuracy(model)))
        if step == steps:
            break
        size = batch if max_labels is None else min(batch, max_labels - len(labeled))
        if choose_batch is not None:
            chosen = choose_batch(model, list(labeled), size)
        else:
            chosen = select_next_any(rule, pool_margins(model), labeled, size, seed=seed * 100_003 + step)
        if not chosen:
            break  # the pool is exhausted
        labeled.extend(chosen)
    return AcquisitionRun(rule, curve, labeled)


def labels_to_reach(curve: Sequence[CurvePoint], target: float) -> int | None:
    """The fewest labels at which the curve's accuracy is at least `target`; None if it never gets there."""
    for point in curve:
        if point.accuracy >= target - 1e-12:
            return point.labels
    return None


def labels_to_reach_interpolated(curve: Sequence[CurvePoint], target: float) -> float | None:
    """Like `labels_to_reach`, but read between measured points: the labels at which the straight line
    from the last point below `target` to the first point at or above it crosses `target`."""
    for index, point in enumerate(curve):
        if point.accuracy >= target - 1e-12:
            if index == 0:
                return float(point.labels)
            before = curve[index - 1]
            share = (target - before.accuracy) / (point.accuracy - before.accuracy)
            return before.labels + share * (point.labels - before.labels)
    return None


def share_by_budget(curve: Sequence[CurvePoint], baseline: Sequence[CurvePoint]) -> dict[int, float | None]:
    """For every budget the baseline measured after its first point: the share of that budget that `curve`
    needs to reach the baseline's accuracy there (interpolated; None where it never does).

    The saving of active selection depends on the budget (it is small while the ensemble knows little,
    and fades as the labels use up the pool), so one final budget tells only part of the story.
    """
    return {
        point.labels: None
        if (needed := labels_to_reach_interpolated(curve, point.accuracy)) is None
        else needed / point.labels
        for point in baseline[1:]
    }


def mean_curve(curves: Sequence[Sequence[CurvePoint]]) -> list[CurvePoint]:
    """The curves (one per seed, measured at the same label counts) averaged point by point."""
    return [
        CurvePoint(points[0].labels, float(np.mean([point.accuracy for point in points])))
        for points in zip(*curves, strict=True)
    ]


def share_of_baseline(curves: Sequence[Sequence[CurvePoint]], baseline: Sequence[Sequence[CurvePoint]]) -> float | None:
    """The share of the baseline's final labels that the mean of `curves` needs to reach the mean baseline's
    final accuracy (interpolated); None where it never does."""
    baseline_mean = mean_curve(baseline)
    needed = labels_to_reach_interpolated(mean_curve(curves), baseline_mean[-1].accuracy)
    return None if needed is None else needed / baseline_mean[-1].labels


def share_interval(
    curves: Sequence[Sequence[CurvePoint]],
    baseline: Sequence[Sequence[CurvePoint]],
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float | None]:
    """A percentile bootstrap interval over seeds for `share_of_baseline`.

    The curves are paired by seed (curves[i] and baseline[i] share their labels and starting set), so
    each resample draws seeds with replacement and keeps both curves of a drawn seed together. A
    resample in which the curve never reaches the baseline counts as above every share, so the upper
    end is None when more than (1 - level) / 2 of the resamples never get there. Ten seeds hide a
    spread of several points in the share: this says how far the goal is from the measured figure.
    """
    if len(curves) != len(baseline) or not curves:
        raise ApprenticeError(f"share_interval needs the same seeds for both ({len(curves)} and {len(baseline)})")
    rng = np.random.default_rng(seed)
    shares = []
    for _ in range(resamples):
        drawn = rng.integers(0, len(curves), len(curves))
        share = share_of_baseline([curves[i] for i in drawn], [baseline[i] for i in drawn])
        shares.append(np.inf if share is None else share)
    # The inverted empirical distribution, not interpolation, which makes nan of a step into 'never'.
    low, high = np.quantile(shares, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return float(low), None if np.isinf(high) else float(high)


# -- the ensemble the rules read: bootstrap heads on frozen features -------------------------------


def bootstrap_counts(examples: int, heads: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """(heads, examples): how often each example is drawn in each head's resample with replacement."""
    counts = np.zeros((heads, examples))
    for head in range(heads):
        np.add.at(counts[head], rng.integers(0, examples, examples), 1.0)
    return counts


def fit_bootstrap_heads(
    winners: NDArray[np.float64],
    losers: NDArray[np.float64],
    counts: NDArray[np.float64],
    *,
    l2: float,
    tolerance: float = 1e-7,
    max_iterations: int = 50,
) -> NDArray[np.float64]:
    """(K, H) linear reward heads; head k fits the pairs weighted by counts[k] (its bootstrap resample).

    The objective is that of `apprentice.reward.ensemble.fit_head`: the weighted mean Bradley-Terry
    loss -log sigmoid(w . (winner - loser)) plus l2 |w|^2 on features standardized by the head's own
    sample, with the scale folded back into w. It is solved here by Newton's method for all heads at
    once instead of by L-BFGS one head at a time, because the acquisition loop refits after every
    batch and L-BFGS costs about half a second per head on a busy 2-core machine. The objective is
    strictly convex (l2 > 0), so both find the same optimum.
    """
    if l2 <= 0:
        raise ApprenticeError(f"l2 must be positive, got {l2}")
    rows = np.concatenate([winners, losers])  # (2n, H): the sample whose spread standardizes the features
    row_counts = np.concatenate([counts, counts], axis=1)  # (K, 2n)
    total = row_counts.sum(axis=1, keepdims=True)
    mean = row_counts @ rows / total  # (K, H)
    # Unbiased, as torch.std in fit_head: the sum of squares over (drawn rows - 1).
    variance = (row_counts @ rows**2 - total * mean**2) / np.maximum(total - 1, 1)
    scale = np.sqrt(np.clip(variance, 0, None)).clip(min=1e-6)  # (K, H)
    difference = (winners - losers)[None, :, :] / scale[:, None, :]  # (K, n, H)
    share = counts / counts.sum(axis=1, keepdims=True)  # (K, n): the weighted mean's weights
    heads, features = scale.shape
    weights = np.zeros((heads, features))
    identity = np.eye(features)
    for _ in range(max_iterations):
        win_probability = 1.0 / (1.0 + np.exp(-(difference @ weights[:, :, None])[..., 0]))  # (K, n)
        gradient = -(share * (1 - win_probability))[:, None, :] @ difference  # (K, 1, H)
        gradient = gradient[:, 0, :] + 2 * l2 * weights
        curvature = share * win_probability * (1 - win_probability)
        hessian = difference.transpose(0, 2, 1) @ (curvature[..., None] * difference) + 2 * l2 * identity
        step = np.linalg.solve(hessian, gradient[..., None])[..., 0]
        weights -= step
        if np.max(np.abs(step)) < tolerance:
            break
    return np.asarray(weights / scale, dtype=np.float64)
