"""Store reads for the studio's admin pages: progress per round, activity per annotator, studio judgments.

A part of the `Store` gateway (through `AssignmentQueries`); only the store package touches the database.
"""

from __future__ import annotations

from sqlalchemy import func, select

from apprentice.store.base import StoreBase
from apprentice.store.studio_records import (
    ACCOUNT_COLUMNS,
    IS_GOLD,
    STUDIO_SOURCES,
    AnnotatorActivity,
    RoundProgress,
    StudioJudgmentRow,
    account_from_row,
    aware,
    gold_value,
)
from apprentice.store.tables import Annotator, Assignment, Comparison, Judgment


class StudioViews(StoreBase):
    """What the dashboard shows, read in one transaction per figure."""

    def round_progress(self) -> list[RoundProgress]:
        """Per round: comparisons, how many are complete, judgments wanted and stored (gold items apart)."""
        with self._transaction() as session:
            counts = session.execute(
                select(Comparison.round, Comparison.status, func.count(), func.sum(Comparison.overlap))
                .where(~IS_GOLD)
                .group_by(Comparison.round, Comparison.status)
            ).all()
            judged = dict(
                session.execute(
                    select(Comparison.round, func.count())
                    .join(Judgment, Judgment.comparison_id == Comparison.id)
                    .where(~IS_GOLD)
                    .group_by(Comparison.round)
                ).all()
            )
        by_round: dict[int, list[int]] = {}
        for round_number, status, count, wanted in counts:
            totals = by_round.setdefault(int(round_number), [0, 0, 0])
            totals[0] += int(count)
            totals[1] += int(count) if status == "complete" else 0
            totals[2] += int(wanted or 0)
        return [
            RoundProgress(number, totals[0], totals[1], totals[2], int(judged.get(number, 0)))
            for number, totals in sorted(by_round.items())
        ]

    def annotator_activity(self) -> list[AnnotatorActivity]:
        with self._transaction() as session:
            judgments = dict(
                session.execute(
                    select(Judgment.annotator_id, func.count())
                    .where(Judgment.source.in_(STUDIO_SOURCES))
                    .group_by(Judgment.annotator_id)
                ).all()
            )
            statuses = session.execute(
                select(Assignment.annotator_id, Assignment.status, func.count()).group_by(
                    Assignment.annotator_id, Assignment.status
                )
            ).all()
            accounts = [
                account_from_row(row)
                for row in session.execute(select(*ACCOUNT_COLUMNS).order_by(Annotator.id)).all()
                if row.kind == "human"
            ]
        skips: dict[int, int] = {}
        leased: dict[int, int] = {}
        for annotator_id, status, count in statuses:
            if status == "skipped":
                skips[annotator_id] = int(count)
            elif status == "leased":
                leased[annotator_id] = int(count)
        return [
            AnnotatorActivity(
                account, int(judgments.get(account.id, 0)), skips.get(account.id, 0), leased.get(account.id, 0)
            )
            for account in accounts
        ]

    def studio_judgments(self) -> list[StudioJudgmentRow]:
        """Every judgment made in the studio or through its API, oldest first."""
        with self._transaction() as session:
            rows = session.execute(
                select(
                    Judgment.id,
                    Judgment.annotator_id,
                    Judgment.comparison_id,
                    Comparison.kind,
                    Comparison.round,
                    Judgment.answer,
                    Comparison.gold,
                    Judgment.duration_ms,
                    Judgment.created_at,
                    Comparison.purpose,
                )
                .join(Comparison, Comparison.id == Judgment.comparison_id)
                .where(Judgment.source.in_(STUDIO_SOURCES))
                .order_by(Judgment.id)
            ).all()
        return [
            StudioJudgmentRow(
                row.id,
                row.annotator_id,
                row.comparison_id,
                row.kind,
                row.round,
                row.answer,
                gold_value(row.gold),
                row.duration_ms,
                aware(row.created_at),  # type: ignore[arg-type]
                row.purpose,
            )
            for row in rows
        ]

    def judgment_counts_by_comparison(self) -> dict[int, tuple[int, int]]:
        """comparison id -> (judgments, overlap): for checking that nothing went over its overlap."""
        with self._transaction() as session:
            rows = session.execute(
                select(Comparison.id, Comparison.overlap, func.count(Judgment.id))
                .outerjoin(Judgment, Judgment.comparison_id == Comparison.id)
                .group_by(Comparison.id, Comparison.overlap)
            ).all()
            return {int(cid): (int(count), int(overlap)) for cid, overlap, count in rows}

    def judgment_watermark(self) -> tuple[int, int]:
        """(judgments, highest judgment id): changes whenever a judgment is added, for caches of figures over them."""
        with self._transaction() as session:
            count, highest = session.execute(select(func.count(Judgment.id), func.max(Judgment.id))).one()
            return int(count or 0), int(highest or 0)

    def judgment_keys(self, annotator_id: int | None = None) -> list[str]:
        """Idempotency keys of studio judgments as the client gave them (the annotator prefix removed)."""
        with self._transaction() as session:
            query = select(Judgment.idempotency_key).where(Judgment.source.in_(STUDIO_SOURCES))
            if annotator_id is not None:
                query = query.where(Judgment.annotator_id == annotator_id)
            return [key.split(":", 1)[1] for key in session.scalars(query)]
