"""Gold items: comparisons whose right answer an admin set, to score annotators with.

A part of the `Store` gateway. A gold item is leased to each annotator at most once and ignores overlap,
so setting an answer also reopens a completed comparison; a closed one is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from apprentice.errors import ApprenticeError
from apprentice.store.assignments import AssignmentQueries
from apprentice.store.studio_records import IS_GOLD, gold_value
from apprentice.store.tables import Comparison, ComparisonMember, Prompt, Response


@dataclass(frozen=True)
class ComparisonShape:
    """What an answer to a comparison must fit: its kind and how many responses it has (canonical order)."""

    comparison_id: int
    kind: str
    size: int
    status: str
    gold: dict[str, Any] | None


@dataclass(frozen=True)
class ComparisonView:
    """A comparison in canonical order, as an admin sees it to set its answer."""

    shape: ComparisonShape
    prompt: str
    responses: list[str]


class GoldAnswers(AssignmentQueries):
    def comparison_shapes(self, comparison_ids: Iterable[int]) -> dict[int, ComparisonShape]:
        """Kind, size, status and gold answer of each of these comparisons that exists."""
        wanted = sorted(set(comparison_ids))
        shapes: dict[int, ComparisonShape] = {}
        with self._transaction() as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                size = (
                    select(func.count())
                    .where(ComparisonMember.comparison_id == Comparison.id)
                    .correlate(Comparison)
                    .scalar_subquery()
                )
                rows = session.execute(
                    select(
                        Comparison.id, Comparison.kind, Comparison.status, Comparison.gold, size.label("size")
                    ).where(Comparison.id.in_(chunk))
                ).all()
                for row in rows:
                    shapes[int(row.id)] = ComparisonShape(
                        int(row.id), row.kind, int(row.size), row.status, gold_value(row.gold)
                    )
        return shapes

    def comparison_view(self, comparison_id: int) -> ComparisonView | None:
        shape = self.comparison_shapes([comparison_id]).get(comparison_id)
        if shape is None:
            return None
        with self._transaction() as session:
            prompt = session.scalar(
                select(Prompt.text)
                .join(Comparison, Comparison.prompt_id == Prompt.id)
                .where(Comparison.id == comparison_id)
            )
            texts = session.scalars(
                select(Response.text)
                .join(ComparisonMember, ComparisonMember.response_id == Response.id)
                .where(ComparisonMember.comparison_id == comparison_id)
                .order_by(ComparisonMember.position)
            ).all()
        return ComparisonView(shape, prompt or "", list(texts))

    def gold_candidates(self, *, limit: int = 20, before_id: int | None = None) -> list[tuple[int, str, str, str]]:
        """Comparisons without a known answer, newest first: (id, kind, status, prompt text)."""
        query = select(Comparison.id, Comparison.kind, Comparison.status, Prompt.text).join(
            Prompt, Prompt.id == Comparison.prompt_id
        )
        query = query.where(~IS_GOLD, Comparison.status != "closed")
        if before_id is not None:
            query = query.where(Comparison.id < before_id)
        with self._transaction() as session:
            rows = session.execute(query.order_by(Comparison.id.desc()).limit(limit)).all()
        return [(int(row.id), row.kind, row.status, row.text) for row in rows]

    def gold_items(self) -> list[ComparisonShape]:
        """Every comparison with a known answer."""
        with self._transaction() as session:
            ids = session.scalars(select(Comparison.id).where(IS_GOLD).order_by(Comparison.id)).all()
        shapes = self.comparison_shapes(ids)
        return [shapes[comparison_id] for comparison_id in ids if comparison_id in shapes]

    def set_gold_answers(self, answers: Mapping[int, dict[str, Any] | None]) -> None:
        """Set (or with None, clear) the known answers of these comparisons, all in one transaction.

        Answers are canonical (see `Judgment`); the caller checks them against `comparison_shapes`.
        """
        shapes = self.comparison_shapes(answers)
        missing = sorted(set(answers) - set(shapes))
        if missing:
            raise ApprenticeError(f"no comparison with id {', '.join(map(str, missing))}")
        closed = sorted(cid for cid, answer in answers.items() if answer is not None and shapes[cid].status == "closed")
        if closed:
            raise ApprenticeError(f"comparison {', '.join(map(str, closed))} is closed; it cannot become a gold item")
        with self._write_transaction() as session:
            for comparison_id, answer in answers.items():
                values: dict[str, Any] = {"gold": answer}
                if answer is not None:
                    values["status"] = "open"  # gold items are drawn from open comparisons
                session.execute(update(Comparison).where(Comparison.id == comparison_id).values(**values))
        # The leasing code caches what a comparison shows, its gold answer included.
        cache: dict[int, Any] = self.__dict__.get("_content_cache", {})
        for comparison_id in answers:
            cache.pop(comparison_id, None)
