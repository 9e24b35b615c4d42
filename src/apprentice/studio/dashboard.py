"""The admin dashboard's figures, computed from the store's studio judgments."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apprentice.settings import StudioSection
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
    attention_answered: int = 0
    attention_failed: int = 0
    qualification: str | None = None  # "qualifying: ...", "passed: ...", "failed: ..." where it is asked for

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
    flags_note: str | None = None  # how fresh the flags are, where they are cached
    attention_answered: int = 0
    attention_failed: int = 0
    disputed: int = 0  # comparisons waiting for an admin's adjudication

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


def _gold_scores(judged: list[StudioJudgmentRow], *, attention: bool) -> tuple[int, int]:
    """(answered, right) on gold items, or on attention checks."""
    answered = [row for row in judged if row.gold is not None and (row.purpose == "attention") == attention]
    correct = sum(matches_gold(row.kind, row.answer, row.gold) for row in answered if row.gold is not None)
    return len(answered), correct


def build_dashboard(store: Store, flags: FlagSource | None = None, settings: StudioSection | None = None) -> Dashboard:
    from apprentice.studio.crowd import qualifications

    rows = store.studio_judgments()
    by_annotator: dict[int, list[StudioJudgmentRow]] = defaultdict(list)
    for row in rows:
        by_annotator[row.annotator_id].append(row)
    qualified = qualifications(store, settings) if settings is not None else {}
    asked = settings is not None and settings.qualification_items > 0

    annotators = []
    for activity in store.annotator_activity():
        judged = by_annotator.get(activity.account.id, [])
        answered, correct = _gold_scores(judged, attention=False)
        checks, checks_right = _gold_scores(judged, attention=True)
        qualification = qualified.get(activity.account.id)
        status = qualification.label if qualification else ("qualifying: not started" if asked else None)
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
                attention_answered=checks,
                attention_failed=checks - checks_right,
                qualification=None if activity.account.is_admin else status,
            )
        )
    answered, correct = _gold_scores(rows, attention=False)
    checks, checks_right = _gold_scores(rows, attention=True)
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
        flags_note=_flags_note(flags),
        attention_answered=checks,
        attention_failed=checks - checks_right,
        disputed=store.disputed_count(),
    )


def _flags_note(flags: FlagSource | None) -> str | None:
    if not isinstance(flags, CachedFlags) or flags.judgments is None:
        return None
    return (
        f"The quality checks last ran at {flags.judgments:,} judgments; they run again when more arrive, "
        f"at most every {flags.min_interval:g} seconds."
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


class CachedFlags:
    """A flag source that recomputes only when judgments were added, and then at most every `min_interval` s.

    Why: the quality checks refit the panel's Bradley-Terry scores once per annotator (a view of the
    dashboard took 5.7 s at 17,000 judgments from 50 annotators on a 2-core machine, 0.5 s with this
    cache; `benchmarks/studio_load.py --dashboard`), too slow for every view of the page while people are
    judging, and the flags move little from one judgment to the next. One computation at a time: views
    that arrive meanwhile wait for it.
    """

    def __init__(
        self,
        compute: FlagSource = quality_flags,
        *,
        min_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compute = compute
        self.min_interval = min_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._flags: list[Flag] | None = None
        self._watermark: tuple[int, int] | None = None
        self._computed_at = 0.0

    @property
    def judgments(self) -> int | None:
        """How many judgments the flags shown were computed on (None before the first computation)."""
        return None if self._watermark is None else self._watermark[0]

    def __call__(self, store: Store) -> list[Flag]:
        with self._lock:
            watermark = store.judgment_watermark()
            fresh = watermark == self._watermark or self._clock() - self._computed_at < self.min_interval
            if self._flags is None or not fresh:
                self._flags = self._compute(store)
                self._watermark, self._computed_at = watermark, self._clock()
            return self._flags
