"""Records that the studio's store queries hand out: accounts, tasks, outcomes, progress; and their errors.

A part of the store package: plain frozen dataclasses, no database access.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, and_, cast

from apprentice.errors import ApprenticeError
from apprentice.store.tables import Annotator, Comparison

STUDIO_SOURCES = ("studio", "api")  # judgments made by people in the studio or through its API


class AssignmentNotFound(ApprenticeError):
    """The assignment does not exist or belongs to someone else (the two are not told apart)."""


class AssignmentConflict(ApprenticeError):
    """The assignment can no longer take this action (already answered, skipped, or its slot is gone)."""


@dataclass(frozen=True)
class AnnotatorAccount:
    id: int
    name: str
    role: str
    kind: str
    disabled: bool
    session_version: int
    credential_hash: str | None
    signin_hash: str | None
    signin_expires_at: datetime | None
    credential_check: str | None = None
    signin_check: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Task:
    """A leased assignment as its annotator sees it: responses in display order, nothing about other answers."""

    assignment_id: int
    comparison_id: int
    kind: str
    round: int
    prompt_messages: list[dict[str, str]]
    responses: list[str]  # display order
    order_shown: list[int]  # canonical position of each displayed response
    lease_expires_at: datetime
    is_gold: bool
    cut_off: list[bool] = field(default_factory=list)  # display order: stopped at the token limit, not at EOS

    def shown(self) -> list[tuple[str, bool]]:
        """Each displayed response with whether it was cut off."""
        return [(text, bool(self.cut_off and self.cut_off[index])) for index, text in enumerate(self.responses)]


@dataclass(frozen=True)
class SubmitOutcome:
    judgment_id: int
    created: bool  # False when the idempotency key was seen before: the stored judgment is returned
    kind: str
    answer: dict[str, Any]  # canonical positions
    gold: dict[str, Any] | None
    next_task: Task | None = None  # when the submission asked for the next lease too


@dataclass(frozen=True)
class RecordedJudgment:
    """A judgment `record_judgment` stored (or found stored under its idempotency key)."""

    id: int


@dataclass(frozen=True)
class LeaseRequest:
    """How to lease: for how long, how often to draw a gold item or an attention check, and the randomness.

    `only_gold`: nothing but gold items (an annotator taking the qualification test).
    """

    lease_seconds: float
    gold_rate: float = 0.0
    rng: random.Random | None = None
    attention_rate: float = 0.0
    only_gold: bool = False

    def keywords(self) -> dict[str, Any]:
        return {
            "lease_seconds": self.lease_seconds,
            "gold_rate": self.gold_rate,
            "rng": self.rng,
            "attention_rate": self.attention_rate,
            "only_gold": self.only_gold,
        }


@dataclass(frozen=True)
class Content:
    """What a comparison is and shows; none of it changes once the comparison exists."""

    kind: str
    round: int
    messages: list[dict[str, str]]
    texts: list[str]  # canonical order
    is_gold: bool
    gold: dict[str, Any] | None
    overlap: int
    cut_off: list[bool] = field(default_factory=list)  # canonical order


@dataclass(frozen=True)
class AnnotatorProgress:
    judged: int
    skipped: int
    left: int  # comparisons this annotator could still be given


@dataclass(frozen=True)
class StudioJudgmentRow:
    """One studio judgment with what the dashboard needs."""

    judgment_id: int
    annotator_id: int
    comparison_id: int
    kind: str
    round: int
    answer: dict[str, Any]
    gold: dict[str, Any] | None
    duration_ms: int | None
    created_at: datetime
    purpose: str | None = None  # "attention" for an attention check


@dataclass(frozen=True)
class RoundProgress:
    round: int
    comparisons: int
    complete: int
    judgments_wanted: int
    judgments: int


@dataclass(frozen=True)
class AnnotatorActivity:
    account: AnnotatorAccount
    judgments: int
    skips: int
    leased: int


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without a zone; everything the store writes is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def gold_value(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


# JSON None is stored as the JSON text 'null' by the ORM, so "no gold" is SQL NULL or that text.
IS_GOLD = and_(Comparison.gold.is_not(None), cast(Comparison.gold, String) != "null")

ACCOUNT_COLUMNS = (
    Annotator.id,
    Annotator.name,
    Annotator.role,
    Annotator.kind,
    Annotator.disabled,
    Annotator.session_version,
    Annotator.credential_hash,
    Annotator.signin_hash,
    Annotator.signin_expires_at,
    Annotator.credential_check,
    Annotator.signin_check,
)


def account_from_row(row: Any) -> AnnotatorAccount:
    """An AnnotatorAccount from a row selected with ACCOUNT_COLUMNS."""
    return AnnotatorAccount(
        id=row.id,
        name=row.name,
        role=row.role,
        kind=row.kind,
        disabled=bool(row.disabled),
        session_version=int(row.session_version or 0),
        credential_hash=row.credential_hash,
        signin_hash=row.signin_hash,
        signin_expires_at=aware(row.signin_expires_at),
        credential_check=row.credential_check,
        signin_check=row.signin_check,
    )
