"""Reliability models: Dawid-Skene and Noisy Bradley-Terry against crowd-kit, gradients, tests, BH."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from crowdkit.aggregation import DawidSkene, NoisyBradleyTerry
from scipy.optimize import check_grad
from scipy.special import expit
from scipy.stats import binomtest, norm, spearmanr

from apprentice.quality.pairs import PairTable, pair_table
from apprentice.quality.reliability import (
    AnnotatorTest,
    adaptive_benjamini_hochberg,
    benjamini_hochberg,
    dawid_skene,
    dawid_skene_pairs,
    fit_side_preference,
    logistic_fit,
    noisy_bradley_terry,
    noisy_bt_negative_log_posterior,
    position_bradley_terry,
    position_bt_negative_log_posterior,
    side_evidence,
    side_preference_left_probability,
    side_preference_negative_log_likelihood,
    side_weighted_p_values,
    sign_flip_test,
    unsure_share,
)
from apprentice.quality.synthetic import make_panel_annotators, simulate_panel


def bare_table(
    annotator: list[int], left: list[int], right: list[int], chose_left: list[bool], items: int
) -> PairTable:
    count = len(annotator)
    names = [f"a{index}" for index in range(max(annotator) + 1)]
    return PairTable(
        judgments=[],
        annotators=names,
        comparisons=[0],
        items=list(range(items)),
        annotator=np.asarray(annotator),
        comparison=np.zeros(count, dtype=int),
        left_item=np.asarray(left),
        right_item=np.asarray(right),
        left_position=np.zeros(count, dtype=int),
        chose_left=np.asarray(chose_left, dtype=bool),
        winner=np.zeros(count, dtype=int),
        length_left=np.zeros(count),
        length_right=np.zeros(count),
    )


def test_dawid_skene_unanimous_items_are_certain() -> None:
    item = np.array([0, 0, 0, 1, 1, 1])
    annotator = np.array([0, 1, 2, 0, 1, 2])
    label = np.array([1, 1, 1, 0, 0, 0])
    result = dawid_skene(item, annotator, label)
    assert result.labels.tolist() == [1, 0]
    assert result.posteriors[0, 1] == pytest.approx(1.0)
    assert np.allclose(result.accuracy, 1.0)


def test_dawid_skene_first_step_by_hand() -> None:
    # Two annotators, two items. Item 0: both say 0. Item 1: a0 says 1, a1 says 0.
    # Majority-vote start: item 0 -> (1, 0); item 1 -> (0.5, 0.5). Priors (0.75, 0.25).
    # Confusions (P(observed | true)): a0: true 0 -> 1 and 0.5 mass on obs 0 and 1 -> (2/3, 1/3);
    # true 1 -> only item 1 (0.5) on obs 1 -> (eps, 1). a1 always says 0: true 0 -> (1, eps), true 1 -> (1, eps).
    # E-step, item 1 (a0 says 1, a1 says 0): true 0 -> 0.75 * 1/3 * 1 = 0.25; true 1 -> 0.25 * 1 * 1 = 0.25.
    item = np.array([0, 0, 1, 1])
    annotator = np.array([0, 1, 0, 1])
    label = np.array([0, 0, 1, 0])
    result = dawid_skene(item, annotator, label, max_iterations=1)
    assert result.posteriors[1] == pytest.approx([0.5, 0.5], abs=1e-6)
    assert result.posteriors[0, 0] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("seed", [3, 4])
def test_dawid_skene_matches_crowd_kit(seed: int) -> None:
    panel = simulate_panel(
        make_panel_annotators(12, clickers=0.25, seed=seed), judgments_per_annotator=40, overlap=4, seed=seed
    )
    table = pair_table(panel.judgments)
    # Exactly 30 EM iterations each (a tolerance no change can fall below): crowd-kit stops on a
    # different evidence bound, so equal iteration counts are how the same algorithm is compared.
    ours = dawid_skene_pairs(table, max_iterations=30, tolerance=-np.inf)
    frame = pd.DataFrame(
        {"task": table.comparison, "worker": [table.annotators[a] for a in table.annotator], "label": table.winner}
    )
    theirs = DawidSkene(n_iter=30, tol=-np.inf).fit(frame)
    assert (theirs.labels_.sort_index().to_numpy() == ours.labels).all()
    their_accuracy = [
        sum(theirs.priors_[c] * theirs.errors_.loc[name].loc[c, c] for c in (0, 1)) for name in table.annotators
    ]
    assert np.argsort(their_accuracy).tolist() == np.argsort(ours.accuracy).tolist()
    assert np.allclose(their_accuracy, ours.accuracy, atol=1e-9)
    assert np.allclose(theirs.probas_.sort_index().to_numpy(), ours.posteriors, atol=1e-9)


def test_gradients_are_right() -> None:
    rng = np.random.default_rng(0)
    table = bare_table(
        annotator=rng.integers(0, 3, 40).tolist(),
        left=rng.integers(0, 5, 40).tolist(),
        right=((rng.integers(0, 4, 40) + 1 + rng.integers(0, 5, 40)) % 5).tolist(),
        chose_left=(rng.random(40) < 0.6).tolist(),
        items=5,
    )
    point = rng.normal(size=5 + 6)
    for objective, args in (
        (noisy_bt_negative_log_posterior, (table, 0.5)),
        (position_bt_negative_log_posterior, (table, 0.5, 1.0, 0.25)),
    ):
        error = check_grad(
            lambda x, f=objective, a=args: f(x, *a)[0], lambda x, f=objective, a=args: f(x, *a)[1], point
        )
        assert error < 1e-4


def skill_panel(seed: int = 0) -> tuple[PairTable, np.ndarray, np.ndarray]:
    """12 items, 8 annotators whose true skills fall from 0.95 to 0; 150 judgments each."""
    rng = np.random.default_rng(seed)
    quality = np.linspace(-2, 2, 12)
    skills = np.array([0.95, 0.9, 0.85, 0.7, 0.5, 0.3, 0.1, 0.0])
    annotator, left, right, chose_left = [], [], [], []
    for index, skill in enumerate(skills):
        for _ in range(150):
            i, j = rng.choice(12, 2, replace=False)
            informed = rng.random() < skill
            chose_left.append(bool(rng.random() < (expit(quality[i] - quality[j]) if informed else 0.5)))
            annotator.append(index)
            left.append(int(i))
            right.append(int(j))
    return bare_table(annotator, left, right, chose_left, 12), quality, skills


def test_noisy_bt_likelihood_is_crowd_kits_and_fits_better() -> None:
    table, quality, skills = skill_panel()
    ours = noisy_bradley_terry(table, score_prior_std=100.0)
    assert spearmanr(ours.scores, quality).statistic > 0.95
    assert spearmanr(ours.skill, skills).statistic > 0.9

    items = [f"i{k:02d}" for k in range(12)]
    frame = pd.DataFrame(
        {
            "worker": [table.annotators[a] for a in table.annotator],
            "left": [items[i] for i in table.left_item],
            "right": [items[i] for i in table.right_item],
        }
    )
    frame["label"] = np.where(table.chose_left, frame["left"], frame["right"])
    theirs = NoisyBradleyTerry(n_iter=1000).fit(frame)
    # Same labels: both order the items as the truth does, to the last swap of neighbours.
    their_scores = theirs.scores_.reindex(items).to_numpy()
    assert spearmanr(their_scores, quality).statistic > 0.95

    # crowd-kit's own log-likelihood (x = [anchor, logit scores, biases q, skills gamma]) at both fits.
    def crowd_kit_negative_log_likelihood(scores: np.ndarray, bias_logit: np.ndarray, skill_logit: np.ndarray) -> float:
        data = np.stack(
            [
                table.left_item + 1,
                table.right_item + 1,
                np.where(table.chose_left, table.left_item, table.right_item) + 1,
            ],
            1,
        )
        x = np.concatenate([[0.0], scores, bias_logit, skill_logit])
        return NoisyBradleyTerry._compute_log_likelihood(x, data, table.annotator, 12, len(table.annotators), 0.0)

    ours_value = crowd_kit_negative_log_likelihood(ours.scores, ours.bias_logit, ours.skill_logit)
    our_value, _ = noisy_bt_negative_log_posterior(
        np.concatenate([ours.scores, ours.bias_logit, ours.skill_logit]), table, 0.0
    )
    assert ours_value == pytest.approx(our_value, rel=1e-9)  # one model, one likelihood
    names = table.annotators
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    their_value = crowd_kit_negative_log_likelihood(
        logit(np.clip(their_scores, 1e-9, 1 - 1e-9)),
        logit(np.clip(theirs.biases_.reindex(names).to_numpy(), 1e-9, 1 - 1e-9)),
        logit(np.clip(theirs.skills_.reindex(names).to_numpy(), 1e-9, 1 - 1e-9)),
    )
    # crowd-kit 1.4.2 assigns rather than sums the workers' gradient terms, so its L-BFGS stops short:
    # our maximum is higher by its own likelihood, and its skills do not follow the true order.
    assert ours_value < their_value


def test_position_bt_finds_left_leaners() -> None:
    panel = simulate_panel(
        make_panel_annotators(20, clickers=0.2, left_leaners=0.3, seed=1), seed=1, judgments_per_annotator=80
    )
    table = pair_table(panel.judgments)
    fit = position_bradley_terry(table)
    kind = {annotator.name: annotator.behaviour for annotator in panel.annotators}
    offsets = {
        b: [fit.offset[i] for i, n in enumerate(table.annotators) if kind[n] == b] for b in ("honest", "left_leaner")
    }
    skills = {b: [fit.skill[i] for i, n in enumerate(table.annotators) if kind[n] == b] for b in ("honest", "clicker")}
    assert np.mean(offsets["left_leaner"]) > 0.7 > abs(np.mean(offsets["honest"]))
    assert max(skills["clicker"]) < min(skills["honest"])


def test_logistic_fit_recovers_coefficients_and_handles_fixed_part() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=4000)
    y = (rng.random(4000) < expit(0.5 + 2.0 * x)).astype(float)
    coefficients, _ = logistic_fit(np.stack([np.ones_like(x), x], 1), y)
    assert coefficients == pytest.approx([0.5, 2.0], abs=0.15)
    intercept, _ = logistic_fit(np.ones((4000, 1)), y, fixed_logit=2.0 * x)
    assert intercept[0] == pytest.approx(0.5, abs=0.15)


def test_benjamini_hochberg_by_hand() -> None:
    # sorted p: .01 <= .0125 yes; .03 <= .025 no; .04 <= .0375 no; .2 <= .05 no -> only the first
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.2], 0.05) == [True, False, False, False]
    # step-up: the largest k with p_(k) <= k q / m rejects all smaller ones too
    assert benjamini_hochberg([0.01, 0.02, 0.03, 0.04], 0.05) == [True, True, True, True]
    assert benjamini_hochberg([0.3, 0.02, 0.9], 0.05) == [False, False, False]
    assert benjamini_hochberg([], 0.05) == []


def test_adaptive_benjamini_hochberg_by_hand() -> None:
    p_values = [0.005, 0.012, 0.021, 0.028, 0.045, 0.3, 0.35, 0.4, 0.45, 0.7]
    # plain at 0.05: thresholds 0.005 k; 0.005 passes, 0.012 > 0.010, and nothing later passes
    assert benjamini_hochberg(p_values, 0.05) == [True] + [False] * 9
    # one p-value above 0.5: true-null share (1 + 1) / (0.5 * 10) = 0.4, so the rate is 0.125:
    # thresholds 0.0125 k pass the first five (0.045 <= 0.0625), not 0.3 > 0.075
    assert adaptive_benjamini_hochberg(p_values, 0.05) == [True] * 5 + [False] * 5
    # mostly large p-values: the share is capped at 1 and it is the plain procedure
    mostly_null = [0.001, 0.6, 0.7, 0.8, 0.9, 0.95]
    assert adaptive_benjamini_hochberg(mostly_null, 0.05) == benjamini_hochberg(mostly_null, 0.05)
    assert adaptive_benjamini_hochberg([], 0.05) == []


def test_side_preference_acts_on_the_guesses_only() -> None:
    honest_left = np.array([0.5, 0.9, 0.1, 1.0])
    # guesses: 2 min(p, 1 - p) -> 1 on a tie, 0.2 either way at 0.9 / 0.1, none when certain
    assert unsure_share(honest_left) == pytest.approx([1.0, 0.2, 0.2, 0.0])
    # 80% left when unsure: 0.5 + 0.3 * 1; 0.9 + 0.3 * 0.2; 0.1 + 0.3 * 0.2; a sure pick stays
    assert side_preference_left_probability(honest_left, 0.3) == pytest.approx([0.8, 0.96, 0.16, 1.0])


def test_side_preference_gradient_and_fit_on_ties() -> None:
    rng = np.random.default_rng(0)
    margin = rng.normal(0.0, 2.0, 60)
    chose_left = rng.random(60) < 0.6
    for point in ([1.0, 0.2], [0.4, -0.3], [2.0, 0.0]):
        error = check_grad(
            lambda x: side_preference_negative_log_likelihood(x, margin, chose_left)[0],
            lambda x: side_preference_negative_log_likelihood(x, margin, chose_left)[1],
            np.array(point),
        )
        assert error < 1e-4
    # On exact ties every judgment is a guess: 8 of 10 left gives side preference 0.3, and the
    # likelihood ratio is the binomial one, 2 (8 ln(0.8 / 0.5) + 2 ln(0.2 / 0.5)) = 3.855.
    ties = np.zeros(10)
    picks = np.array([True] * 8 + [False] * 2)
    free = fit_side_preference(ties, picks)
    none = fit_side_preference(ties, picks, side_preference=0.0)
    assert free.side_preference == pytest.approx(0.3, abs=1e-5)
    assert 2 * (free.log_likelihood - none.log_likelihood) == pytest.approx(3.8549, abs=1e-3)


def test_side_evidence_by_hand() -> None:
    honest_left = np.array([0.5, 0.5, 0.2, 0.2, 0.8, 0.8])
    picks = np.array([True, False, True, False, True, False])
    # a tie counts 1 for the side picked; a pick against the odds counts 1; a pick with them counts
    # P(less likely) / P(more likely) = 0.2 / 0.8
    assert side_evidence(honest_left, picks) == pytest.approx([1.0, -1.0, 1.0, -0.25, 0.25, -1.0])


def test_sign_flip_test_by_hand() -> None:
    # three equal sizes: of the 8 equally likely sign patterns, sums 3, 1, 1, 1, -1, -1, -1, -3
    left_p, right_p, standardised = sign_flip_test(np.array([1.0, 1.0, -1.0]))
    assert (left_p, right_p) == (pytest.approx(4 / 8), pytest.approx(7 / 8))
    assert standardised == pytest.approx(1 / np.sqrt(3))
    # sizes 1 and 0.5: sums 1.5, 0.5, -0.5, -1.5; the largest was observed
    assert sign_flip_test(np.array([1.0, 0.5]))[:2] == (pytest.approx(0.25), pytest.approx(1.0))
    # equal sizes make it the sign test: 15 of 20 left
    left_p, right_p, _ = sign_flip_test(np.array([1.0] * 15 + [-1.0] * 5))
    assert left_p == pytest.approx(binomtest(15, 20, 0.5, alternative="greater").pvalue)
    assert right_p == pytest.approx(binomtest(15, 20, 0.5, alternative="less").pvalue)
    assert sign_flip_test(np.zeros(4)) == (1.0, 1.0, 0.0)


def test_sign_flip_test_holds_its_level_under_random_signs() -> None:
    rng = np.random.default_rng(0)
    left_p_values = []
    for _ in range(2000):
        sizes = rng.uniform(0.0, 1.0, 30)
        left_p_values.append(sign_flip_test(sizes * rng.choice([-1.0, 1.0], 30))[0])
    rejected = np.asarray(left_p_values)
    for level in (0.01, 0.05, 0.2):
        # exact: at most the level, up to the simulation's error (2000 draws: 3 standard errors)
        assert (rejected <= level).mean() <= level + 3 * np.sqrt(level * (1 - level) / 2000)
    assert (rejected <= 0.2).mean() > 0.15  # and not far below it


def side_test(name: str, side_z: float) -> AnnotatorTest:
    return AnnotatorTest(
        annotator=name,
        judgments=50,
        skill=1.0,
        left_when_unsure=0.5,
        side_z=side_z,
        left_p_value=float(norm.sf(side_z)),
        right_p_value=float(norm.cdf(side_z)),
        left_share=0.5,
        low_skill_p_value=1.0,
        reference_skill=1.0,
    )


def test_side_weighted_p_values_by_hand() -> None:
    tests = [side_test("a", 2.0), side_test("b", 2.0), side_test("c", 0.0), side_test("d", -1.0)]
    weighted = side_weighted_p_values(tests, max_weight=0.9)
    # a: the others pool to (2 + 0 - 1) / sqrt(3) = 0.577, so the left gets Phi(0.577) = 0.718 of
    # the level: P(Z >= 2) / 0.718 = 0.02275 / 0.718
    assert weighted[0] == pytest.approx(0.02275 / 0.7181, rel=1e-3)
    # c: the others pool to 3 / sqrt(3) = 1.73, Phi = 0.958, capped at 0.9: min(0.5 / 0.9, 0.5 / 0.1)
    assert weighted[2] == pytest.approx(0.5 / 0.9)
    # d leans right against a left panel: min(P(Z >= -1) / 0.9, P(Z <= -1) / 0.1) = 0.8413 / 0.9
    assert weighted[3] == pytest.approx(0.8413 / 0.9, rel=1e-3)
    # no weight to either side is the two-sided test
    assert side_weighted_p_values(tests, max_weight=0.5)[0] == pytest.approx(2 * 0.02275, rel=1e-3)
    # a right-leaning panel gets the mirror image: either side is found
    mirrored = [side_test(test.annotator, -test.side_z) for test in tests]
    assert side_weighted_p_values(mirrored, max_weight=0.9) == pytest.approx(weighted)
