"""Active selection over a pool: choosing among unlabeled comparisons, the acquisition loop, labels to reach."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from apprentice.errors import ApprenticeError
from apprentice.selection import select_next
from selection_research import (
    CurvePoint,
    acquisition_curve,
    bootstrap_counts,
    fit_bootstrap_heads,
    labels_to_reach,
    labels_to_reach_interpolated,
    mean_curve,
    select_next_any,
    share_by_budget,
    share_interval,
    share_of_baseline,
)


def test_select_next_takes_the_highest_unlabeled_scores() -> None:
    # Two members; spreads per comparison: 0, 2, 1, 3, 0.5.
    margins = np.array([[0.0, 2.0, 1.0, 3.0, 0.5], [0.0, -2.0, -1.0, -3.0, -0.5]])
    assert select_next("disagreement", margins, labeled=[3], budget=2) == [1, 2]
    assert select_next("disagreement", margins, labeled=[], budget=1) == [3]


def test_select_next_never_repeats_a_label_and_stops_at_the_pool() -> None:
    margins = np.random.default_rng(0).normal(size=(3, 6))
    for rule in ("disagreement", "bald", "uncertainty", "epig", "eer", "random"):
        chosen = select_next_any(rule, margins, labeled=[0, 2, 4], budget=10, seed=1)
        assert sorted(chosen) == [1, 3, 5], rule


def test_random_selection_follows_its_seed() -> None:
    margins = np.zeros((2, 50))
    first = select_next("random", margins, labeled=[], budget=10, seed=3)
    assert first == select_next("random", margins, labeled=[], budget=10, seed=3)
    assert first != select_next("random", margins, labeled=[], budget=10, seed=4)


def test_select_next_rejects_an_unknown_rule() -> None:
    with pytest.raises(ApprenticeError, match="unknown acquisition rule 'entropy'; use one of disagreement"):
        select_next("entropy", np.zeros((2, 3)), labeled=[], budget=1)


def test_labels_to_reach_by_hand() -> None:
    curve = [CurvePoint(32, 0.60), CurvePoint(64, 0.71), CurvePoint(96, 0.70), CurvePoint(128, 0.75)]
    assert labels_to_reach(curve, 0.70) == 64
    assert labels_to_reach(curve, 0.75) == 128
    assert labels_to_reach(curve, 0.60) == 32
    assert labels_to_reach(curve, 0.76) is None


def test_labels_to_reach_interpolated_by_hand() -> None:
    curve = [CurvePoint(32, 0.60), CurvePoint(64, 0.70), CurvePoint(96, 0.68), CurvePoint(128, 0.78)]
    assert labels_to_reach_interpolated(curve, 0.65) == pytest.approx(48.0)  # halfway from 0.60 to 0.70
    assert labels_to_reach_interpolated(curve, 0.72) == pytest.approx(96 + 32 * 0.4)  # 0.68 -> 0.78
    assert labels_to_reach_interpolated(curve, 0.55) == 32.0  # reached at the first point
    assert labels_to_reach_interpolated(curve, 0.80) is None


def test_share_by_budget_by_hand() -> None:
    baseline = [CurvePoint(32, 0.60), CurvePoint(64, 0.70), CurvePoint(96, 0.80), CurvePoint(128, 0.90)]
    curve = [CurvePoint(32, 0.60), CurvePoint(64, 0.75), CurvePoint(96, 0.85), CurvePoint(128, 0.88)]
    shares = share_by_budget(curve, baseline)
    assert list(shares) == [64, 96, 128]
    assert shares[64] == pytest.approx((32 + 32 * 0.10 / 0.15) / 64)  # 0.70 between 0.60 at 32 and 0.75 at 64
    assert shares[96] == pytest.approx((64 + 32 * 0.5) / 96)  # 0.80 halfway from 0.75 to 0.85
    assert shares[128] is None  # 0.90 is never reached


def _curve(*accuracies: float) -> list[CurvePoint]:
    return [CurvePoint(32 * (index + 1), accuracy) for index, accuracy in enumerate(accuracies)]


def test_mean_curve_and_share_of_baseline_by_hand() -> None:
    baseline = [_curve(0.6, 0.7), _curve(0.6, 0.8)]  # mean final accuracy 0.75 at 64 labels
    curves = [_curve(0.7, 0.9), _curve(0.7, 0.9)]
    assert mean_curve(baseline) == [CurvePoint(32, 0.6), CurvePoint(64, pytest.approx(0.75))]
    # 0.75 is a quarter of the way from 0.7 (32 labels) to 0.9 (64): 40 labels, 40 / 64 of the baseline's.
    assert share_of_baseline(curves, baseline) == pytest.approx(40 / 64)
    assert share_of_baseline([_curve(0.5, 0.6)] * 2, baseline) is None


def test_share_interval_collapses_when_every_seed_is_the_same() -> None:
    baseline, curves = [_curve(0.6, 0.8)] * 5, [_curve(0.7, 0.9)] * 5
    share = share_of_baseline(curves, baseline)
    assert share_interval(curves, baseline, resamples=200) == (pytest.approx(share), pytest.approx(share))


def test_share_interval_by_hand_with_a_seed_that_never_reaches() -> None:
    # Seed A alone: 0.7 reached at 32 labels (share 0.5); seed B alone: never; both: 0.7 at 64 (share 1.0).
    # Resamples give AA, AB/BA, BB with chances 1/4, 1/2, 1/4, so the 2.5% point is 0.5 and the 97.5% never.
    baseline = [_curve(0.6, 0.7), _curve(0.6, 0.7)]
    curves = [_curve(0.7, 0.8), _curve(0.5, 0.6)]
    assert share_interval(curves, baseline, resamples=4000) == (pytest.approx(0.5), None)
    with pytest.raises(ApprenticeError, match="the same seeds for both"):
        share_interval(curves, baseline[:1])


# -- the loop on a toy: learn a threshold on [0, 1] from labeled points ---------------------------

POOL = np.random.default_rng(0).uniform(0.0, 1.0, 400)
GRID = np.linspace(0.0, 1.0, 2001)
TRUE_THRESHOLD = 0.37


def _fit_thresholds(labeled: list[int], step: int, members: int = 5) -> NDArray[np.float64]:
    """Each member: the midpoint between the largest negative and smallest positive point of a bootstrap."""
    rng = np.random.default_rng(1000 + step)  # depends on the step only, as the benchmark's fitting does
    points = POOL[labeled]
    thresholds = []
    for _ in range(members):
        sample = points[rng.integers(0, len(points), len(points))]
        negatives, positives = sample[sample <= TRUE_THRESHOLD], sample[sample > TRUE_THRESHOLD]
        low = negatives.max() if len(negatives) else 0.0
        high = positives.min() if len(positives) else 1.0
        thresholds.append((low + high) / 2)
    return np.asarray(thresholds)


def _margins(thresholds: NDArray[np.float64]) -> NDArray[np.float64]:
    return 50.0 * (POOL[None, :] - thresholds[:, None])  # (members, pool)


def _accuracy(thresholds: NDArray[np.float64]) -> float:
    return float(np.mean((thresholds.mean() < GRID) == (TRUE_THRESHOLD < GRID)))


def _run(rule: str, fit_calls: list[tuple[int, int]] | None = None) -> tuple[list[CurvePoint], list[int]]:
    def fit(labeled: list[int], step: int) -> NDArray[np.float64]:
        if fit_calls is not None:
            fit_calls.append((len(labeled), step))
        return _fit_thresholds(labeled, step)

    initial = [int(i) for i in np.random.default_rng(7).choice(len(POOL), 8, replace=False)]
    run = acquisition_curve(
        rule, initial=initial, batch=4, steps=5, fit=fit, pool_margins=_margins, accuracy=_accuracy, seed=7
    )
    return run.curve, run.labeled


def test_every_rule_gets_the_same_start_and_the_same_training_steps() -> None:
    seen: dict[str, list[tuple[int, int]]] = {}
    starts = set()
    for rule in ("random", "disagreement", "bald", "uncertainty"):
        seen[rule] = []
        curve, labeled = _run(rule, seen[rule])
        starts.add(tuple(labeled[:8]))
        assert [point.labels for point in curve] == [8, 12, 16, 20, 24, 28], rule
        assert len(set(labeled)) == len(labeled) == 28, rule
    assert len(starts) == 1
    assert all(calls == seen["random"] for calls in seen.values())
    assert seen["random"] == [(8 + 4 * step, step) for step in range(6)]


def test_max_labels_cuts_the_last_batch_to_end_at_the_budget() -> None:
    run = acquisition_curve(
        "disagreement",
        initial=[0, 1, 2],
        batch=4,
        steps=3,
        fit=_fit_thresholds,
        pool_margins=_margins,
        accuracy=_accuracy,
        max_labels=13,
    )
    assert [point.labels for point in run.curve] == [3, 7, 11, 13]
    assert len(set(run.labeled)) == len(run.labeled) == 13


def test_uncertainty_bald_and_epig_learn_the_threshold_with_fewer_labels_than_random() -> None:
    # Asking near the current boundary halves the interval like a binary search; random points rarely land there.
    random_curve, _ = _run("random")
    for rule in ("uncertainty", "bald", "epig"):
        curve, _ = _run(rule)
        assert curve[0].accuracy == random_curve[0].accuracy  # the same starting labels
        assert curve[-1].accuracy > random_curve[-1].accuracy, rule
        reached = labels_to_reach(curve, random_curve[-1].accuracy)
        assert reached is not None and reached <= 16, rule


def test_the_loop_refuses_repeated_initial_labels() -> None:
    with pytest.raises(ApprenticeError, match="repeat"):
        acquisition_curve(
            "random",
            initial=[1, 1],
            batch=1,
            steps=1,
            fit=_fit_thresholds,
            pool_margins=_margins,
            accuracy=_accuracy,
        )


# -- the bootstrap heads -------------------------------------------------------------------------


def _toy_pairs(count: int, features: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    winners, losers = rng.normal(size=(count, features)), rng.normal(size=(count, features))
    winners[:, 0] += 0.8  # the first feature tells winners from losers, noisily
    winners[:, 1] *= 100.0  # features on very different scales, as in LLM hidden states
    return winners, losers


def test_bootstrap_heads_minimize_the_same_objective_as_fit_head() -> None:
    import torch

    from apprentice.reward.data import RewardPair
    from apprentice.reward.ensemble import fit_head

    winners, losers = _toy_pairs(40, 6, seed=0)
    ours = fit_bootstrap_heads(winners, losers, np.ones((1, 40)), l2=1e-2)[0]
    pair = RewardPair(prompt=[], chosen="", rejected="")
    reference = fit_head(
        torch.tensor(winners, dtype=torch.float32),
        torch.tensor(losers, dtype=torch.float32),
        [pair] * 40,
        l2=1e-2,
        steps=200,
        seed=0,
    ).numpy()
    assert np.allclose(ours, reference, rtol=2e-3, atol=1e-4 * np.abs(reference).max())
    assert ours[0] > 0  # it learned the direction that tells winners from losers


def test_a_bootstrap_head_is_the_head_of_its_resample() -> None:
    winners, losers = _toy_pairs(30, 4, seed=1)
    counts = bootstrap_counts(30, 3, np.random.default_rng(0))
    assert counts.shape == (3, 30)
    assert counts.sum(axis=1).tolist() == [30.0, 30.0, 30.0]
    heads = fit_bootstrap_heads(winners, losers, counts, l2=1e-2)
    for head in range(3):
        rows = np.repeat(np.arange(30), counts[head].astype(int))  # the resample written out
        alone = fit_bootstrap_heads(winners[rows], losers[rows], np.ones((1, len(rows))), l2=1e-2)[0]
        assert np.allclose(heads[head], alone, rtol=1e-6, atol=1e-9)
    assert not np.allclose(heads[0], heads[1])  # different resamples, different heads


def test_bootstrap_heads_need_a_positive_penalty() -> None:
    winners, losers = _toy_pairs(5, 2, seed=2)
    with pytest.raises(ApprenticeError, match="l2 must be positive"):
        fit_bootstrap_heads(winners, losers, np.ones((1, 5)), l2=0.0)


def test_a_reference_design_replaces_the_rule_and_sees_the_labels_so_far() -> None:
    # Nearest to the true threshold first: a design that knows the truth, as fisher_design_batch does.
    seen: list[list[int]] = []

    def nearest_open(model: NDArray[np.float64], labeled: list[int], batch: int) -> list[int]:
        seen.append(labeled)
        distance = np.abs(POOL - TRUE_THRESHOLD)
        distance[labeled] = np.inf
        return [int(i) for i in np.argsort(distance)[:batch]]

    initial = [0, 1, 2, 3]
    run = acquisition_curve(
        "known-threshold",
        initial=initial,
        batch=2,
        steps=2,
        fit=_fit_thresholds,
        pool_margins=_margins,
        accuracy=_accuracy,
        choose_batch=nearest_open,
    )
    nearest = [int(i) for i in np.argsort(np.abs(POOL - TRUE_THRESHOLD)) if i not in initial][:4]
    assert run.labeled == initial + nearest
    assert seen == [initial, initial + nearest[:2]]
    assert run.rule == "known-threshold"
