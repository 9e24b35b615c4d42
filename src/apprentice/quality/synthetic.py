"""Synthetic annotator panels with a known truth, to measure what the quality checks can detect.

A comparison's quality margin m = s_0 - s_1 is either a near tie (m ~ N(0, 0.3^2), a share `tie_share`
of the pairs: two samples of one policy are often about as good) or a clear difference
(|m| ~ N(clear_margin, 0.75^2)). An annotator is *sure* of a pair with probability
2 sig(sharpness |m|) - 1 and then picks the better
response; otherwise they guess. An honest annotator guesses fairly, so their choices follow
Bradley-Terry exactly: P(better chosen) = sig(sharpness |m|). A left-leaner guesses the left response
with probability `left_when_unsure` (0.8), a right-leaner with 0.2; a random clicker guesses on every
pair, quickly.

With the defaults (half the pairs near ties, clear margins of 2.5) honest annotators are unsure on
about 55% of pairs and agree with each other about 66% of the time, as people do on model outputs
(AlpacaFarm: 66%). How often annotators are unsure bounds how well a side preference can be seen:
an annotator's guesses are the only judgments that show it.

Why this is not `apprentice.simulate`: that panel judges a real project's responses through the studio on
a gold oracle's scores (Bradley-Terry with flips, calibrated to people's agreement). This one needs no store,
model or server, and knows who is bad and which response is really better, so a check's precision and
recall can be counted; the tests and `benchmarks/quality_*.py` use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
from scipy.special import expit

from apprentice.store.quality_queries import QualityJudgment

Behaviour = Literal["honest", "clicker", "left_leaner", "right_leaner"]


@dataclass(frozen=True)
class SyntheticAnnotator:
    name: str
    behaviour: Behaviour
    sharpness: float = 1.0  # how clearly differences are seen (honest people differ)
    left_when_unsure: float = 0.5
    seconds_per_judgment: float = 30.0

    @property
    def is_bad(self) -> bool:
        return self.behaviour != "honest"


@dataclass(frozen=True)
class SyntheticPanel:
    annotators: list[SyntheticAnnotator]
    judgments: list[QualityJudgment]
    true_winner: dict[int, int]  # comparison id -> canonical position that is really better
    margin: dict[int, float]  # comparison id -> s_0 - s_1
    response_quality: dict[int, float]

    @property
    def bad_annotators(self) -> set[str]:
        return {annotator.name for annotator in self.annotators if annotator.is_bad}


def make_panel_annotators(
    count: int, *, clickers: float = 0.0, left_leaners: float = 0.0, right_leaners: float = 0.0, seed: int = 0
) -> list[SyntheticAnnotator]:
    """`count` annotators: shares of random clickers, of left-leaners (80% left when unsure) and of
    right-leaners (80% right when unsure); the rest honest."""
    rng = np.random.default_rng(seed)
    clicker_count = round(count * clickers)
    leaner_count = round(count * left_leaners)
    right_leaner_count = round(count * right_leaners)
    annotators = []
    for index in range(count):
        sharpness = float(rng.uniform(0.8, 1.25))
        seconds = float(rng.uniform(20, 45))
        if index < clicker_count:
            annotators.append(SyntheticAnnotator(f"clicker-{index:02d}", "clicker", 0.0, 0.5, float(rng.uniform(2, 4))))
        elif index < clicker_count + leaner_count:
            annotators.append(SyntheticAnnotator(f"leaner-{index:02d}", "left_leaner", sharpness, 0.8, seconds))
        elif index < clicker_count + leaner_count + right_leaner_count:
            annotators.append(SyntheticAnnotator(f"rightleaner-{index:02d}", "right_leaner", sharpness, 0.2, seconds))
        else:
            annotators.append(SyntheticAnnotator(f"honest-{index:02d}", "honest", sharpness, 0.5, seconds))
    return annotators


def simulate_panel(
    annotators: Sequence[SyntheticAnnotator],
    *,
    judgments_per_annotator: int = 50,
    overlap: int = 5,
    tie_share: float = 0.6,
    clear_margin: float = 2.5,
    gold_share: float = 0.0,
    categories: Sequence[str] = ("writing", "coding", "advice", "facts"),
    rounds: int = 1,
    record_order: bool = True,
    margins: Sequence[float] | None = None,
    lengths: Sequence[tuple[int, int]] | None = None,
    seed: int = 0,
) -> SyntheticPanel:
    """Every annotator judges `judgments_per_annotator` pairs; each pair is seen by about `overlap` annotators.

    Display order is random per judgment. Response lengths are random and independent of quality.
    `margins` (and `lengths`) fix the comparisons instead, e.g. from a gold oracle on real responses:
    comparison k (id k + 1) holds responses 2k + 1 and 2k + 2, with margin s_0 - s_1 = margins[k].
    """
    rng = np.random.default_rng(seed)
    if margins is None:
        comparisons = max(overlap, int(np.ceil(len(annotators) * judgments_per_annotator / overlap)))
        near_tie = rng.random(comparisons) < tie_share
        size = np.where(near_tie, rng.normal(0.0, 0.3, comparisons), rng.normal(clear_margin, 0.75, comparisons))
        drawn_margins = np.abs(size) * rng.choice([-1.0, 1.0], comparisons)
    else:
        drawn_margins = np.asarray(margins, dtype=float)
        comparisons = len(drawn_margins)
        if comparisons * overlap < len(annotators) * judgments_per_annotator:
            raise ValueError(f"{comparisons} comparisons are too few for that many judgments at overlap {overlap}")
    base = rng.normal(0.0, 1.0, comparisons)
    quality = np.stack([base + drawn_margins / 2, base - drawn_margins / 2], axis=1)
    if lengths is None:
        response_lengths = np.clip(rng.lognormal(6.0, 0.6, size=(comparisons, 2)), 20, None).astype(int)
    else:
        response_lengths = np.asarray(lengths, dtype=int)
    gold_rows = set(np.nonzero(rng.random(comparisons) < gold_share)[0].tolist())
    seen = np.zeros(comparisons)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    judgments: list[QualityJudgment] = []
    plan: list[tuple[int, int]] = []
    for annotator_index in range(len(annotators)):
        # the least-seen pairs first (random among equals), so the overlap comes out even
        order = np.lexsort((rng.random(comparisons), seen))[:judgments_per_annotator]
        seen[order] += 1
        plan.extend((annotator_index, int(row)) for row in order)
    rng.shuffle(plan)  # judgments arrive interleaved in time
    for step, (annotator_index, row) in enumerate(plan):
        annotator = annotators[annotator_index]
        margin = quality[row, 0] - quality[row, 1]
        better = 0 if margin >= 0 else 1  # a tie counts for position 0, as in true_winner
        left = int(rng.integers(0, 2))
        sure = rng.random() < 2 * expit(annotator.sharpness * abs(margin)) - 1
        # the guess is drawn only when unsure (a conditional expression), so seeds give the same panels
        winner = better if sure else (left if rng.random() < annotator.left_when_unsure else 1 - left)
        seconds = annotator.seconds_per_judgment * float(rng.lognormal(0.0, 0.3))
        judgments.append(
            QualityJudgment(
                judgment_id=step + 1,
                comparison_id=row + 1,
                kind="pair",
                annotator=annotator.name,
                answer={"winner": winner, "tie": False, "both_bad": False},
                order_shown=[left, 1 - left] if record_order else None,
                response_ids=[2 * row + 1, 2 * row + 2],
                response_lengths=[int(response_lengths[row, 0]), int(response_lengths[row, 1])],
                duration_ms=int(seconds * 1000),
                prompt_id=row + 1,
                category=categories[row % len(categories)] if categories else None,
                round=min(rounds - 1, step * rounds // len(plan)),
                gold={"winner": better, "tie": False, "both_bad": False} if row in gold_rows else None,
                created_at=start + timedelta(seconds=30 * step),
                source="simulated",
                annotator_kind="simulated",
            )
        )
    return SyntheticPanel(
        annotators=list(annotators),
        judgments=judgments,
        true_winner={row + 1: int(quality[row, 0] < quality[row, 1]) for row in range(comparisons)},
        margin={row + 1: float(quality[row, 0] - quality[row, 1]) for row in range(comparisons)},
        response_quality={2 * row + 1 + k: float(quality[row, k]) for row in range(comparisons) for k in range(2)},
    )
