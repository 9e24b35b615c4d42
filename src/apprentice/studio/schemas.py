"""The JSON API's request and response bodies (they are also its OpenAPI schema)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from apprentice.store.assignments import AnnotatorProgress, Task
from apprentice.studio.answers import CRITERIA

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _one_line(text: str) -> str:
    """Control characters (newlines, NUL, which PostgreSQL refuses in text) become single spaces."""
    return _CONTROL.sub(" ", text).strip()


OneLine = Annotated[str, AfterValidator(_one_line)]
Score = Annotated[int, Field(ge=1, le=7)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(BaseModel):
    role: str
    content: str


class ShownResponse(BaseModel):
    label: str = Field(description="How the response is named on screen: A, B, C, ...")
    text: str
    cut_off: bool = Field(False, description="The model stopped at its token limit: the response is unfinished.")


class TaskOut(BaseModel):
    """A task leased to you; answer it with the responses in the order given here."""

    assignment_id: int
    kind: Literal["pair", "ranking", "rating"]
    prompt: list[Message]
    responses: list[ShownResponse]
    criteria: list[str] = Field(description="Optional per-criterion scores a rating may carry.")
    lease_expires_at: datetime

    @classmethod
    def of(cls, task: Task, *, criteria: bool) -> TaskOut:
        return cls(
            assignment_id=task.assignment_id,
            kind=task.kind,
            prompt=[Message(role=m.get("role", "user"), content=m.get("content", "")) for m in task.prompt_messages],
            responses=[
                ShownResponse(label=chr(ord("A") + i), text=text, cut_off=cut_off)
                for i, (text, cut_off) in enumerate(task.shown())
            ],
            criteria=list(CRITERIA) if criteria and task.kind == "rating" else [],
            lease_expires_at=task.lease_expires_at,
        )


class ProgressOut(BaseModel):
    judged: int
    skipped: int
    left: int

    @classmethod
    def of(cls, progress: AnnotatorProgress) -> ProgressOut:
        return cls(judged=progress.judged, skipped=progress.skipped, left=progress.left)


class NextTaskOut(BaseModel):
    task: TaskOut | None = Field(description="null when nothing is left for you.")
    progress: ProgressOut | None = None


class AnswerIn(_Body):
    """Give the field that fits the task's kind, about the responses in the order they were shown."""

    choice: Literal["A", "B", "tie", "both_bad"] | None = Field(None, description="pair: A, B, tie or both_bad.")
    ranks: list[Annotated[int, Field(ge=1, le=64)]] | None = Field(
        None, max_length=64, description="ranking: the rank of each shown response, 1 is best; equal ranks tie."
    )
    score: Score | None = Field(None, description="rating: 1 (very poor) to 7 (excellent).")
    criteria: dict[Literal["helpful", "honest", "harmless"], Score] | None = Field(
        None, description="rating: optional per-criterion scores."
    )

    def display(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class JudgmentIn(_Body):
    answer: AnswerIn
    idempotency_key: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Any unique string per answer: a retried request with the same key is stored once.",
    )
    rationale: OneLine | None = Field(None, max_length=500, description="One line: why.")
    duration_ms: int | None = Field(None, ge=0, le=86_400_000, description="Time spent on the task.")
    include_next: bool = Field(False, description="Lease and return your next task in the same call.")


class JudgmentOut(BaseModel):
    judgment_id: int
    created: bool = Field(description="false when this idempotency key was stored before (a retry).")
    gold_correct: bool | None = Field(None, description="Only when the project gives feedback on gold items.")
    next: TaskOut | None = None


class SkipIn(_Body):
    reason: OneLine = Field(min_length=1, max_length=500, description="Why you cannot judge this one.")
    include_next: bool = False


class SkipOut(BaseModel):
    skipped: bool
    next: TaskOut | None = None


class UndoOut(BaseModel):
    undone: bool = Field(description="false when there is nothing to undo within the undo window.")
    assignment_id: int | None = Field(None, description="The assignment you hold again, to answer anew.")
