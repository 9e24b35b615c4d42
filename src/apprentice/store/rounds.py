"""Store queries for the loop: rounds, the step each has reached, held-out prompts.

A part of the `Store` gateway (mixed into it); only the store package touches the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from apprentice.errors import ApprenticeError
from apprentice.store.base import StoreBase
from apprentice.store.tables import (
    Annotator,
    Comparison,
    ComparisonMember,
    Judgment,
    LoopRound,
    Policy,
    Prompt,
    Response,
    utc_now,
)

LOOP_STEPS = ("generate", "collect", "quality", "reward", "policy", "evaluate", "done")


@dataclass(frozen=True)
class RoundState:
    number: int
    step: str
    policy_id: int
    policy_name: str
    policy_path: str | None
    new_policy_id: int | None
    outputs: dict[str, Any]


class RoundQueries(StoreBase):
    """Rounds of the loop, each advanced one step at a time in its own transaction."""

    def _round_state(self, session: Any, row: LoopRound) -> RoundState:
        policy = session.get(Policy, row.policy_id)
        return RoundState(
            number=row.number,
            step=row.step,
            policy_id=row.policy_id,
            policy_name=policy.name,
            policy_path=policy.model_path,
            new_policy_id=row.new_policy_id,
            outputs=dict(row.outputs or {}),
        )

    def rounds(self) -> list[RoundState]:
        with self._transaction() as session:
            rows = session.scalars(select(LoopRound).order_by(LoopRound.number))
            return [self._round_state(session, row) for row in rows]

    def start_round(self, number: int, policy_id: int) -> RoundState:
        with self._transaction() as session:
            existing = session.scalar(select(LoopRound).where(LoopRound.number == number))
            if existing is not None:
                return self._round_state(session, existing)
            row = LoopRound(number=number, policy_id=policy_id, step="generate", outputs={})
            session.add(row)
            session.flush()
            return self._round_state(session, row)

    def finish_step(
        self, number: int, step: str, output: dict[str, Any], *, new_policy_id: int | None = None
    ) -> RoundState:
        """Record what `step` produced and move the round to the next step, in one transaction."""
        if step not in LOOP_STEPS[:-1]:
            raise ApprenticeError(f"unknown loop step {step!r}")
        with self._transaction() as session:
            row = session.scalar(select(LoopRound).where(LoopRound.number == number))
            if row is None:
                raise ApprenticeError(f"no round {number}")
            if row.step != step:
                raise ApprenticeError(f"round {number} is at step {row.step!r}, not {step!r}")
            row.outputs = {**(row.outputs or {}), step: output}
            row.step = LOOP_STEPS[LOOP_STEPS.index(step) + 1]
            if new_policy_id is not None:
                row.new_policy_id = new_policy_id
            row.updated_at = utc_now()
            session.flush()
            return self._round_state(session, row)

    def hold_out_prompts(self, prompt_ids: Sequence[int]) -> None:
        with self._transaction() as session:
            session.execute(update(Prompt).where(Prompt.id.in_(list(prompt_ids))).values(held_out=True))

    def round_judgment_count(self, number: int) -> int:
        """Judgments made by people or simulated annotators on this round's comparisons.

        Not imports, and not machine judges' (annotators of kind `ai`): the quota is people's labels.
        """
        with self._transaction() as session:
            return int(
                session.scalar(
                    select(func.count(Judgment.id))
                    .join(Comparison, Judgment.comparison_id == Comparison.id)
                    .join(Annotator, Judgment.annotator_id == Annotator.id)
                    .where(Comparison.round == number, Judgment.source != "imported", Annotator.kind != "ai")
                )
                or 0
            )

    def open_comparison_ids(self, number: int) -> list[int]:
        with self._transaction() as session:
            return list(
                # Attention checks are not for selection: their answer is known and obvious.
                session.scalars(
                    select(Comparison.id).where(
                        Comparison.round == number, Comparison.status == "open", Comparison.purpose.is_(None)
                    )
                )
            )

    def policy_by_id(self, policy_id: int) -> Policy:
        with self._transaction() as session:
            policy = session.get(Policy, policy_id)
            if policy is None:
                raise ApprenticeError(f"no policy with id {policy_id}")
            return policy

    def round_comparison_count(self, number: int) -> int:
        with self._transaction() as session:
            return int(session.scalar(select(func.count(Comparison.id)).where(Comparison.round == number)) or 0)

    def comparison_contents(self, comparison_ids: Sequence[int]) -> dict[int, tuple[list[Any], list[str]]]:
        """{comparison id: (prompt messages, response texts in canonical order)}."""
        result: dict[int, tuple[list[Any], list[str]]] = {}
        with self._transaction() as session:
            for start in range(0, len(comparison_ids), 500):
                chunk = list(comparison_ids[start : start + 500])
                rows = session.execute(
                    select(Comparison.id, Prompt.messages, ComparisonMember.position, Response.text)
                    .join(Prompt, Comparison.prompt_id == Prompt.id)
                    .join(ComparisonMember, ComparisonMember.comparison_id == Comparison.id)
                    .join(Response, ComparisonMember.response_id == Response.id)
                    .where(Comparison.id.in_(chunk))
                    .order_by(Comparison.id, ComparisonMember.position)
                )
                for comparison_id, messages, _, text in rows:
                    result.setdefault(comparison_id, (messages, []))[1].append(text)
        return result
