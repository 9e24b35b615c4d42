"""Which annotators to look at, and why: the flag list.

Statistical flags (position bias, near-random judging) come from per-annotator tests
(`reliability.annotator_tests`), with the adaptive Benjamini-Hochberg procedure across annotators so
that the share of false flags stays near `false_flag_rate` however large the panel and however many of
its annotators are careless, and an effect-size floor so that a tiny but significant preference is not
flagged. A side preference is tested on the pairs the annotator is unsure of, where it shows, with
more of the level on the side the rest of the panel favours (`reliability.side_weighted_p_values`);
either side is flagged. Gold accuracy and self-consistency are thresholds with a binomial test each, in
families of their own with the same procedure.

A panel gate comes first (closed testing): a statistical flag is raised only if Simes' test of the
panel's global null -- no annotator biased, careless, below the gold bar or inconsistent -- over all
the p-values of all four families rejects at `panel_alpha`. Benjamini-Hochberg holds the share of
false flags among the flags; on a panel of honest annotators every flag is false, so each family
alone raises one with a chance of about `false_flag_rate` (more with the adaptive variant), and the
families' chances add up (3 of 20 honest panels of 40 flagged at 50 judgments each without it). The gate
holds that chance at `panel_alpha`, and where many annotators are bad it passes almost surely, so
precision and recall are those of the per-family procedure. Flags the gate holds back are kept in
`AnnotatorChecks.held_back`. Rule flags (too fast, straight-lining) are plain thresholds on behaviour,
each stated in its message, and not gated.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
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
    simes_p_value,
)
from apprentice.store.quality_queries import QualityJudgment

FLAG_KINDS = (
    "position_bias",
    "near_random",
    "too_fast",
    "straight_lining",
    "gold_accuracy",
    "self_inconsistent",
    "attention_failed",
)


@dataclass(frozen=True)
class FlagSettings:
    false_flag_rate: float = 0.1
    """False discovery rate for each statistical flag (adaptive Benjamini-Hochberg): about this share may be wrong."""
    panel_alpha: float = 0.05
    """Panel gate: statistical flags are raised only where Simes' test over all annotators' p-values rejects
    "nobody in this panel is biased, careless, below the gold bar or inconsistent" at this level, so that a
    panel of honest annotators gets a statistical flag with probability at most about this. 1 turns it off."""
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
    """Gold accuracy: flag an annotator significantly below this share of gold items right ..."""
    min_gold_items: int = 5
    """... over at least this many gold items."""
    min_self_consistency: float = 0.5
    """Self-consistency: flag an annotator significantly below this share of same answers on repeated pairs ..."""
    min_repeats: int = 5
    """... over at least this many pairs of repeats."""
    attention_failures: int = 2
    """Flag an annotator who failed at least this many attention checks (items with an obvious answer; one
    failure may be a slip)."""


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
    attention: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Attention checks per annotator: (failed, answered)."""
    panel_p_value: float = 1.0
    """Simes' p-value of the panel gate over every statistical p-value (1.0 when there were none)."""
    held_back: list[Flag] = field(default_factory=list)
    """Statistical flags the per-family tests alone would raise, held back because the gate did not reject."""

    @property
    def flagged(self) -> set[str]:
        return {flag.annotator for flag in self.flags}

    def flags_for(self, annotator: str) -> list[Flag]:
        return [flag for flag in self.flags if flag.annotator == annotator]


def reading_floor_ms(total_characters: int, settings: FlagSettings) -> float:
    return 1000 * (settings.read_seconds + total_characters / settings.read_chars_per_second)


@dataclass
class _Family:
    """One statistical flag's p-values (one per annotator tested) and the flags it would raise where rejected."""

    p_values: list[float] = field(default_factory=list)
    candidates: list[Flag | None] = field(default_factory=list)  # None: significant or not, too small to flag

    def add(self, p_value: float, candidate: Flag | None) -> None:
        self.p_values.append(p_value)
        self.candidates.append(candidate)


@dataclass(frozen=True)
class GatedTest:
    panel_p_value: float  # Simes over every p-value of every family
    passed: bool  # panel_p_value <= panel_alpha: the families' rejections stand
    rejected: dict[str, list[bool]]  # per family, adaptive Benjamini-Hochberg at the rate (before the gate)


def gated_test(families: Mapping[str, Sequence[float]], *, rate: float, panel_alpha: float) -> GatedTest:
    """A gated test of the panel, closed-testing style: Simes' global test over all families' p-values at
    `panel_alpha`, then adaptive Benjamini-Hochberg at `rate` within each family. Only where `passed` are
    the rejections flags.

    P(any flag | every null true) <= P(Simes rejects) <= panel_alpha (under independence or positive
    dependence, as for Benjamini-Hochberg itself); the false discovery rate within a family is no higher
    than without the gate, which only ever removes rejections.
    """
    panel_p_value = simes_p_value([p for p_values in families.values() for p in p_values])
    rejected = {kind: adaptive_benjamini_hochberg(p_values, rate) for kind, p_values in families.items()}
    return GatedTest(panel_p_value, panel_p_value <= panel_alpha, rejected)


def _statistical_families(
    judgments: Sequence[QualityJudgment], settings: FlagSettings
) -> tuple[dict[str, _Family], list[AnnotatorTest], PositionBTResult | None]:
    families = {"position_bias": _Family(), "near_random": _Family()}
    table = pair_table(judgments)
    if len(table) == 0 or len(table.annotators) < 3:
        return families, [], None  # position bias against a consensus needs a panel
    fit = position_bradley_terry(table)
    tests = [
        test
        for test in annotator_tests(table, fit, skill_ratio=settings.skill_ratio)
        if test.judgments >= settings.min_judgments
    ]
    side_p_values = side_weighted_p_values(tests, max_weight=settings.side_weight_cap)
    for test, side_p_value in zip(tests, side_p_values, strict=True):
        effect = test.left_when_unsure - 0.5
        side, share = ("left", test.left_when_unsure) if effect > 0 else ("right", 1 - test.left_when_unsure)
        families["position_bias"].add(
            side_p_value,
            Flag(
                test.annotator,
                "position_bias",
                f"picks the {side} response {share:.0%} of the time when unsure, between equally good "
                f"responses (p = {side_p_value:.2g}, {test.judgments} judgments)",
                side_p_value,
                effect,
            )
            if abs(effect) >= settings.min_position_effect
            else None,
        )
        families["near_random"].add(
            test.low_skill_p_value,
            Flag(
                test.annotator,
                "near_random",
                f"follows the panel's consensus with skill {test.skill:.2f} against a typical "
                f"{test.reference_skill:.2f} (p = {test.low_skill_p_value:.2g}, {test.judgments} judgments)",
                test.low_skill_p_value,
                test.skill - test.reference_skill,
            ),
        )
    return families, tests, fit


def _rule_flags(
    judgments: Sequence[QualityJudgment], settings: FlagSettings, checks: AnnotatorChecks
) -> tuple[list[Flag], dict[str, _Family]]:
    """The plain rule flags, and the gold and self-consistency families (p-values, flags where rejected)."""
    flags: list[Flag] = []
    families = {"gold_accuracy": _Family(), "self_inconsistent": _Family()}
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
            if len(gold) >= settings.min_gold_items:
                # H0: accuracy at least min_gold_accuracy; exact binomial, one-sided
                p_value = float(binomtest(correct, len(gold), settings.min_gold_accuracy, alternative="less").pvalue)
                below = correct / len(gold) < settings.min_gold_accuracy
                families["gold_accuracy"].add(
                    p_value,
                    Flag(
                        name,
                        "gold_accuracy",
                        f"{correct} of {len(gold)} gold items right, below {settings.min_gold_accuracy:.0%} "
                        f"(p = {p_value:.2g})",
                        p_value,
                        correct / len(gold) - settings.min_gold_accuracy,
                    )
                    if below
                    else None,
                )
        consistent, repeats = self_consistency(own)
        if repeats:
            checks.self_consistency[name] = (consistent, repeats)
            if repeats >= settings.min_repeats:
                # H0: consistency at least min_self_consistency, binomial over the pairs of repeats (exact
                # where each pair of responses was judged twice; more repeats make the pairs dependent)
                agreeing = round(consistent * repeats)
                p_value = float(binomtest(agreeing, repeats, settings.min_self_consistency, alternative="less").pvalue)
                families["self_inconsistent"].add(
                    p_value,
                    Flag(
                        name,
                        "self_inconsistent",
                        f"gave the same answer on only {consistent:.0%} of {repeats} repeated pairs "
                        f"(p = {p_value:.2g})",
                        p_value,
                        consistent,
                    )
                    if consistent < settings.min_self_consistency
                    else None,
                )
    return flags, families


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


def _attention_flags(
    attention: Sequence[QualityJudgment], settings: FlagSettings, checks: AnnotatorChecks
) -> list[Flag]:
    """Failed attention checks: a pair answered against its obvious gold winner (a tie or both bad fails too)."""
    by_annotator: dict[str, list[bool]] = defaultdict(list)
    for judgment in attention:
        if judgment.kind == "pair" and gold_winner(judgment.gold) is not None:
            by_annotator[judgment.annotator].append(pair_winner(judgment.answer) != gold_winner(judgment.gold))
    flags = []
    for name, failures in sorted(by_annotator.items()):
        failed = sum(failures)
        checks.attention[name] = (failed, len(failures))
        if failed >= settings.attention_failures:
            flags.append(
                Flag(
                    name,
                    "attention_failed",
                    f"failed {failed} of {len(failures)} attention checks (items with an obvious answer)",
                    None,
                    failed / len(failures),
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
    """Run every annotator check over the judgments and collect the flags (sorted by annotator, then kind).

    Attention checks are scored on their own (`attention_failed`) and left out of every other check.
    """
    settings = settings or FlagSettings()
    attention = [judgment for judgment in judgments if judgment.purpose == "attention"]
    judgments = [judgment for judgment in judgments if judgment.purpose != "attention"]
    families, tests, fit = _statistical_families(judgments, settings)
    counts = Counter(judgment.annotator for judgment in judgments)
    checks = AnnotatorChecks(flags=[], tests=tests, fit=fit, judgments_per_annotator=dict(sorted(counts.items())))
    rules, rule_families = _rule_flags(judgments, settings, checks)
    rules.extend(_attention_flags(attention, settings, checks))
    families.update(rule_families)
    gate = gated_test(
        {kind: family.p_values for kind, family in families.items()},
        rate=settings.false_flag_rate,
        panel_alpha=settings.panel_alpha,
    )
    checks.panel_p_value = gate.panel_p_value
    statistical = [
        flag
        for kind, family in families.items()
        for flag, reject in zip(family.candidates, gate.rejected[kind], strict=True)
        if reject and flag is not None
    ]
    order = {kind: index for index, kind in enumerate(FLAG_KINDS)}

    def by_annotator_then_kind(flags: list[Flag]) -> list[Flag]:
        return sorted(flags, key=lambda flag: (flag.annotator, order[flag.kind]))

    if gate.passed:
        checks.flags = by_annotator_then_kind([*statistical, *rules])
    else:
        checks.flags = by_annotator_then_kind(rules)
        checks.held_back = by_annotator_then_kind(statistical)
    return checks
