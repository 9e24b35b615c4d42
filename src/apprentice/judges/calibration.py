"""How far each machine judge agrees with the project's people, and the weight its labels earn.

On the pair comparisons that a judge and at least one person both answered, every (judge, person)
couple of answers is one item, so the judge's agreement is measured on the same footing as two people's
(person against person on the comparisons two people share). Reported per judge:
- raw agreement with people and Cohen's kappa, each with a 95% interval (Wilson for the share, a
  bootstrap over comparisons for kappa), beside people's own agreement with each other;
- position consistency: the share of asked pairs on which both orders preferred the same answer;
- length bias: the share of its labels that chose the longer answer, beside people's share on the same
  comparisons;
- accuracy against its own confidence, in bins, so a user sees whether "sure" means right.

The weight: kappa's lower bound over people's own kappa, clipped to [0, 1], so a judge earns at most a
person's weight and only what its agreement has shown with 95% confidence. A judge with fewer than
`MIN_SHARED` shared items, or no better than chance, or whose length preference differs from people's
beyond chance by more than `LENGTH_BIAS_MARGIN`, is flagged and weighted to nothing.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from apprentice.quality.agreement import cohen_kappa
from apprentice.quality.pairs import pair_winner
from apprentice.rates import wilson_interval
from apprentice.store.quality_queries import QualityJudgment

MIN_SHARED = 20
LENGTH_BIAS_MARGIN = 0.15
# People's agreement when too few comparisons have two people on them: InstructGPT's labelers, 73%.
FALLBACK_PEOPLE_KAPPA = 2 * 0.73 - 1
CONFIDENCE_BINS = (0.0, 0.2, 0.5, 1.0001)
_PROBABILITY = re.compile(r"P\(first\)=([0-9.]+)")


@dataclass(frozen=True)
class Rate:
    """A share with its count and 95% interval."""

    successes: int
    trials: int
    low: float
    high: float

    @property
    def value(self) -> float | None:
        return None if self.trials == 0 else self.successes / self.trials

    @classmethod
    def of(cls, successes: int, trials: int) -> Rate:
        low, high = wilson_interval(successes, trials)
        return cls(successes, trials, low, high)


@dataclass
class JudgeCalibration:
    name: str
    labels: int  # the judge's pair labels in the store
    agreement: Rate  # with people, over (judge, person) couples
    kappa: float
    kappa_low: float
    kappa_high: float
    people_kappa: float
    people_agreement: Rate
    longer_share: Rate  # the judge's labels that chose the longer answer (shared comparisons)
    people_longer_share: Rate
    confidence_bins: list[tuple[str, Rate]] = field(default_factory=list)
    position_consistency: Rate | None = None
    flags: list[str] = field(default_factory=list)
    weight: float = 0.0


def confidence_of(rationale: str | None) -> float | None:
    """The judge's confidence |2 P(first) - 1| read back from its judgment's rationale."""
    match = _PROBABILITY.search(rationale or "")
    return None if match is None else abs(2 * float(match.group(1)) - 1)


def _winners_by_comparison(judgments: Sequence[QualityJudgment]) -> dict[int, list[tuple[str, int]]]:
    found: dict[int, list[tuple[str, int]]] = {}
    for judgment in judgments:
        winner = pair_winner(judgment.answer) if judgment.kind == "pair" else None
        if winner is not None:
            found.setdefault(judgment.comparison_id, []).append((judgment.annotator, winner))
    return found


def _longer(judgment: QualityJudgment) -> int | None:
    lengths = judgment.response_lengths
    if len(lengths) != 2 or lengths[0] == lengths[1]:
        return None
    return 0 if lengths[0] > lengths[1] else 1


def _kappa_interval(couples: list[tuple[int, int, int]], seed: int = 0) -> tuple[float, float, float]:
    """Kappa of (judge, person) couples and a bootstrap interval over comparisons (couples share theirs)."""
    kappa = cohen_kappa([c[1] for c in couples], [c[2] for c in couples]) if couples else float("nan")
    comparisons = sorted({c[0] for c in couples})
    if len(comparisons) < 2 or not np.isfinite(kappa):
        return kappa, float("nan"), float("nan")
    by_comparison: dict[int, list[tuple[int, int, int]]] = {}
    for couple in couples:
        by_comparison.setdefault(couple[0], []).append(couple)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(500):
        sample = [
            c
            for index in rng.integers(0, len(comparisons), len(comparisons))
            for c in by_comparison[comparisons[index]]
        ]
        draw = cohen_kappa([c[1] for c in sample], [c[2] for c in sample])
        if np.isfinite(draw):
            draws.append(draw)
    if not draws:
        return kappa, float("nan"), float("nan")
    low, high = np.percentile(draws, [2.5, 97.5])
    return kappa, float(low), float(high)


def people_kappa(people: Sequence[QualityJudgment]) -> tuple[float, Rate]:
    """People's own Cohen's kappa and raw agreement over every couple of people on the same pair."""
    labels_a, labels_b = [], []
    for answers in _winners_by_comparison(people).values():
        for i in range(len(answers)):
            for j in range(i + 1, len(answers)):
                labels_a.append(answers[i][1])
                labels_b.append(answers[j][1])
    agreement = Rate.of(sum(a == b for a, b in zip(labels_a, labels_b, strict=True)), len(labels_a))
    if len(labels_a) < MIN_SHARED:
        return FALLBACK_PEOPLE_KAPPA, agreement
    kappa = cohen_kappa(labels_a, labels_b)
    return (kappa if np.isfinite(kappa) and kappa > 0 else FALLBACK_PEOPLE_KAPPA), agreement


def calibrate_judge(
    name: str,
    judge_judgments: Sequence[QualityJudgment],
    people: Sequence[QualityJudgment],
    *,
    asked: int = 0,
    consistent: int = 0,
) -> JudgeCalibration:
    """The judge's agreement with people, its biases and its weight (see the module's docstring)."""
    own = [j for j in judge_judgments if j.kind == "pair" and pair_winner(j.answer) is not None]
    people_winners = _winners_by_comparison(people)
    couples = [
        (j.comparison_id, int(pair_winner(j.answer)), person_winner)  # type: ignore[arg-type]
        for j in own
        for _, person_winner in people_winners.get(j.comparison_id, [])
    ]
    kappa, kappa_low, kappa_high = _kappa_interval(couples)
    reference_kappa, people_agreement = people_kappa(people)
    shared = [j for j in own if j.comparison_id in people_winners and _longer(j) is not None]
    longer = Rate.of(sum(pair_winner(j.answer) == _longer(j) for j in shared), len(shared))
    people_on_shared = [
        (person_winner, _longer(j)) for j in shared for _, person_winner in people_winners[j.comparison_id]
    ]
    people_longer = Rate.of(sum(w == longer_index for w, longer_index in people_on_shared), len(people_on_shared))
    bins = []
    for low, high in itertools.pairwise(CONFIDENCE_BINS):
        in_bin = [
            (int(pair_winner(j.answer)) == person)  # type: ignore[arg-type]
            for j in own
            if (confidence := confidence_of(j.rationale)) is not None and low <= confidence < high
            for _, person in people_winners.get(j.comparison_id, [])
        ]
        bins.append((f"{low:.1f}-{min(high, 1.0):.1f}", Rate.of(sum(in_bin), len(in_bin))))
    calibration = JudgeCalibration(
        name=name,
        labels=len(own),
        agreement=Rate.of(sum(c[1] == c[2] for c in couples), len(couples)),
        kappa=kappa,
        kappa_low=kappa_low,
        kappa_high=kappa_high,
        people_kappa=reference_kappa,
        people_agreement=people_agreement,
        longer_share=longer,
        people_longer_share=people_longer,
        confidence_bins=bins,
        position_consistency=Rate.of(consistent, asked) if asked else None,
    )
    calibration.flags = judge_flags(calibration)
    calibration.weight = 0.0 if calibration.flags else min(1.0, max(0.0, kappa_low / reference_kappa))
    return calibration


def judge_flags(calibration: JudgeCalibration) -> list[str]:
    """Why a judge's labels should not train anything yet (empty when they may)."""
    flags = []
    if calibration.agreement.trials < MIN_SHARED:
        flags.append(f"too little data: {calibration.agreement.trials} answers shared with people (needs {MIN_SHARED})")
    elif not np.isfinite(calibration.kappa_low) or calibration.kappa_low <= 0:
        flags.append("no better than chance: kappa's 95% interval reaches 0")
    judge_share, people_share = calibration.longer_share.value, calibration.people_longer_share.value
    if (
        judge_share is not None
        and people_share is not None
        and abs(judge_share - people_share) > LENGTH_BIAS_MARGIN
        and not calibration.longer_share.low <= people_share <= calibration.longer_share.high
    ):
        side = "longer" if judge_share > people_share else "shorter"
        flags.append(
            f"length bias: chose the longer answer {judge_share:.0%} of the time against people's {people_share:.0%}"
            f" (prefers the {side} one)"
        )
    return flags


def judge_weights(
    calibrations: Sequence[JudgeCalibration], judge_judgments: Mapping[str, Sequence[QualityJudgment]]
) -> dict[int, float]:
    """A training weight for every judgment of every calibrated judge: the judge's weight."""
    return {
        judgment.judgment_id: calibration.weight
        for calibration in calibrations
        for judgment in judge_judgments.get(calibration.name, [])
    }
