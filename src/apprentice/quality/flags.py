"""Which annotators to look at, and why: the flag list.

Statistical flags (position bias, near-random judging) come from per-annotator tests
(`reliability.annotator_tests`), with the adaptive Benjamini-Hochberg procedure across annotators so
that the share of false flags stays near `false_flag_rate` however large the panel and however many of
its annotators are careless, and an effect-size floor so that a tiny but significant preference is not
flagged. A side preference is tested on the pairs the annotator is unsure of, where it shows, with
more of the level on the side the rest of the panel favours (`reliability.side_weighted_p_values`);
either side is flagged. Rule flags (too fast, straight-lining, gold accuracy, self-consistency) are
plain thresholds, each stated in its message.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binomtest

from apprentice.quality.pairs import gold_winner, pair_table, pair_winner
from apprentice.quality.reliability import (
    AnnotatorTest,
    PositionBTResult,
    adaptive_benjamini_hochberg,
    annotator_tests,
    position_bradley_terry,
    side_weighted_p_values,
)
from apprentice.store.quality_queries import QualityJudgment

FLAG_KINDS = (
    "position_bias",
    "near_random",
    "too_fast",
    "straight_lining",
    "gold_accuracy",
    "self_inconsistent",
)


@dataclass(frozen=True)
class FlagSettings:
    false_flag_rate: float = 0.1
    """False discovery rate for each statistical flag (adaptive Benjamini-Hochberg): about this share may be wrong."""
    min_judgments: int = 20
    """Annotators with fewer decisive pair judgments are not tested (too little to tell)."""
    min_position_effect: float = 0.1
    """Flag a side preference only if P(left) when unsure (between equal responses) is at least this far from 0.5."""
    side_weight_cap: float = 0.9
    """At most this share of the side test's level goes to the side the rest of the panel favours (0.5: two-sided)."""
    skill_ratio: float = 0.5
    """Flag near-random judging only when the skill is significantly below this share of the panel's median."""
    read_seconds: float = 2.0
    """Too fast: a judgment quicker than read_seconds + characters / read_chars_per_second ..."""
    read_chars_per_second: float = 100.0
    """... (100 characters a second is skimming, several times reading speed) ..."""
    too_fast_share: float = 0.5
    """... for at least this share of an annotator's timed judgments, ..."""
    too_fast_relative: float = 0.5
    """... and a median time under this share of the panel's median (a whole panel that skims is one finding
    for the report, not a reason to exclude everyone)."""
    straight_line_share: float = 0.9
    """Straight-lining: the same side (pairs) or the same score (ratings) this often, over min_judgments."""
    min_gold_accuracy: float = 0.7
    min_gold_items: int = 5
    min_self_consistency: float = 0.5
    min_repeats: int = 5


@dataclass(frozen=True)
class Flag:
    annotator: str
    kind: str
    message: str
    p_value: float | None = None
    effect: float | None = None


@dataclass
class AnnotatorChecks:
    """Everything the annotator checks produced: the fitted model, the tests and the flags."""

    flags: list[Flag]
    tests: list[AnnotatorTest]
    fit: PositionBTResult | None
    judgments_per_annotator: dict[str, int]
    gold_accuracy: dict[str, tuple[float, int]] = field(default_factory=dict)
    self_consistency: dict[str, tuple[float, int]] = field(default_factory=dict)
    median_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def flagged(self) -> set[str]:
        return {flag.annotator for flag in self.flags}

    def flags_for(self, annotator: str) -> list[Flag]:
        return [flag for flag in self.flags if flag.annotator == annotator]


def reading_floor_ms(total_characters: int, settings: FlagSettings) -> float:
    return 1000 * (settings.read_seconds + total_characters / settings.read_chars_per_second)


def _statistical_flags(
    judgments: Sequence[QualityJudgment], settings: FlagSettings
) -> tuple[list[Flag], list[AnnotatorTest], PositionBTResult | None]:
    table = pair_table(judgments)
    if len(table) == 0 or len(table.annotators) < 3:
        return [], [], None  # position bias against a consensus needs a panel
    fit = position_bradley_terry(table)
    tests = [
        test
        for test in annotator_tests(table, fit, skill_ratio=settings.skill_ratio)
        if test.judgments >= settings.min_judgments
    ]
    flags = []
    side_p_values = side_weighted_p_values(tests, max_weight=settings.side_weight_cap)
    biased = adaptive_benjamini_hochberg(side_p_values, settings.false_flag_rate)
    careless = adaptive_benjamini_hochberg([test.low_skill_p_value for test in tests], settings.false_flag_rate)
    for test, side_p_value, is_biased, is_careless in zip(tests, side_p_values, biased, careless, strict=True):
        effect = test.left_when_unsure - 0.5
        if is_biased and abs(effect) >= settings.min_position_effect:
            side, share = ("left", test.left_when_unsure) if effect > 0 else ("right", 1 - test.left_when_unsure)
            flags.append(
                Flag(
                    test.annotator,
                    "position_bias",
                    f"picks the {side} response {share:.0%} of the time when unsure, between equally good "
                    f"responses (p = {side_p_value:.2g}, {test.judgments} judgments)",
                    side_p_value,
                    effect,
                )
            )
        if is_careless:
            flags.append(
                Flag(
                    test.annotator,
                    "near_random",
                    f"follows the panel's consensus with skill {test.skill:.2f} against a typical "
                    f"{test.reference_skill:.2f} (p = {test.low_skill_p_value:.2g}, {test.judgments} judgments)",
                    test.low_skill_p_value,
                    test.skill - test.reference_skill,
                )
            )
    return flags, tests, fit


def _rule_flags(judgments: Sequence[QualityJudgment], settings: FlagSettings, checks: AnnotatorChecks) -> list[Flag]:
    flags: list[Flag] = []
    by_annotator: dict[str, list[QualityJudgment]] = defaultdict(list)
    for judgment in judgments:
        by_annotator[judgment.annotator].append(judgment)
    for name, own in by_annotator.items():
        durations = [j.duration_ms for j in own if j.duration_ms is not None]
        if durations:
            checks.median_seconds[name] = float(np.median(durations)) / 1000
    panel_median = float(np.median(list(checks.median_seconds.values()))) if checks.median_seconds else 0.0
    for name, own in sorted(by_annotator.items()):
        timed = [j for j in own if j.duration_ms is not None]
        if timed:
            fast = sum(1 for j in timed if (j.duration_ms or 0) < reading_floor_ms(sum(j.response_lengths), settings))
            if (
                len(timed) >= settings.min_judgments
                and fast / len(timed) >= settings.too_fast_share
                and checks.median_seconds[name] < settings.too_fast_relative * panel_median
            ):
                flags.append(
                    Flag(
                        name,
                        "too_fast",
                        f"{fast} of {len(timed)} judgments faster than skimming both responses "
                        f"({settings.read_chars_per_second:.0f} characters a second); median "
                        f"{checks.median_seconds[name]:.1f} s against the panel's {panel_median:.1f} s",
                        None,
                        fast / len(timed),
                    )
                )
        flags.extend(_straight_lining(name, own, settings))
        gold = [
            (pair_winner(j.answer), gold_winner(j.gold))
            for j in own
            if j.kind == "pair" and gold_winner(j.gold) is not None
        ]
        if gold:
            correct = sum(1 for answer, truth in gold if answer == truth)
            checks.gold_accuracy[name] = (correct / len(gold), len(gold))
            if len(gold) >= settings.min_gold_items and correct / len(gold) < settings.min_gold_accuracy:
                p_value = binomtest(correct, len(gold), settings.min_gold_accuracy, alternative="less").pvalue
                if p_value < settings.false_flag_rate:
                    flags.append(
                        Flag(
                            name,
                            "gold_accuracy",
                            f"{correct} of {len(gold)} gold items right, below {settings.min_gold_accuracy:.0%} "
                            f"(p = {p_value:.2g})",
                            float(p_value),
                            correct / len(gold) - settings.min_gold_accuracy,
                        )
                    )
        consistent, repeats = self_consistency(own)
        if repeats:
            checks.self_consistency[name] = (consistent, repeats)
            if repeats >= settings.min_repeats and consistent < settings.min_self_consistency:
                flags.append(
                    Flag(
                        name,
                        "self_inconsistent",
                        f"gave the same answer on only {consistent:.0%} of {repeats} repeated pairs",
                        None,
                        consistent,
                    )
                )
    return flags


def _straight_lining(name: str, own: Sequence[QualityJudgment], settings: FlagSettings) -> list[Flag]:
    flags = []
    sides = [
        "left" if pair_winner(j.answer) == j.order_shown[0] else "right"
        for j in own
        if j.kind == "pair" and j.order_shown and pair_winner(j.answer) is not None
    ]
    if len(sides) >= settings.min_judgments:
        side, count = Counter(sides).most_common(1)[0]
        if count / len(sides) >= settings.straight_line_share:
            flags.append(
                Flag(
                    name,
                    "straight_lining",
                    f"picked the {side} response in {count} of {len(sides)} pairs",
                    None,
                    count / len(sides),
                )
            )
    scores = [j.answer.get("score") for j in own if j.kind == "rating" and j.answer.get("score") is not None]
    if len(scores) >= settings.min_judgments:
        score, count = Counter(scores).most_common(1)[0]
        if count / len(scores) >= settings.straight_line_share:
            flags.append(
                Flag(
                    name,
                    "straight_lining",
                    f"gave the score {score} in {count} of {len(scores)} ratings",
                    None,
                    count / len(scores),
                )
            )
    return flags


def self_consistency(own: Sequence[QualityJudgment]) -> tuple[float, int]:
    """One annotator's agreement with themselves on pairs of the same two responses judged more than once."""
    answers: dict[frozenset[int], list[int]] = defaultdict(list)
    for judgment in own:
        winner = pair_winner(judgment.answer) if judgment.kind == "pair" else None
        if winner is not None:
            answers[frozenset(judgment.response_ids)].append(judgment.response_ids[winner])
    agreeing = pairs = 0
    for chosen in answers.values():
        for first in range(len(chosen)):
            for second in range(first + 1, len(chosen)):
                pairs += 1
                agreeing += int(chosen[first] == chosen[second])
    return (agreeing / pairs if pairs else float("nan")), pairs


def check_annotators(judgments: Sequence[QualityJudgment], settings: FlagSettings | None = None) -> AnnotatorChecks:
    """Run every annotator check over the judgments and collect the flags (sorted by annotator, then kind)."""
    settings = settings or FlagSettings()
    statistical, tests, fit = _statistical_flags(judgments, settings)
    counts = Counter(judgment.annotator for judgment in judgments)
    checks = AnnotatorChecks(flags=[], tests=tests, fit=fit, judgments_per_annotator=dict(sorted(counts.items())))
    rules = _rule_flags(judgments, settings, checks)
    order = {kind: index for index, kind in enumerate(FLAG_KINDS)}
    checks.flags = sorted([*statistical, *rules], key=lambda flag: (flag.annotator, order[flag.kind]))
    return checks


def precision_recall(flagged: set[str], bad: set[str]) -> tuple[float, float]:
    """Precision and recall of a flag set against the annotators known to be bad (1.0 when there is nothing to find)."""
    true_positives = len(flagged & bad)
    precision = true_positives / len(flagged) if flagged else 1.0
    recall = true_positives / len(bad) if bad else 1.0
    return precision, recall
