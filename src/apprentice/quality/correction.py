"""Correction fed into training: a weight per judgment and an aggregated label per comparison.

A judgment's weight is the product of:
- the annotator's reliability: skill / the panel's median skill, capped at 1 (a random clicker ~ 0);
- a position correction: P(choice | no side preference) / P(choice | the annotator's fitted preference),
  an importance weight under which a left-leaner's choices count as an unbiased annotator's would
  (left choices weigh less, right choices more);
- optionally (length control) the same ratio for length: P(choice | length term zeroed) /
  P(choice | fitted length slope), so that in the weighted data preference no longer moves with
  length, the weighting counterpart of AlpacaEval's length-controlled win rate;
- zero for annotators flagged as unreliable (near random, too fast, straight-lining, failing gold,
  inconsistent with themselves), when exclusion is asked for. A position-biased annotator is not
  excluded: their choices still carry what they saw, and the position weight takes the bias out.
Weights are scaled to mean 1 over the judgments kept. Ties, "both bad" and other kinds keep weight 1:
they give no preference pair to weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from apprentice.quality.bias import length_log_ratio
from apprentice.quality.flags import AnnotatorChecks
from apprentice.quality.pairs import PairTable, pair_table
from apprentice.quality.reliability import PositionBTResult, logistic_fit
from apprentice.store.quality_queries import QualityJudgment


@dataclass(frozen=True)
class CorrectionSettings:
    reliability: bool = True
    """Scale each annotator's judgments by their skill relative to the panel."""
    position: bool = True
    """Undo each annotator's fitted side preference by importance weighting."""
    exclude_flagged: bool = True
    """Give annotators flagged with one of `exclude_kinds` weight 0."""
    exclude_kinds: tuple[str, ...] = (
        "near_random",
        "too_fast",
        "straight_lining",
        "gold_accuracy",
        "self_inconsistent",
    )
    length_controlled: bool = False
    """Weight so that preference no longer moves with the length ratio of the two responses."""
    max_weight: float = 5.0
    """Cap on one judgment's weight before scaling, so no single judgment dominates."""


@dataclass
class Correction:
    weights: dict[int, float]  # judgment id -> training weight
    aggregated: dict[int, float]  # comparison id -> P(canonical position 0 is better)
    excluded_annotators: list[str]
    length_slope: float | None = None
    notes: list[str] = field(default_factory=list)


def position_importance(margin_logit: np.ndarray, offset: np.ndarray, chose_left: np.ndarray) -> np.ndarray:
    """P(choice | offset 0) / P(choice | offset): the weight that removes a side preference in expectation."""
    sign = np.where(chose_left, 1.0, -1.0)
    return np.asarray(expit(sign * margin_logit) / expit(sign * (margin_logit + offset)))


def length_importance(chose_a: np.ndarray, log_ratio: np.ndarray, intercept: float, slope: float) -> np.ndarray:
    """P(choice | length term zeroed) / P(choice | fitted length slope)."""
    sign = np.where(chose_a, 1.0, -1.0)
    return np.asarray(expit(sign * intercept) / expit(sign * (intercept + slope * log_ratio)))


def _reliability_factor(fit: PositionBTResult, table: PairTable) -> np.ndarray:
    reference = float(np.median(fit.skill)) if len(fit.skill) else 1.0
    if reference <= 0:
        return np.ones(len(table))
    return np.asarray(np.clip(fit.skill / reference, 0.0, 1.0)[table.annotator])


def correct(
    judgments: Sequence[QualityJudgment], checks: AnnotatorChecks, settings: CorrectionSettings | None = None
) -> Correction:
    """Weights for every judgment given, from the checks' fitted model and flags."""
    settings = settings or CorrectionSettings()
    weights = {judgment.judgment_id: 1.0 for judgment in judgments}
    table = pair_table(judgments)
    excluded = (
        sorted({flag.annotator for flag in checks.flags if flag.kind in settings.exclude_kinds})
        if settings.exclude_flagged
        else []
    )
    notes = []
    if excluded and all(judgment.annotator in excluded for judgment in judgments):
        notes.append("every annotator was flagged: nobody excluded (weights would leave nothing to train on)")
        excluded = []
    correction = Correction(weights=weights, aggregated={}, excluded_annotators=excluded, notes=notes)
    fit = checks.fit
    factor = np.ones(len(table))
    if fit is not None and len(table):
        margin = fit.scores[table.left_item] - fit.scores[table.right_item]
        skill = fit.skill[table.annotator]
        offset = fit.offset[table.annotator]
        if settings.reliability:
            factor *= _reliability_factor(fit, table)
        if settings.position:
            factor *= position_importance(skill * margin, offset, table.chose_left)
        for row, judgment in enumerate(table.judgments):
            zero_left = table.left_position[row] == 0
            zero, one = (
                (table.left_item[row], table.right_item[row])
                if zero_left
                else (table.right_item[row], table.left_item[row])
            )
            correction.aggregated[judgment.comparison_id] = float(expit(fit.scores[zero] - fit.scores[one]))
    elif len(table):
        correction.notes.append("too few annotators for a reliability model: weights from flags and length only")
    keep = np.array([judgment.annotator not in excluded for judgment in table.judgments], dtype=bool)
    if settings.length_controlled and keep.sum() > 10:
        ratio = length_log_ratio(table.length_left, table.length_right)
        features = np.stack([np.ones(len(ratio)), ratio], axis=1)
        (intercept, slope), _ = logistic_fit(features[keep], table.chose_left[keep].astype(float))
        factor *= length_importance(table.chose_left, ratio, float(intercept), float(slope))
        correction.length_slope = float(slope)
    factor = np.minimum(factor, settings.max_weight) * keep
    if keep.any() and factor[keep].mean() > 0:
        factor = factor / factor[keep].mean()
    for row, judgment in enumerate(table.judgments):
        weights[judgment.judgment_id] = float(factor[row])
    for judgment in judgments:
        if judgment.annotator in excluded:
            weights[judgment.judgment_id] = 0.0
    return correction
