"""Store queries for feedback quality: judgments with everything the statistics need.

A part of the `Store` gateway (mixed into it); only the store package touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, literal, select

from apprentice.store.base import StoreBase
from apprentice.store.judges import AI_KIND
from apprentice.store.tables import (
    Annotator,
    Comparison,
    ComparisonMember,
    Judgment,
    JudgmentWeight,
    Prompt,
    Response,
    Run,
)


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
    rationale: str | None = None
    purpose: str | None = None  # "attention" for an attention check


class QualityQueries(StoreBase):
    """Reads for agreement, reliability and bias analyses, and the write of the weights they produce."""

    def quality_judgments(
        self,
        *,
        kinds: Sequence[str] | None = None,
        include_imported: bool = False,
        annotator_kinds: Sequence[str] | None = None,
    ) -> list[QualityJudgment]:
        """Every judgment with its display order, timing, annotator, prompt category, lengths and gold, oldest first.

        Imported judgments (one per pair, no annotator behind them) are left out unless asked for, and so are
        machine judges' (annotators of kind `ai`): people's figures never mix them in. `annotator_kinds`
        names the kinds wanted instead (["ai"] for the judges' own).
        """
        with self._transaction() as session:
            # Columns, not ORM objects: building ~4 objects per judgment took 2.6 s at 14,000 judgments.
            query = (
                select(
                    Judgment.id,
                    Judgment.comparison_id,
                    Comparison.kind,
                    Annotator.name,
                    Judgment.answer,
                    Judgment.order_shown,
                    Judgment.duration_ms,
                    Comparison.prompt_id,
                    Prompt.category,
                    Comparison.round,
                    Comparison.gold,
                    Judgment.created_at,
                    Judgment.source,
                    Judgment.weight,
                    Annotator.kind,
                    Judgment.rationale,
                    Comparison.purpose,
                )
                .join(Comparison, Judgment.comparison_id == Comparison.id)
                .join(Prompt, Comparison.prompt_id == Prompt.id)
                .join(Annotator, Judgment.annotator_id == Annotator.id)
            )
            if kinds is not None:
                query = query.where(Comparison.kind.in_(list(kinds)))
            if not include_imported:
                query = query.where(Judgment.source != "imported")
            if annotator_kinds is None:
                query = query.where(Annotator.kind != AI_KIND)
            else:
                query = query.where(Annotator.kind.in_(list(annotator_kinds)))
            rows = session.execute(query.order_by(Judgment.id)).all()
            # The members of the same comparisons, selected by a subquery rather than a list of ids, whose
            # length SQLite caps (32,766 bound values in a statement by default, 250,000 in Debian's build).
            judged = query.with_only_columns(Judgment.comparison_id).distinct().scalar_subquery()
            members: dict[int, list[tuple[int, int]]] = {}
            for comparison_id, response_id, length in session.execute(
                select(ComparisonMember.comparison_id, ComparisonMember.response_id, func.length(Response.text))
                .join(Response, ComparisonMember.response_id == Response.id)
                .where(ComparisonMember.comparison_id.in_(judged))
                .order_by(ComparisonMember.comparison_id, ComparisonMember.position)
            ):
                members.setdefault(comparison_id, []).append((response_id, int(length or 0)))
            return [
                QualityJudgment(
                    judgment_id=judgment_id,
                    comparison_id=comparison_id,
                    kind=kind,
                    annotator=annotator_name,
                    answer=answer,
                    order_shown=order_shown,
                    response_ids=[response_id for response_id, _ in members.get(comparison_id, [])],
                    response_lengths=[length for _, length in members.get(comparison_id, [])],
                    duration_ms=duration_ms,
                    prompt_id=prompt_id,
                    category=category,
                    round=round_number,
                    gold=gold,
                    created_at=created_at,
                    source=source,
                    weight=weight,
                    annotator_kind=annotator_kind,
                    rationale=rationale,
                    purpose=purpose,
                )
                for (
                    judgment_id,
                    comparison_id,
                    kind,
                    annotator_name,
                    answer,
                    order_shown,
                    duration_ms,
                    prompt_id,
                    category,
                    round_number,
                    gold,
                    created_at,
                    source,
                    weight,
                    annotator_kind,
                    rationale,
                    purpose,
                ) in rows
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

    def set_judgment_weights(self, weights: Mapping[int, float], *, run_id: int | None = None) -> int:
        """Store a training weight per judgment (from the quality correction) in one transaction.

        The weights become the current ones (`judgments.weight`); with `run_id` (a run of kind `quality`)
        every judgment's current weight is also kept under that run, which later runs leave as it is.
        Returns the number of judgments updated; an id that is not a judgment is an error and nothing is
        written.
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
            if run_id is not None:
                session.flush()
                # Every judgment's weight as it now stands, not only those changed: a reward run that names
                # this run then finds all the weights it trained with, whichever run set each one.
                session.execute(delete(JudgmentWeight).where(JudgmentWeight.run_id == run_id))
                session.execute(
                    insert(JudgmentWeight).from_select(
                        ["run_id", "judgment_id", "weight"],
                        select(literal(run_id), Judgment.id, Judgment.weight),
                    )
                )
            return len(ids)

    def weights_of_run(self, run_id: int) -> dict[int, float]:
        """The weight per judgment id that the quality run `run_id` set (empty for a run that set none)."""
        with self._transaction() as session:
            rows = session.execute(
                select(JudgmentWeight.judgment_id, JudgmentWeight.weight).where(JudgmentWeight.run_id == run_id)
            ).all()
            return {judgment_id: weight for judgment_id, weight in rows}

    def current_weights_run(self) -> int | None:
        """The id of the newest finished quality run: the one whose weights `judgments.weight` holds, None
        while no quality run has set any (every judgment then weighs 1)."""
        with self._transaction() as session:
            return session.scalar(select(func.max(Run.id)).where(Run.kind == "quality", Run.status == "done"))
