"""Store queries for machine judges: each is an annotator of kind `ai` plus the model it asks.

A part of the `Store` gateway (mixed into it); only the store package touches the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update

from apprentice.errors import ApprenticeError
from apprentice.store.base import StoreBase
from apprentice.store.tables import Annotator, Comparison, Judge, Judgment

AI_KIND = "ai"


@dataclass(frozen=True)
class JudgeRecord:
    name: str
    annotator_id: int
    backend: str  # local | endpoint
    model: str
    url: str | None
    api_key_env: str | None
    disabled: bool


class JudgeQueries(StoreBase):
    """Machine judges: added once, listed, looked up by name."""

    def add_judge(
        self, name: str, *, backend: str, model: str, url: str | None = None, api_key_env: str | None = None
    ) -> JudgeRecord:
        if backend not in ("local", "endpoint"):
            raise ApprenticeError(f"a judge's backend is local or endpoint, not {backend!r}")
        with self._transaction() as session:
            if session.scalar(select(Annotator.id).where(Annotator.name == name)) is not None:
                raise ApprenticeError(f"there is already an annotator or judge named {name!r}")
            annotator = Annotator(name=name, kind=AI_KIND, role="annotator")
            session.add(annotator)
            session.flush()
            session.add(
                Judge(annotator_id=annotator.id, backend=backend, model=model, url=url, api_key_env=api_key_env)
            )
            return JudgeRecord(name, annotator.id, backend, model, url, api_key_env, disabled=False)

    def judges(self) -> list[JudgeRecord]:
        with self._transaction() as session:
            rows = session.execute(
                select(
                    Annotator.name,
                    Annotator.id,
                    Judge.backend,
                    Judge.model,
                    Judge.url,
                    Judge.api_key_env,
                    Annotator.disabled,
                )
                .join(Judge, Judge.annotator_id == Annotator.id)
                .order_by(Annotator.name)
            ).all()
        return [JudgeRecord(*row) for row in rows]

    def judge(self, name: str) -> JudgeRecord:
        for record in self.judges():
            if record.name == name:
                return record
        known = ", ".join(record.name for record in self.judges()) or "none yet (apprentice judges add)"
        raise ApprenticeError(f"no judge named {name!r}; judges: {known}")

    def judge_labels(self, name: str, comparison_ids: Sequence[int]) -> dict[int, str | None]:
        """{comparison id: the judge's rationale} for the comparisons among `comparison_ids` it labelled."""
        with self._transaction() as session:
            rows = session.execute(
                select(Judgment.comparison_id, Judgment.rationale)
                .join(Annotator, Judgment.annotator_id == Annotator.id)
                .where(Annotator.name == name, Judgment.comparison_id.in_(list(comparison_ids)))
            ).all()
        return {int(comparison_id): rationale for comparison_id, rationale in rows}

    def reopen_for_people(self, comparison_ids: Sequence[int]) -> None:
        """Want one judgment more on each comparison, and offer it again: a judge's label did not settle it."""
        with self._transaction() as session:
            session.execute(
                update(Comparison)
                .where(Comparison.id.in_(list(comparison_ids)))
                .values(overlap=Comparison.overlap + 1, status="open")
            )

    def priorities_of(self, comparison_ids: Sequence[int]) -> dict[int, float]:
        with self._transaction() as session:
            rows = session.execute(
                select(Comparison.id, Comparison.priority).where(Comparison.id.in_(list(comparison_ids)))
            ).all()
        return {int(comparison_id): float(priority) for comparison_id, priority in rows}

    def settle(self, comparison_ids: Sequence[int]) -> None:
        """Close comparisons that a confident judge's label settled: the studio offers them to no one."""
        with self._transaction() as session:
            session.execute(update(Comparison).where(Comparison.id.in_(list(comparison_ids))).values(status="complete"))
