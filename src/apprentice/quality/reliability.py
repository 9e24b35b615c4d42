"""Annotator reliability: latent-label models fitted jointly with each annotator's accuracy and side preference.

- `dawid_skene`: Dawid & Skene (1979), EM over a confusion matrix per annotator and the true class of
  each item (for pairs: which canonical position is better). Initialised by majority vote as crowd-kit does.
- `noisy_bradley_terry`: a Bradley-Terry score per response and, per annotator, a skill gamma and a
  left preference q (Bugakova et al.; crowd-kit's NoisyBradleyTerry): an annotator judges by the
  scores with probability sigmoid(gamma) and otherwise picks the left response with probability
  sigmoid(q):  P(left) = sig(gamma) sig(s_left - s_right) + (1 - sig(gamma)) sig(q).
  Fitted by L-BFGS with an analytic gradient and a Gaussian prior on the scores (without it, a pair
  everyone agrees on pushes its scores to infinity).
- `position_bradley_terry`: the same scores with, per annotator, a sharpness (skill) and a log-odds
  offset for the left response: P(left) = sig(skill (s_left - s_right) + offset). Bradley-Terry with a
  "home advantage" per annotator; the scores the per-annotator tests start from, and the offsets
  that the correction undoes.
- `annotator_tests`: tests per annotator against scores refitted without them. Does the annotator
  favour a side when unsure (position bias: P(left) = P_honest(left) + b * the share of guesses,
  `side_preference_left_probability`), tested exactly under the random display order
  (`sign_flip_test`), with more power towards the side the rest of the panel favours
  (`side_weighted_p_values`); is the skill as high as the panel's typical (random clicking, a
  likelihood-ratio test).

Written here instead of calling crowd-kit because crowd-kit pulls scikit-learn and nltk at import, its
NoisyBT has no prior on the scores, and we need per-judgment posteriors and tests it does not give;
the tests compare both models with crowd-kit on the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import chi2, norm

from apprentice.quality.pairs import PairTable

_EPS = 1e-10  # floor for probabilities, as crowd-kit's Dawid-Skene


# -- Dawid-Skene ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DawidSkeneResult:
    classes: list[int]
    posteriors: np.ndarray  # (items, classes): P(true class | all labels)
    priors: np.ndarray  # (classes,)
    confusions: np.ndarray  # (annotators, observed class, true class): P(observed | true)
    iterations: int

    @property
    def labels(self) -> np.ndarray:
        """The most probable class of each item (as an index into `classes`)."""
        return np.asarray(self.posteriors.argmax(axis=1))

    @property
    def accuracy(self) -> np.ndarray:
        """Each annotator's probability of giving the true class: sum_c prior_c P(c | c)."""
        diagonal = np.diagonal(self.confusions, axis1=1, axis2=2)
        return np.asarray(diagonal @ self.priors)


def _majority_posteriors(item: np.ndarray, label: np.ndarray, items: int, classes: int) -> np.ndarray:
    votes = np.zeros((items, classes))
    np.add.at(votes, (item, label), 1.0)
    return votes / np.clip(votes.sum(axis=1, keepdims=True), 1.0, None)  # vote shares, as crowd-kit's MajorityVote


def _confusions(
    item: np.ndarray, annotator: np.ndarray, label: np.ndarray, posteriors: np.ndarray, annotators: int
) -> np.ndarray:
    classes = posteriors.shape[1]
    counts = np.zeros((annotators, classes, classes))
    np.add.at(counts, (annotator, label), posteriors[item])
    counts = np.clip(counts, _EPS, None)
    return counts / counts.sum(axis=1, keepdims=True)


def dawid_skene(
    item: np.ndarray,
    annotator: np.ndarray,
    label: np.ndarray,
    *,
    items: int | None = None,
    annotators: int | None = None,
    classes: int | None = None,
    max_iterations: int = 100,
    tolerance: float = 1e-5,
) -> DawidSkeneResult:
    """Dawid-Skene EM over (item, annotator, label) index arrays; labels are class indices 0..K-1.

    E-step: P(z_i = c) prop. to prior_c prod_j e_j[label_ij, c]. M-step: e_j[k, c] prop. to the expected
    count of annotator j saying k when the truth is c; priors the mean posterior. Stops when the
    evidence lower bound per label improves by less than `tolerance`.
    """
    items = int(item.max()) + 1 if items is None else items
    annotators = int(annotator.max()) + 1 if annotators is None else annotators
    classes = int(label.max()) + 1 if classes is None else classes
    posteriors = _majority_posteriors(item, label, items, classes)
    priors = posteriors.mean(axis=0)
    confusions = _confusions(item, annotator, label, posteriors, annotators)
    previous = -np.inf
    iteration = 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - the count is reported
        log_terms = np.zeros((items, classes))
        np.add.at(log_terms, item, np.log(confusions[annotator, label]))
        log_joint = np.log(np.clip(priors, _EPS, None)) + log_terms
        log_joint -= log_joint.max(axis=1, keepdims=True)
        posteriors = np.exp(log_joint)
        posteriors /= posteriors.sum(axis=1, keepdims=True)
        priors = posteriors.mean(axis=0)
        confusions = _confusions(item, annotator, label, posteriors, annotators)
        bound = _evidence_lower_bound(item, annotator, label, posteriors, priors, confusions) / len(item)
        if bound - previous < tolerance:
            break
        previous = bound
    return DawidSkeneResult(list(range(classes)), posteriors, priors, confusions, iteration)


def _evidence_lower_bound(
    item: np.ndarray,
    annotator: np.ndarray,
    label: np.ndarray,
    posteriors: np.ndarray,
    priors: np.ndarray,
    confusions: np.ndarray,
) -> float:
    expected = float((posteriors[item] * np.log(confusions[annotator, label])).sum())
    expected += float((posteriors * np.log(np.clip(priors, _EPS, None))).sum())
    entropy = -float((posteriors * np.log(np.clip(posteriors, _EPS, None))).sum())
    return expected + entropy


def dawid_skene_pairs(table: PairTable, **options: float) -> DawidSkeneResult:
    """Dawid-Skene on decisive pair judgments: items are comparisons, classes the canonical winner."""
    return dawid_skene(
        table.comparison,
        table.annotator,
        table.winner,
        items=len(table.comparisons),
        annotators=len(table.annotators),
        classes=2,
        **options,  # type: ignore[arg-type]
    )


# -- Noisy Bradley-Terry --------------------------------------------------------------------------


@dataclass(frozen=True)
class NoisyBTResult:
    scores: np.ndarray  # (items,) Bradley-Terry score of each response
    skill_logit: np.ndarray  # (annotators,) gamma
    bias_logit: np.ndarray  # (annotators,) q
    log_likelihood: float
    converged: bool

    @property
    def skill(self) -> np.ndarray:
        """P(the annotator judges by quality rather than guessing)."""
        return np.asarray(expit(self.skill_logit))

    @property
    def left_bias(self) -> np.ndarray:
        """P(left) when guessing: 0.5 is no position preference."""
        return np.asarray(expit(self.bias_logit))


def _judgment_terms(
    margin: np.ndarray, chose_left: np.ndarray, skill_logit: np.ndarray, bias_logit: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each judgment: P(observed choice), sig(gamma), sig(y * margin), sig(y * q), with y = +1 for left."""
    sign = np.where(chose_left, 1.0, -1.0)
    informed = expit(skill_logit)
    by_quality = expit(sign * margin)
    by_side = expit(sign * bias_logit)
    probability = informed * by_quality + (1 - informed) * by_side
    return probability, informed, by_quality, by_side


def noisy_bt_negative_log_posterior(
    parameters: np.ndarray, table: PairTable, score_precision: float
) -> tuple[float, np.ndarray]:
    """-log P(choices | scores, gamma, q) + score_precision/2 * |scores|^2, and its gradient."""
    items, annotators = len(table.items), len(table.annotators)
    scores = parameters[:items]
    bias_logit = parameters[items : items + annotators]
    skill_logit = parameters[items + annotators :]
    margin = scores[table.left_item] - scores[table.right_item]
    gamma, q = skill_logit[table.annotator], bias_logit[table.annotator]
    probability, informed, by_quality, by_side = _judgment_terms(margin, table.chose_left, gamma, q)
    probability = np.clip(probability, _EPS, None)
    sign = np.where(table.chose_left, 1.0, -1.0)
    # d(-log P)/d(parameter) = -(dP/d(parameter)) / P
    d_margin = -informed * by_quality * (1 - by_quality) * sign / probability
    d_bias = -(1 - informed) * by_side * (1 - by_side) * sign / probability
    d_skill = -informed * (1 - informed) * (by_quality - by_side) / probability
    gradient = np.zeros_like(parameters)
    gradient[:items] = np.bincount(table.left_item, d_margin, items) - np.bincount(table.right_item, d_margin, items)
    gradient[:items] += score_precision * scores
    gradient[items : items + annotators] = np.bincount(table.annotator, d_bias, annotators)
    gradient[items + annotators :] = np.bincount(table.annotator, d_skill, annotators)
    value = -float(np.log(probability).sum()) + 0.5 * score_precision * float(scores @ scores)
    return value, gradient


def noisy_bradley_terry(
    table: PairTable,
    *,
    score_prior_std: float = 1.5,
    initial_skill: float = 0.8,
    max_iterations: int = 500,
) -> NoisyBTResult:
    """Fit scores, skills and left preferences jointly by maximum a posteriori (scores ~ N(0, std^2))."""
    items, annotators = len(table.items), len(table.annotators)
    if len(table) == 0:
        empty = np.zeros(0)
        return NoisyBTResult(np.zeros(items), empty, empty, 0.0, True)
    start = np.concatenate(
        [np.zeros(items), np.zeros(annotators), np.full(annotators, np.log(initial_skill / (1 - initial_skill)))]
    )
    # Bounds keep a skill or preference that the data cannot pin down (an annotator who is never
    # unsure has no guesses to show a side preference) from wandering to infinity.
    bounds = [(None, None)] * items + [(-8.0, 8.0)] * (2 * annotators)
    fit = minimize(
        noisy_bt_negative_log_posterior,
        start,
        args=(table, 1.0 / score_prior_std**2),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": max_iterations},
    )
    parameters = fit.x
    scores = parameters[:items]
    margin = scores[table.left_item] - scores[table.right_item]
    bias_logit = parameters[items : items + annotators]
    skill_logit = parameters[items + annotators :]
    probability, *_ = _judgment_terms(
        margin, table.chose_left, skill_logit[table.annotator], bias_logit[table.annotator]
    )
    return NoisyBTResult(scores, skill_logit, bias_logit, float(np.log(probability).sum()), bool(fit.success))


def informed_posterior(table: PairTable, fit: NoisyBTResult) -> np.ndarray:
    """Per judgment: P(it was judged on quality, not guessed | the choice, the fit). A weight for training."""
    margin = fit.scores[table.left_item] - fit.scores[table.right_item]
    probability, informed, by_quality, _ = _judgment_terms(
        margin, table.chose_left, fit.skill_logit[table.annotator], fit.bias_logit[table.annotator]
    )
    return np.asarray(informed * by_quality / np.clip(probability, _EPS, None))


def canonical_win_probability(table: PairTable, fit: NoisyBTResult) -> dict[int, float]:
    """Aggregated label per comparison: P(canonical position 0 is better) = sig(s_0 - s_1)."""
    result: dict[int, float] = {}
    for row, judgment in enumerate(table.judgments):
        left_is_zero = table.left_position[row] == 0
        zero, one = (
            (table.left_item[row], table.right_item[row])
            if left_is_zero
            else (table.right_item[row], table.left_item[row])
        )
        result[judgment.comparison_id] = float(expit(fit.scores[zero] - fit.scores[one]))
    return result


def benjamini_hochberg(p_values: Sequence[float], rate: float) -> list[bool]:
    """Which hypotheses to reject with the false discovery rate held at `rate` (Benjamini & Hochberg 1995)."""
    count = len(p_values)
    if count == 0:
        return []
    order = np.argsort(p_values)
    thresholds = rate * np.arange(1, count + 1) / count
    passing = np.nonzero(np.asarray(p_values)[order] <= thresholds)[0]
    rejected = np.zeros(count, dtype=bool)
    if len(passing):
        rejected[order[: passing.max() + 1]] = True
    return rejected.tolist()


def simes_p_value(p_values: Sequence[float]) -> float:
    """Simes' p-value for the global null "every hypothesis is true": min over k of m p_(k) / k (Simes 1986).

    At level alpha it rejects exactly when Benjamini-Hochberg at alpha rejects anything; under
    independence (and positive regression dependence) P(p <= alpha | all true) <= alpha. Used as the gate
    of a closed test: hypotheses are rejected one by one only where the global null is rejected first.
    1.0 when there are none.
    """
    values = np.sort(np.asarray(p_values, dtype=float))
    if len(values) == 0:
        return 1.0
    return float(min(1.0, (len(values) * values / np.arange(1, len(values) + 1)).min()))


def adaptive_benjamini_hochberg(p_values: Sequence[float], rate: float, *, null_cutoff: float = 0.5) -> list[bool]:
    """Benjamini-Hochberg at `rate` / (estimated share of true nulls), rejecting only p <= `null_cutoff`.

    Benjamini-Hochberg holds the false discovery rate at `rate` times the share of hypotheses that are
    true, so where many are false (a panel with many careless annotators) it is stricter than it
    need be. The share is estimated from the p-values above `null_cutoff`, which are mostly true nulls:
    (1 + their count) / ((1 - null_cutoff) * count), at most 1 (Storey, Taylor & Siegmund 2004, whose
    theorem 3 keeps the rate under independence).
    """
    count = len(p_values)
    if count == 0:
        return []
    values = np.asarray(p_values, dtype=float)
    null_share = min(1.0, (1 + int((values > null_cutoff).sum())) / ((1 - null_cutoff) * count))
    rejected = benjamini_hochberg(p_values, rate / null_share)
    return [bool(reject and value <= null_cutoff) for reject, value in zip(rejected, values, strict=True)]


# -- Bradley-Terry with per-annotator skill and position bias ------------------------------------


@dataclass(frozen=True)
class PositionBTResult:
    """P(annotator a picks the left response) = sig(skill_a * (s_left - s_right) + offset_a)."""

    scores: np.ndarray  # (items,)
    skill: np.ndarray  # (annotators,) 1 is the panel's typical sharpness, 0 is blind to quality
    offset: np.ndarray  # (annotators,) log-odds added to the left response: position bias
    converged: bool

    def left_probability_when_even(self) -> np.ndarray:
        """P(left) for two equally good responses: the position bias on the probability scale."""
        return np.asarray(expit(self.offset))


def position_bt_negative_log_posterior(
    parameters: np.ndarray, table: PairTable, score_precision: float, skill_precision: float, offset_precision: float
) -> tuple[float, np.ndarray]:
    """-log likelihood + Gaussian priors (scores ~ N(0, .), skill ~ N(1, .), offset ~ N(0, .)), and the gradient."""
    items, annotators = len(table.items), len(table.annotators)
    scores = parameters[:items]
    skill = parameters[items : items + annotators]
    offset = parameters[items + annotators :]
    margin = scores[table.left_item] - scores[table.right_item]
    logit = skill[table.annotator] * margin + offset[table.annotator]
    sign = np.where(table.chose_left, 1.0, -1.0)
    # -log sig(sign * logit) and its derivative -sign * sig(-sign * logit)
    value = float(np.logaddexp(0.0, -sign * logit).sum())
    d_logit = -sign * expit(-sign * logit)
    d_margin = d_logit * skill[table.annotator]
    gradient = np.zeros_like(parameters)
    gradient[:items] = np.bincount(table.left_item, d_margin, items) - np.bincount(table.right_item, d_margin, items)
    gradient[items : items + annotators] = np.bincount(table.annotator, d_logit * margin, annotators)
    gradient[items + annotators :] = np.bincount(table.annotator, d_logit, annotators)
    value += 0.5 * score_precision * float(scores @ scores)
    value += 0.5 * skill_precision * float((skill - 1) @ (skill - 1))
    value += 0.5 * offset_precision * float(offset @ offset)
    gradient[:items] += score_precision * scores
    gradient[items : items + annotators] += skill_precision * (skill - 1)
    gradient[items + annotators :] += offset_precision * offset
    return value, gradient


def position_bradley_terry(
    table: PairTable,
    *,
    score_prior_std: float = 1.5,
    skill_prior_std: float = 1.0,
    offset_prior_std: float = 2.0,
    max_iterations: int = 1000,
) -> PositionBTResult:
    """Fit response scores with each annotator's skill (a sharpness) and position offset, by MAP (L-BFGS).

    The skill prior centred on 1 fixes the scale shared by scores and skills; skills are kept >= 0
    (an annotator who reliably prefers the worse response is a data error, not a skill).
    """
    items, annotators = len(table.items), len(table.annotators)
    start = np.concatenate([np.zeros(items), np.ones(annotators), np.zeros(annotators)])
    bounds = [(None, None)] * items + [(0.0, 10.0)] * annotators + [(-10.0, 10.0)] * annotators
    fit = minimize(
        position_bt_negative_log_posterior,
        start,
        args=(table, 1 / score_prior_std**2, 1 / skill_prior_std**2, 1 / offset_prior_std**2),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": max_iterations},
    )
    parameters = fit.x
    return PositionBTResult(
        parameters[:items],
        parameters[items : items + annotators],
        parameters[items + annotators :],
        bool(fit.success),
    )


def logistic_fit(
    features: np.ndarray,
    outcome: np.ndarray,
    *,
    fixed_logit: np.ndarray | None = None,
    ridge: float = 1e-6,
    iterations: int = 100,
) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method: P(outcome) = sig(fixed_logit + features @ b).

    Returns (b, log-likelihood). `ridge` (a Gaussian prior's precision) keeps separable data finite;
    the log-likelihood returned excludes it, so likelihood ratios stay ratios of likelihoods.
    """
    coefficients = np.zeros(features.shape[1])
    fixed = np.zeros(len(outcome)) if fixed_logit is None else fixed_logit
    for _ in range(iterations):
        probability = expit(fixed + features @ coefficients)
        gradient = features.T @ (outcome - probability) - ridge * coefficients
        hessian = (features * (probability * (1 - probability))[:, None]).T @ features + ridge * np.eye(
            len(coefficients)
        )
        step = np.linalg.solve(hessian, gradient)
        coefficients = coefficients + step
        if np.abs(step).max() < 1e-9:
            break
    logit = fixed + features @ coefficients
    sign = np.where(outcome > 0.5, 1.0, -1.0)
    return coefficients, -float(np.logaddexp(0.0, -sign * logit).sum())


def _scores_objective(
    scores: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    sign: np.ndarray,
    skill: np.ndarray,
    offset: np.ndarray,
    score_precision: float,
) -> tuple[float, np.ndarray]:
    logit = skill * (scores[left] - scores[right]) + offset
    d_margin = -sign * expit(-sign * logit) * skill
    items = len(scores)
    gradient = np.bincount(left, d_margin, items) - np.bincount(right, d_margin, items) + score_precision * scores
    value = float(np.logaddexp(0.0, -sign * logit).sum()) + 0.5 * score_precision * float(scores @ scores)
    return value, gradient


def margins_without(
    table: PairTable, fit: PositionBTResult, annotator: int, *, score_prior_std: float = 1.5
) -> np.ndarray:
    """Margins s_left - s_right of one annotator's judgments, with the scores refitted from everyone else.

    Testing an annotator against scores their own choices helped set would make them look more
    consistent, and any side preference more significant, than it is.
    """
    others = table.annotator != annotator
    sign = np.where(table.chose_left[others], 1.0, -1.0)
    refit = minimize(
        _scores_objective,
        fit.scores,
        args=(
            table.left_item[others],
            table.right_item[others],
            sign,
            fit.skill[table.annotator[others]],
            fit.offset[table.annotator[others]],
            1 / score_prior_std**2,
        ),
        jac=True,
        method="L-BFGS-B",
    )
    mine = ~others
    return np.asarray(refit.x[table.left_item[mine]] - refit.x[table.right_item[mine]])


# -- per-annotator tests --------------------------------------------------------------------------

_MAX_SKILL = 10.0
SKILL_PRIOR_STD = 1.0  # as `position_bradley_terry`'s: 0 and 3 both lie within two standard deviations
_MAX_SIDE_PREFERENCE = 0.499  # at 0.5 one choice of the other side on a pair thought unsure would be impossible


def unsure_share(honest_left: np.ndarray) -> np.ndarray:
    """The share of judgments an honest annotator makes unsure, from their P(left): 2 min(P(left), P(right)).

    Bradley-Terry read as "sure or guessing": when sure, the annotator picks the better response; when
    unsure, they guess, half the time each side. P(better) = sig(skill |margin|) then leaves the less
    likely choice made by guesses alone, so the guesses are twice that.
    """
    return np.asarray(2 * np.minimum(honest_left, 1 - honest_left))


def side_preference_left_probability(honest_left: np.ndarray, side_preference: float) -> np.ndarray:
    """P(left) for an annotator who, when unsure, picks the left response with probability 0.5 + side_preference.

    A preference for a side acts only on the guesses: a pair the annotator is sure of gets the better
    response wherever it is shown. So P(left) = P_honest(left) + side_preference * unsure_share.
    """
    return np.asarray(honest_left + side_preference * unsure_share(honest_left))


def side_preference_negative_log_likelihood(
    parameters: np.ndarray, margin: np.ndarray, chose_left: np.ndarray
) -> tuple[float, np.ndarray]:
    """-log P(choices | skill, side preference) with P_honest(left) = sig(skill * margin), and its gradient."""
    skill, side_preference = float(parameters[0]), float(parameters[1])
    honest_left = expit(skill * margin)
    left = np.clip(side_preference_left_probability(honest_left, side_preference), _EPS, 1 - _EPS)
    d_honest_d_skill = margin * honest_left * (1 - honest_left)
    # the unsure share grows as P(left) moves towards 0.5, at twice its pace
    d_unsure_d_skill = np.where(honest_left < 0.5, 2.0, -2.0) * d_honest_d_skill
    d_value_d_left = np.where(chose_left, -1 / left, 1 / (1 - left))
    gradient = np.array(
        [
            float(d_value_d_left @ (d_honest_d_skill + side_preference * d_unsure_d_skill)),
            float(d_value_d_left @ unsure_share(honest_left)),
        ]
    )
    value = -float(np.where(chose_left, np.log(left), np.log(1 - left)).sum())
    return value, gradient


@dataclass(frozen=True)
class SidePreferenceFit:
    skill: float
    side_preference: float  # P(left when unsure) - 0.5
    log_likelihood: float


def fit_side_preference(
    margin: np.ndarray,
    chose_left: np.ndarray,
    *,
    skill: float | None = None,
    side_preference: float | None = None,
) -> SidePreferenceFit:
    """One annotator's skill and side preference, either of them held fixed if given: maximum likelihood
    with a weak Gaussian prior on the skill, centred on the typical 1 (`SKILL_PRIOR_STD`).

    `margin` is s_left - s_right of each judgment as the other annotators see it (`margins_without`).
    Where the margins say little about the skill (a small panel: an annotator who shares no pair with the
    others, or agrees with everyone or no one) the likelihood is flat or runs to a bound, and the skill it
    gives is arbitrary, down to 1e-15; the prior keeps it near 1 there and moves it little where the
    judgments do tell. The log-likelihood returned leaves the prior out, so likelihood ratios stay ratios
    of likelihoods.
    """
    start = np.array([1.0 if skill is None else skill, 0.0 if side_preference is None else side_preference])
    side_bounds = (-_MAX_SIDE_PREFERENCE, _MAX_SIDE_PREFERENCE)
    bounds = [
        (0.0, _MAX_SKILL) if skill is None else (skill, skill),
        side_bounds if side_preference is None else (side_preference, side_preference),
    ]
    chose_left = np.asarray(chose_left, dtype=bool)
    if skill is not None and side_preference is not None:
        value, _ = side_preference_negative_log_likelihood(start, margin, chose_left)
        return SidePreferenceFit(skill, side_preference, -value)
    skill_precision = 0.0 if skill is not None else 1 / SKILL_PRIOR_STD**2

    def objective(parameters: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = side_preference_negative_log_likelihood(parameters, margin, chose_left)
        distance = parameters[0] - 1.0
        gradient = gradient + np.array([skill_precision * distance, 0.0])
        return value + 0.5 * skill_precision * float(distance**2), gradient

    fit = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds)
    value, _ = side_preference_negative_log_likelihood(fit.x, margin, chose_left)
    return SidePreferenceFit(float(fit.x[0]), float(fit.x[1]), -value)


def side_evidence(honest_left: np.ndarray, chose_left: np.ndarray) -> np.ndarray:
    """Per judgment, how much it speaks for a side preference: positive for a left pick, negative for a right one.

    This is half the score (d log P / d side_preference at none) of `side_preference_left_probability`:
    a pick of the response the honest model finds less likely counts 1 for its side, since only a guess
    makes it; a pick of the more likely one counts P(less likely) / P(more likely), large only where the
    call is close. On a near tie every pick counts about 1, against a clear consensus almost nothing.
    """
    honest_left = np.clip(honest_left, _EPS, 1 - _EPS)
    surprise = np.asarray(chose_left, dtype=float) - honest_left
    return np.asarray(unsure_share(honest_left) * surprise / (2 * honest_left * (1 - honest_left)))


def sign_flip_test(evidence: np.ndarray, *, max_units: int = 10_000) -> tuple[float, float, float]:
    """Exact randomization test of summed side evidence, from the random display order.

    With no side preference, showing a pair the other way round flips the sign of its evidence and
    changes nothing else (the margin changes sign, the pick changes side), and the order was drawn at
    random: given the sizes |e_i|, every sign pattern is equally likely. The null distribution of the sum
    is that of sum(+-|e_i|) with fair signs, counted exactly over the sizes rounded to a grid of at most
    `max_units` steps. Returns P(sum >= observed) (small for a left preference), P(sum <= observed)
    (small for a right preference), and the sum standardised to mean 0 and variance 1 under the null.
    """
    sizes = np.abs(np.asarray(evidence, dtype=float))
    if sizes.sum() == 0:
        return 1.0, 1.0, 0.0
    resolution = sizes.sum() / max_units
    units = np.rint(sizes / resolution).astype(int)
    # counts[k]: P(the left-signed units sum to k) when each judgment's sign is a fair coin
    counts = np.zeros(int(units.sum()) + 1)
    counts[0] = 1.0
    for unit in units[units > 0]:
        shifted = np.zeros_like(counts)
        shifted[unit:] = counts[:-unit]
        counts = 0.5 * (counts + shifted)
    observed = int(units[np.asarray(evidence) > 0].sum())
    standardised = (2 * observed - units.sum()) / np.sqrt(float(units @ units))
    return float(counts[observed:].sum()), float(counts[: observed + 1].sum()), float(standardised)


@dataclass(frozen=True)
class AnnotatorTest:
    annotator: str
    judgments: int
    skill: float  # sharpness against the others' scores (1 is typical, 0 is blind to quality)
    left_when_unsure: float  # P(left) on the pairs the annotator guesses: 0.5 is no side preference
    side_z: float  # standardised side evidence (`sign_flip_test`): positive for the left
    left_p_value: float  # H0: no side preference, against a left one (exact, this annotator alone)
    right_p_value: float  # the same against a right one
    left_share: float  # raw share of left choices
    low_skill_p_value: float  # H0: skill = skill_ratio * the panel's reference (one-sided: only lower counts)
    reference_skill: float

    @property
    def bias_p_value(self) -> float:
        """H0: no side preference, two-sided."""
        return min(1.0, 2 * min(self.left_p_value, self.right_p_value))


def annotator_tests(
    table: PairTable,
    fit: PositionBTResult,
    *,
    skill_ratio: float = 0.5,
    score_prior_std: float = 1.5,
) -> list[AnnotatorTest]:
    """Likelihood-ratio tests (chi-square, one degree of freedom) for each annotator.

    For annotator a, the margins come from scores refitted without a (`margins_without`); then a's
    choices are fitted by skill and side preference (`side_preference_left_probability`) three ways:
    both free (the estimates), no side preference, and skill fixed at `skill_ratio` times the panel's
    median skill (people differ in how sharply they judge; only an annotator clearly below that is
    judging near random). The side preference is tested where it can show, on the pairs the others
    find close: the evidence of each judgment (`side_evidence`, at the skill fitted without a side
    preference) is summed and tested exactly against the random display order (`sign_flip_test`).
    """
    fitted = []
    for index in range(len(table.annotators)):
        rows = table.annotator == index
        margin = margins_without(table, fit, index, score_prior_std=score_prior_std)
        chose_left = table.chose_left[rows]
        fitted.append((index, margin, chose_left, fit_side_preference(margin, chose_left)))
    reference = float(np.median([free.skill for *_, free in fitted])) if fitted else 1.0
    null_skill = skill_ratio * reference
    results = []
    for index, margin, chose_left, free in fitted:
        without_side = fit_side_preference(margin, chose_left, side_preference=0.0)
        at_reference = fit_side_preference(margin, chose_left, skill=null_skill)
        evidence = side_evidence(expit(without_side.skill * margin), chose_left)
        left_p, right_p, side_z = sign_flip_test(evidence)
        skill_p = float(chi2.sf(max(0.0, 2 * (free.log_likelihood - at_reference.log_likelihood)), 1))
        results.append(
            AnnotatorTest(
                annotator=table.annotators[index],
                judgments=len(chose_left),
                skill=free.skill,
                left_when_unsure=0.5 + free.side_preference,
                side_z=side_z,
                left_p_value=left_p,
                right_p_value=right_p,
                left_share=float(chose_left.mean()) if len(chose_left) else float("nan"),
                low_skill_p_value=skill_p / 2 if free.skill < null_skill else 1.0,
                reference_skill=reference,
            )
        )
    return results


def side_weighted_p_values(tests: Sequence[AnnotatorTest], *, max_weight: float = 0.9) -> list[float]:
    """Per annotator, a side-preference p-value that gives more of the test's level to the panel's side.

    People who favour a side mostly favour the same one, so the other annotators say which side to
    expect. For annotator a, the others' standardised side evidence is pooled (Stouffer: the sum over
    sqrt(count), N(0, 1) in a panel without side preference); the left side gets the share
    w = Phi(pooled) of the level, kept within [1 - max_weight, max_weight] so that a preference for
    the other side is still found when it is strong, and the p-value is
    min(left_p_value / w, right_p_value / (1 - w)). As w comes from the others, this stays a valid
    p-value for a whatever w is (p-value weighting, Genovese, Roeder & Wasserman 2006); with w = 0.5
    it is the two-sided p-value.
    """
    side_z = np.array([test.side_z for test in tests], dtype=float)
    if len(tests) < 2:
        return [test.bias_p_value for test in tests]
    pooled_others = (side_z.sum() - side_z) / np.sqrt(len(tests) - 1)
    left_weights = np.clip(norm.cdf(pooled_others), 1 - max_weight, max_weight)
    return [
        min(1.0, test.left_p_value / left_weight, test.right_p_value / (1 - left_weight))
        for test, left_weight in zip(tests, left_weights, strict=True)
    ]
