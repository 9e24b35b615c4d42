"""The admin dashboard's figures, computed from the store's studio judgments."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from apprentice.store import Store
from apprentice.store.assignments import RoundProgress, StudioJudgmentRow
from apprentice.studio.answers import matches_gold, median, outcome, percent_agreement
from apprentice.studio.context import Flag, FlagSource


@dataclass(frozen=True)
class AnnotatorRow:
    id: int
    name: str
    role: str
    disabled: bool
    judgments: int
    skips: int
    leased: int
    median_seconds: float | None
    gold_answered: int
    gold_correct: int

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answered if self.gold_answered else None


@dataclass(frozen=True)
class Dashboard:
    rounds: list[RoundProgress]
    annotators: list[AnnotatorRow]
    judgments: int
    median_seconds: float | None
    gold_answered: int
    gold_correct: int
    agreement: float | None  # share of agreeing pairs of judgments on the same comparison
    agreement_pairs: int
    flags: list[Flag]

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answered if self.gold_answered else None


def _seconds(rows: list[StudioJudgmentRow]) -> float | None:
    value = median([row.duration_ms / 1000 for row in rows if row.duration_ms is not None])
    return round(value, 1) if value is not None else None


def live_agreement(rows: list[StudioJudgmentRow]) -> tuple[float | None, int]:
    """Percent agreement over comparisons (not gold items) that have two or more judgments."""
    outcomes: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        if row.gold is None:
            outcomes[row.comparison_id].append(outcome(row.kind, row.answer))
    return percent_agreement(outcomes.values())


def build_dashboard(store: Store, flags: FlagSource | None = None) -> Dashboard:
    rows = store.studio_judgments()
    by_annotator: dict[int, list[StudioJudgmentRow]] = defaultdict(list)
    for row in rows:
        by_annotator[row.annotator_id].append(row)

    def gold_scores(judged: list[StudioJudgmentRow]) -> tuple[int, int]:
        answered = [row for row in judged if row.gold is not None]
        correct = sum(matches_gold(row.kind, row.answer, row.gold) for row in answered if row.gold is not None)
        return len(answered), correct

    annotators = []
    for activity in store.annotator_activity():
        judged = by_annotator.get(activity.account.id, [])
        answered, correct = gold_scores(judged)
        annotators.append(
            AnnotatorRow(
                id=activity.account.id,
                name=activity.account.name,
                role=activity.account.role,
                disabled=activity.account.disabled,
                judgments=activity.judgments,
                skips=activity.skips,
                leased=activity.leased,
                median_seconds=_seconds(judged),
                gold_answered=answered,
                gold_correct=correct,
            )
        )
    answered, correct = gold_scores(rows)
    agreement, pairs = live_agreement(rows)
    return Dashboard(
        rounds=store.round_progress(),
        annotators=annotators,
        judgments=len(rows),
        median_seconds=_seconds(rows),
        gold_answered=answered,
        gold_correct=correct,
        agreement=agreement,
        agreement_pairs=pairs,
        flags=flags(store) if flags is not None else [],
    )


def quality_flags(store: Store) -> list[Flag]:
    """The quality checks' flags for the dashboard: careless, biased or too fast annotators, live."""
    from apprentice.quality.flags import check_annotators

    judgments = store.quality_judgments()
    if not judgments:
        return []
    return [
        Flag(subject=flag.annotator, reason=f"{flag.kind}: {flag.message}")
        for flag in check_annotators(judgments).flags
    ]
