"""How far to trust a reward model: accuracy, agreement levels, calibration, a length-only baseline.

All measures are on held-out pairs (prompts the model never saw). Accuracy counts a pair as right
when the chosen response scores higher; ties kept as half-wins have no right answer and are left out.
The length-only baseline predicts "the longer response wins" (a length tie counts half): the gap
between it and the model is what the model learned beyond length (Singhal et al. 2023).
Calibration is the expected calibration error of the Bradley-Terry probability sigmoid(r_c - r_r),
on the raw scores the model was trained with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from apprentice.reward.data import PreferenceData, RewardPair
from apprentice.reward.model import RewardModel


def agreement_level(agreement: float | None) -> str:
    """The bucket of a pair by how many of its comparison's judgments ordered it the same way."""
    if agreement is None:
        return "judged once"
    if agreement >= 1.0:
        return "unanimous"
    if agreement >= 2 / 3:
        return "majority (>= 2/3)"
    return "split (< 2/3)"


def pairwise_accuracy(chosen: Sequence[float], rejected: Sequence[float]) -> float:
    """Share of pairs where chosen scores higher; an exact tie counts half."""
    if not chosen:
        return math.nan
    right = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True))
    return right / len(chosen)


def expected_calibration_error(probabilities: Sequence[float], outcomes: Sequence[bool], *, bins: int = 10) -> float:
    """sum_b (n_b / N) |accuracy_b - confidence_b| over equal-width confidence bins on [0.5, 1].

    Each prediction is the more likely side: confidence max(p, 1 - p), right when that side happened.
    """
    if not probabilities:
        return math.nan
    totals = [[0, 0.0, 0.0] for _ in range(bins)]  # count, sum of confidence, sum of correct
    for probability, outcome in zip(probabilities, outcomes, strict=True):
        confidence = max(probability, 1.0 - probability)
        correct = (probability >= 0.5) == outcome
        index = min(int((confidence - 0.5) * 2 * bins), bins - 1)
        totals[index][0] += 1
        totals[index][1] += confidence
        totals[index][2] += float(correct)
    count = len(probabilities)
    return sum(abs(correct - confidence) / count for n, confidence, correct in totals if n)


def length_baseline_accuracy(pairs: Sequence[RewardPair]) -> float:
    """Accuracy of "the longer response (in characters) wins"."""
    return pairwise_accuracy([float(len(pair.chosen)) for pair in pairs], [float(len(pair.rejected)) for pair in pairs])


def score_distribution(scores: Sequence[float], *, bins: int = 20) -> dict[str, Any]:
    values = torch.tensor(list(scores), dtype=torch.float64)
    if values.numel() == 0:
        return {"count": 0}
    quantiles = torch.quantile(values, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64))
    low, high = float(values.min()), float(values.max())
    counts = torch.histc(values, bins=bins, min=low, max=high if high > low else low + 1.0)
    return {
        "count": int(values.numel()),
        "mean": float(values.mean()),
        "std": float(values.std()) if values.numel() > 1 else 0.0,
        "min": low,
        "max": high,
        "quantiles": dict(zip(["p05", "p25", "p50", "p75", "p95"], [float(q) for q in quantiles], strict=True)),
        "histogram": {"edges": [low + (high - low) * i / bins for i in range(bins + 1)], "counts": counts.tolist()},
    }


def evaluation_pairs(data: PreferenceData) -> list[RewardPair]:
    """The pairs to judge a model on: strict pairs, plus the strict pairs implied by ranking groups."""
    pairs = [pair for pair in data.pairs if pair.target != 0.5]
    for group in data.groups:
        for better, better_rank in enumerate(group.ranks):
            for worse, worse_rank in enumerate(group.ranks):
                if better_rank < worse_rank:
                    pairs.append(
                        RewardPair(group.prompt, group.responses[better], group.responses[worse], weight=group.weight)
                    )
    return pairs


def evaluate_scores(
    pairs: Sequence[RewardPair], chosen_raw: Sequence[float], rejected_raw: Sequence[float]
) -> dict[str, Any]:
    """Every measure from the raw scores of each pair's two responses."""
    probabilities = [1.0 / (1.0 + math.exp(-(c - r))) for c, r in zip(chosen_raw, rejected_raw, strict=True)]
    levels: dict[str, list[int]] = {}
    for index, pair in enumerate(pairs):
        levels.setdefault(agreement_level(pair.agreement), []).append(index)
    by_agreement = {
        level: {
            "pairs": len(selected),
            "accuracy": pairwise_accuracy([chosen_raw[i] for i in selected], [rejected_raw[i] for i in selected]),
        }
        for level, selected in sorted(levels.items())
    }
    return {
        "pairs": len(pairs),
        "accuracy": pairwise_accuracy(chosen_raw, rejected_raw),
        "length_baseline_accuracy": length_baseline_accuracy(pairs),
        "accuracy_by_agreement": by_agreement,
        "expected_calibration_error": expected_calibration_error(probabilities, [True] * len(pairs)),
        "mean_margin": sum(c - r for c, r in zip(chosen_raw, rejected_raw, strict=True)) / len(pairs)
        if pairs
        else math.nan,
    }


def evaluate_reward_model(model: RewardModel, data: PreferenceData, *, batch_size: int = 16) -> dict[str, Any]:
    """Score the held-out pairs and report every measure, with the normalized score distribution."""
    pairs = evaluation_pairs(data)
    raw = model.score(
        [pair.prompt for pair in pairs] * 2,
        [pair.chosen for pair in pairs] + [pair.rejected for pair in pairs],
        batch_size=batch_size,
        normalized=False,
    )
    chosen_raw, rejected_raw = raw[: len(pairs)], raw[len(pairs) :]
    report = evaluate_scores(pairs, chosen_raw, rejected_raw)
    normalized = model.normalization.apply(torch.tensor(raw)).tolist() if raw else []
    report["score_distribution"] = score_distribution(normalized)
    return report
