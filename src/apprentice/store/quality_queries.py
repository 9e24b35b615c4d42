"""Store queries for feedback quality: judgments with everything the statistics need.

A part of the `Store` gateway (mixed into it); only the store package touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from apprentice.store.base import StoreBase
from apprentice.store.tables import Annotator, Comparison, ComparisonMember, Judgment, Prompt, Response


@dataclass(frozen=True)
class QualityJudgment:
    """One judgment as the quality statistics see it (answers in canonical positions, as stored).

    `order_shown` lists canonical positions in display order (position `order_shown[0]` was on the
    left); None when unknown (imported data). `response_lengths` are in characters, canonical order.
    """

    judgment_id: int
    comparison_id: int
    kind: str  # pair | ranking | rating
    annotator: str
    answer: dict[str, Any]
    order_shown: list[int] | None
    response_ids: list[int]
    response_lengths: list[int]
    duration_ms: int | None = None
    prompt_id: int = 0
    category: str | None = None
    round: int = 0
    gold: dict[str, Any] | None = None
    created_at: datetime | None = None
    source: str = "studio"
    weight: float = 1.0
    annotator_kind: str = "human"


class QualityQueries(StoreBase):
    """Reads for agreement, reliability and bias analyses, and the write of the weights they produce."""

    def quality_judgments(
        self, *, kinds: Sequence[str] | None = None, include_imported: bool = False
    ) -> list[QualityJudgment]:
        """Every judgment with its display order, timing, annotator, prompt category, lengths and gold, oldest first.

        Imported judgments (one per pair, no annotator behind them) are left out unless asked for.
        """
        with self._transaction() as session:
            query = (
                select(Judgment, Comparison, Prompt.category, Annotator.name, Annotator.kind)
                .join(Comparison, Judgment.comparison_id == Comparison.id)
                .join(Prompt, Comparison.prompt_id == Prompt.id)
                .join(Annotator, Judgment.annotator_id == Annotator.id)
                .order_by(Judgment.id)
            )
            if kinds is not None:
                query = query.where(Comparison.kind.in_(list(kinds)))
            if not include_imported:
                query = query.where(Judgment.source != "imported")
            rows = session.execute(query).all()
            response_ids = {member.response_id for row in rows for member in row[1].members}
            lengths: dict[int, int] = dict(
                session.execute(select(Response.id, func.length(Response.text)).where(Response.id.in_(response_ids)))
                .tuples()
                .all()
            )
            return [
                QualityJudgment(
                    judgment_id=judgment.id,
                    comparison_id=comparison.id,
                    kind=comparison.kind,
                    annotator=annotator_name,
                    answer=judgment.answer,
                    order_shown=judgment.order_shown,
                    response_ids=[member.response_id for member in comparison.members],
                    response_lengths=[int(lengths[member.response_id] or 0) for member in comparison.members],
                    duration_ms=judgment.duration_ms,
                    prompt_id=comparison.prompt_id,
                    category=category,
                    round=comparison.round,
                    gold=comparison.gold,
                    created_at=judgment.created_at,
                    source=judgment.source,
                    weight=judgment.weight,
                    annotator_kind=annotator_kind,
                )
                for judgment, comparison, category, annotator_name, annotator_kind in rows
            ]

    def prompt_categories(self) -> dict[str | None, int]:
        """How many prompts each category has (None: uncategorised), so coverage can name empty topics."""
        with self._transaction() as session:
            rows = session.execute(select(Prompt.category, func.count(Prompt.id)).group_by(Prompt.category)).all()
            return {category: int(count) for category, count in rows}

    def comparison_members(self, comparison_ids: Sequence[int]) -> dict[int, list[int]]:
        """Response ids in canonical order for each comparison asked for."""
        with self._transaction() as session:
            rows = session.execute(
                select(ComparisonMember.comparison_id, ComparisonMember.response_id)
                .where(ComparisonMember.comparison_id.in_(list(comparison_ids)))
                .order_by(ComparisonMember.comparison_id, ComparisonMember.position)
            ).all()
            members: dict[int, list[int]] = {}
            for comparison_id, response_id in rows:
                members.setdefault(comparison_id, []).append(response_id)
            return members

    def set_judgment_weights(self, weights: Mapping[int, float]) -> int:
        """Store a training weight per judgment (from the quality correction) in one transaction.

        Returns the number of judgments updated; an id that is not a judgment is an error and nothing is written.
        """
        from apprentice.errors import ApprenticeError

        with self._transaction() as session:
            ids = list(weights)
            found = set(session.scalars(select(Judgment.id).where(Judgment.id.in_(ids))))
            missing = [judgment_id for judgment_id in ids if judgment_id not in found]
            if missing:
                raise ApprenticeError(f"no judgment with id {missing[0]} (weights not written)")
            for judgment in session.scalars(select(Judgment).where(Judgment.id.in_(ids))):
                judgment.weight = float(weights[judgment.id])
            return len(ids)
