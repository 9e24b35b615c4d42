"""An annotator's own past judgments, and corrections of them that keep the answer they replace.

A part of the `Store` gateway. A correction puts the new answer on the judgment row, which is what training,
agreement and the dashboard read, and copies the answer it replaces into `judgment_revisions` first: nothing
an annotator said is lost, and a comparison still holds one judgment per annotator (its overlap stays right).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from apprentice.store.assignments import AssignmentQueries
from apprentice.store.studio_records import (
    IS_GOLD,
    STUDIO_SOURCES,
    AssignmentConflict,
    AssignmentNotFound,
    Task,
    aware,
    gold_value,
)
from apprentice.store.tables import Comparison, ComparisonMember, Judgment, JudgmentRevision, Prompt, Response, utc_now


@dataclass(frozen=True)
class PastJudgment:
    """One of an annotator's judgments as they gave it: the task in the order they saw it, and their answer."""

    judgment_id: int
    task: Task  # assignment_id is the judgment's assignment; the lease fields mean nothing here
    answer: dict[str, Any]  # canonical positions
    rationale: str | None
    answered_at: datetime
    corrections: int  # how many earlier answers this judgment replaced
    gold: dict[str, Any] | None


class JudgmentHistory(AssignmentQueries):
    def judgment_history(self, annotator_id: int, *, limit: int = 50, offset: int = 0) -> list[PastJudgment]:
        """This annotator's studio judgments, newest first."""
        with self._transaction() as session:
            ids = session.scalars(
                select(Judgment.id)
                .where(Judgment.annotator_id == annotator_id, Judgment.source.in_(STUDIO_SOURCES))
                .order_by(Judgment.created_at.desc(), Judgment.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
        return [self.past_judgment(annotator_id, judgment_id) for judgment_id in ids]

    def judgment_history_count(self, annotator_id: int) -> int:
        with self._transaction() as session:
            return int(
                session.scalar(
                    select(func.count()).where(
                        Judgment.annotator_id == annotator_id, Judgment.source.in_(STUDIO_SOURCES)
                    )
                )
                or 0
            )

    def past_judgment(self, annotator_id: int, judgment_id: int) -> PastJudgment:
        """One of this annotator's studio judgments; anyone else's is 'not found'."""
        with self._transaction() as session:
            row = session.execute(
                select(
                    Judgment.annotator_id,
                    Judgment.assignment_id,
                    Judgment.comparison_id,
                    Judgment.answer,
                    Judgment.order_shown,
                    Judgment.rationale,
                    Judgment.created_at,
                    Judgment.source,
                    Comparison.kind,
                    Comparison.round,
                    Comparison.gold,
                    IS_GOLD.label("is_gold"),
                    Prompt.messages,
                )
                .join(Comparison, Comparison.id == Judgment.comparison_id)
                .join(Prompt, Prompt.id == Comparison.prompt_id)
                .where(Judgment.id == judgment_id)
            ).first()
            if row is None or row.annotator_id != annotator_id or row.source not in STUDIO_SOURCES:
                raise AssignmentNotFound(f"no judgment {judgment_id} of yours")
            members = session.execute(
                select(Response.text, Response.finished)
                .join(ComparisonMember, ComparisonMember.response_id == Response.id)
                .where(ComparisonMember.comparison_id == row.comparison_id)
                .order_by(ComparisonMember.position)
            ).all()
            corrections = int(
                session.scalar(select(func.count()).where(JudgmentRevision.judgment_id == judgment_id)) or 0
            )
        order = [int(position) for position in (row.order_shown or range(len(members)))]
        task = Task(
            assignment_id=int(row.assignment_id or 0),
            comparison_id=int(row.comparison_id),
            kind=row.kind,
            round=int(row.round),
            prompt_messages=row.messages,
            responses=[members[position].text for position in order],
            order_shown=order,
            lease_expires_at=aware(row.created_at),  # type: ignore[arg-type]
            is_gold=bool(row.is_gold),
            cut_off=[members[position].finished is False for position in order],
        )
        return PastJudgment(
            judgment_id=judgment_id,
            task=task,
            answer=row.answer,
            rationale=row.rationale,
            answered_at=aware(row.created_at),  # type: ignore[arg-type]
            corrections=corrections,
            gold=gold_value(row.gold),
        )

    def correct_judgment(
        self,
        annotator_id: int,
        judgment_id: int,
        *,
        canonical_answer: Callable[[str, list[int]], dict[str, Any]],
        rationale: str | None,
        source: str,
        allow_gold: bool = True,
    ) -> PastJudgment:
        """Replace this annotator's answer with a new one; the replaced answer is kept as a revision."""
        past = self.past_judgment(annotator_id, judgment_id)
        if past.gold is not None and not allow_gold:
            raise AssignmentConflict("answers to check items cannot be changed once their answer was shown")
        answer = canonical_answer(past.task.kind, past.task.order_shown)
        now = utc_now()
        with self._write_transaction() as session:
            current = session.execute(
                select(Judgment.answer, Judgment.rationale, Judgment.duration_ms, Judgment.source, Judgment.created_at)
                .where(Judgment.id == judgment_id, Judgment.annotator_id == annotator_id)
                .with_for_update()
            ).first()
            if current is None:
                raise AssignmentNotFound(f"no judgment {judgment_id} of yours")  # undone meanwhile
            given = session.scalar(
                select(func.max(JudgmentRevision.replaced_at)).where(JudgmentRevision.judgment_id == judgment_id)
            )
            session.add(
                JudgmentRevision(
                    judgment_id=judgment_id,
                    answer=current.answer,
                    rationale=current.rationale,
                    duration_ms=current.duration_ms,
                    source=current.source,
                    answered_at=given or current.created_at,
                    replaced_at=now,
                )
            )
            session.execute(
                update(Judgment)
                .where(Judgment.id == judgment_id)
                .values(answer=answer, rationale=rationale, source=source)
            )
        return self.past_judgment(annotator_id, judgment_id)

    def judgment_revisions(self, judgment_id: int) -> list[dict[str, Any]]:
        """The answers a judgment replaced, oldest first (for audits and tests)."""
        with self._transaction() as session:
            rows = session.execute(
                select(JudgmentRevision.answer, JudgmentRevision.rationale, JudgmentRevision.answered_at)
                .where(JudgmentRevision.judgment_id == judgment_id)
                .order_by(JudgmentRevision.id)
            ).all()
        return [
            {"answer": row.answer, "rationale": row.rationale, "answered_at": aware(row.answered_at)} for row in rows
        ]
