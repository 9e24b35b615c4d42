"""Store queries for the studio: annotator credentials, assignment leasing, submissions.

A part of the `Store` gateway (mixed into it); only the store package touches the database.

Leasing rules, in one place:
- A comparison is "taken" by its judgments plus its assignments still under lease; it is offered only while
  taken < overlap, so no comparison collects more judgments than it wants. An expired lease stops counting,
  and its comparison returns to the pool.
- Nobody gets a comparison twice (one assignment row per comparison and annotator, enforced by a unique
  constraint), and skipped comparisons are not offered again to the one who skipped them.
- Gold comparisons (a known answer) ignore overlap: each annotator may meet each one once. They are drawn
  at `gold_rate` and look like any other task.
- The order of the responses is shuffled per assignment and recorded; answers are stored in canonical
  positions by the caller's conversion.

Concurrency: on SQLite every write transaction starts with BEGIN IMMEDIATE (the write lock is taken before the
first read, so a read-then-write can neither deadlock nor act on a stale read), and writers within one process
queue on a lock instead of spinning in SQLite's busy handler. On PostgreSQL a candidate comparison row is
locked (FOR UPDATE SKIP LOCKED) and its count read again in a fresh statement before it is leased.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, cast, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from apprentice.errors import ApprenticeError
from apprentice.store.base import StoreBase
from apprentice.store.tables import (
    Annotator,
    Assignment,
    Comparison,
    ComparisonMember,
    Judgment,
    Prompt,
    Response,
    utc_now,
)

STUDIO_SOURCES = ("studio", "api")
_CONTENT_CACHE_SIZE = 4096
_LEASE_ATTEMPTS = 20


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


@dataclass(frozen=True)
class SubmitOutcome:
    judgment_id: int
    created: bool  # False when the idempotency key was seen before: the stored judgment is returned
    kind: str
    answer: dict[str, Any]  # canonical positions
    gold: dict[str, Any] | None


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


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without a zone; everything the store writes is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _gold_value(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


# JSON None is stored as the JSON text 'null' by the ORM, so "no gold" is SQL NULL or that text.
_IS_GOLD = and_(Comparison.gold.is_not(None), cast(Comparison.gold, String) != "null")


class AssignmentQueries(StoreBase):
    """Leasing comparisons to annotators and recording what they submit."""

    is_sqlite: bool
    # SQLite takes one writer at a time anyway: queueing writers of this process here keeps them out of
    # SQLite's busy handler, whose growing sleeps would dominate the tail latency.
    _sqlite_write_lock = threading.Lock()
    _content_cache: dict[int, tuple[int, str, int, list[dict[str, str]], list[str]]]

    @contextmanager
    def _write_transaction(self) -> Iterator[Session]:
        if not self.is_sqlite:
            with self._sessions.begin() as session:
                yield session
            return
        with self._sqlite_write_lock, self._sessions.begin() as session:
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield session

    # -- annotators and credentials -------------------------------------------------------------

    @staticmethod
    def _account(row: Any) -> AnnotatorAccount:
        return AnnotatorAccount(
            id=row.id,
            name=row.name,
            role=row.role,
            kind=row.kind,
            disabled=bool(row.disabled),
            session_version=int(row.session_version or 0),
            credential_hash=row.credential_hash,
            signin_hash=row.signin_hash,
            signin_expires_at=_aware(row.signin_expires_at),
        )

    _ACCOUNT_COLUMNS = (
        Annotator.id,
        Annotator.name,
        Annotator.role,
        Annotator.kind,
        Annotator.disabled,
        Annotator.session_version,
        Annotator.credential_hash,
        Annotator.signin_hash,
        Annotator.signin_expires_at,
    )

    def add_studio_annotator(self, name: str, *, role: str = "annotator") -> AnnotatorAccount:
        """Create a human annotator; refuse a name that is taken."""
        if role not in ("annotator", "admin"):
            raise ApprenticeError(f"role must be 'annotator' or 'admin', not {role!r}")
        cleaned = name.strip()
        if not cleaned or len(cleaned) > 255 or ":" in cleaned:
            raise ApprenticeError(f"annotator name {name!r} must be 1-255 characters without ':'")
        with self._write_transaction() as session:
            if session.scalar(select(Annotator.id).where(Annotator.name == cleaned)) is not None:
                raise ApprenticeError(f"an annotator named {cleaned!r} exists already")
            row = Annotator(name=cleaned, role=role, kind="human")
            session.add(row)
            session.flush()
            return self._account(row)

    def annotator_account(self, *, annotator_id: int | None = None, name: str | None = None) -> AnnotatorAccount | None:
        with self._transaction() as session:
            query = select(*self._ACCOUNT_COLUMNS)
            if annotator_id is not None:
                query = query.where(Annotator.id == annotator_id)
            elif name is not None:
                query = query.where(Annotator.name == name)
            else:
                raise ValueError("give annotator_id or name")
            row = session.execute(query).first()
            return self._account(row) if row is not None else None

    def annotator_accounts(self) -> list[AnnotatorAccount]:
        """Every human annotator (imported and simulated sources are not accounts)."""
        with self._transaction() as session:
            rows = session.execute(select(*self._ACCOUNT_COLUMNS).order_by(Annotator.id)).all()
            return [self._account(row) for row in rows if row.kind == "human"]

    def set_signin_hash(self, annotator_id: int, signin_hash: str, expires_at: datetime) -> None:
        with self._write_transaction() as session:
            session.execute(
                update(Annotator)
                .where(Annotator.id == annotator_id)
                .values(signin_hash=signin_hash, signin_expires_at=expires_at)
            )

    def consume_signin(self, annotator_id: int, signin_hash: str) -> bool:
        """Use up a sign-in link: true only for the one caller that clears this exact hash while it is valid."""
        with self._write_transaction() as session:
            result = session.execute(
                update(Annotator)
                .where(
                    Annotator.id == annotator_id,
                    Annotator.signin_hash == signin_hash,
                    Annotator.signin_expires_at > utc_now(),
                    Annotator.disabled.is_(False),
                )
                .values(signin_hash=None, signin_expires_at=None)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def set_credential_hash(self, annotator_id: int, credential_hash: str | None) -> None:
        with self._write_transaction() as session:
            session.execute(
                update(Annotator).where(Annotator.id == annotator_id).values(credential_hash=credential_hash)
            )

    def set_annotator_disabled(self, name: str, disabled: bool) -> AnnotatorAccount:
        """Disable (every session and token stops at once) or enable an annotator by name."""
        with self._write_transaction() as session:
            row = session.scalar(select(Annotator).where(Annotator.name == name))
            if row is None:
                raise ApprenticeError(f"no annotator named {name!r}")
            row.disabled = disabled
            row.session_version = (row.session_version or 0) + 1
            if disabled:
                row.signin_hash = None
                row.signin_expires_at = None
                # Their leases go back to the pool now rather than when they expire.
                session.execute(
                    update(Assignment)
                    .where(Assignment.annotator_id == row.id, Assignment.status == "leased")
                    .values(status="expired")
                )
            session.flush()
            return self._account(row)

    # -- leasing --------------------------------------------------------------------------------

    @staticmethod
    def _taken(now: datetime) -> Any:
        """Judgments plus live leases of a comparison, as a correlated scalar subquery."""
        judged = select(func.count()).where(Judgment.comparison_id == Comparison.id).scalar_subquery()
        leased = (
            select(func.count())
            .where(
                Assignment.comparison_id == Comparison.id,
                Assignment.status == "leased",
                Assignment.lease_expires_at > now,
            )
            .scalar_subquery()
        )
        return judged + leased

    def _taken_now(self, session: Session, comparison_id: int, now: datetime, *, besides: int | None = None) -> int:
        judged = session.scalar(select(func.count()).where(Judgment.comparison_id == comparison_id)) or 0
        query = select(func.count()).where(
            Assignment.comparison_id == comparison_id,
            Assignment.status == "leased",
            Assignment.lease_expires_at > now,
        )
        if besides is not None:
            query = query.where(Assignment.id != besides)
        return int(judged) + int(session.scalar(query) or 0)

    def _candidate(
        self, session: Session, annotator_id: int, now: datetime, *, gold: bool, tried: set[int], wait: bool
    ) -> Any:
        mine = exists().where(Assignment.comparison_id == Comparison.id, Assignment.annotator_id == annotator_id)
        query = select(Comparison.id, Comparison.overlap).where(Comparison.status == "open", ~mine)
        # Gold items ignore overlap: each annotator meets each one at most once.
        query = query.where(_IS_GOLD) if gold else query.where(~_IS_GOLD, self._taken(now) < Comparison.overlap)
        if tried:
            query = query.where(Comparison.id.not_in(tried))
        query = query.order_by(Comparison.priority.desc(), Comparison.id).limit(1)
        if not self.is_sqlite and not gold:
            query = query.with_for_update(of=Comparison, skip_locked=not wait)
        return session.execute(query).first()

    def _lease_new(self, session: Session, annotator_id: int, now: datetime, *, gold: bool) -> int | None:
        tried: set[int] = set()
        for _ in range(_LEASE_ATTEMPTS):
            candidate = self._candidate(session, annotator_id, now, gold=gold, tried=tried, wait=False)
            if candidate is None and not self.is_sqlite:
                # Everything left may be locked by other leasers this instant: wait for them, then decide.
                candidate = self._candidate(session, annotator_id, now, gold=gold, tried=tried, wait=True)
            if candidate is None:
                return None
            # PostgreSQL: the row is locked now, so a fresh count sees every lease committed before ours.
            if gold or self.is_sqlite or self._taken_now(session, candidate.id, now) < candidate.overlap:
                return int(candidate.id)
            tried.add(candidate.id)
        return None

    def next_task(
        self,
        annotator_id: int,
        *,
        lease_seconds: float,
        gold_rate: float = 0.0,
        rng: random.Random | None = None,
    ) -> Task | None:
        """The annotator's current task, or a newly leased one; None when nothing is left for them.

        A task they hold already (a reload, a second tab) comes back with its lease renewed.
        """
        rng = rng or random.Random()
        now = utc_now()
        expires = now + timedelta(seconds=lease_seconds)
        with self._write_transaction() as session:
            held = session.execute(
                select(Assignment.id, Assignment.comparison_id, Assignment.lease_expires_at)
                .where(Assignment.annotator_id == annotator_id, Assignment.status == "leased")
                .order_by(Assignment.id)
            ).all()
            for assignment_id, comparison_id, lease_expires_at in held:
                lease_live = _aware(lease_expires_at) > now  # type: ignore[operator]
                if lease_live or self._slot_free(session, comparison_id, assignment_id, now):
                    session.execute(
                        update(Assignment).where(Assignment.id == assignment_id).values(lease_expires_at=expires)
                    )
                    return self._task(session, assignment_id)
                session.execute(update(Assignment).where(Assignment.id == assignment_id).values(status="expired"))
            use_gold = gold_rate > 0 and rng.random() < gold_rate
            chosen = self._lease_new(session, annotator_id, now, gold=True) if use_gold else None
            if chosen is None:
                chosen = self._lease_new(session, annotator_id, now, gold=False)
            if chosen is None:
                return None
            size = session.scalar(select(func.count()).where(ComparisonMember.comparison_id == chosen)) or 0
            order = list(range(int(size)))
            rng.shuffle(order)
            assignment_id = session.execute(
                insert(Assignment)
                .values(
                    comparison_id=chosen,
                    annotator_id=annotator_id,
                    order_shown=order,
                    status="leased",
                    leased_at=now,
                    lease_expires_at=expires,
                )
                .returning(Assignment.id)
            ).scalar_one()
            return self._task(session, assignment_id)

    def _slot_free(self, session: Session, comparison_id: int, assignment_id: int, now: datetime) -> bool:
        """Whether an expired lease may still be used: gold, or nobody filled its comparison meanwhile."""
        row = session.execute(
            select(Comparison.overlap, Comparison.status, _IS_GOLD.label("is_gold"))
            .where(Comparison.id == comparison_id)
            .with_for_update(of=Comparison)
        ).first()
        if row is None or row.status == "closed":
            return False
        if row.is_gold:
            return True
        return self._taken_now(session, comparison_id, now, besides=assignment_id) < row.overlap

    def _comparison_content(self, session: Session, comparison_id: int) -> tuple[int, str, int, list[Any], list[str]]:
        """(prompt id, kind, round, prompt messages, responses in canonical order); immutable, so cached."""
        cache = self.__dict__.setdefault("_content_cache", {})
        cached = cache.get(comparison_id)
        if cached is not None:
            return cached
        comparison = session.execute(
            select(Comparison.prompt_id, Comparison.kind, Comparison.round, Prompt.messages)
            .join(Prompt, Prompt.id == Comparison.prompt_id)
            .where(Comparison.id == comparison_id)
        ).one()
        texts = list(
            session.scalars(
                select(Response.text)
                .join(ComparisonMember, ComparisonMember.response_id == Response.id)
                .where(ComparisonMember.comparison_id == comparison_id)
                .order_by(ComparisonMember.position)
            )
        )
        content = (comparison.prompt_id, comparison.kind, comparison.round, comparison.messages, texts)
        if len(cache) >= _CONTENT_CACHE_SIZE:
            cache.clear()
        cache[comparison_id] = content
        return content

    def _task(self, session: Session, assignment_id: int) -> Task:
        row = session.execute(
            select(
                Assignment.id,
                Assignment.comparison_id,
                Assignment.order_shown,
                Assignment.lease_expires_at,
                _IS_GOLD.label("is_gold"),
            )
            .join(Comparison, Comparison.id == Assignment.comparison_id)
            .where(Assignment.id == assignment_id)
        ).one()
        _, kind, round_number, messages, texts = self._comparison_content(session, row.comparison_id)
        order = [int(position) for position in row.order_shown]
        return Task(
            assignment_id=row.id,
            comparison_id=row.comparison_id,
            kind=kind,
            round=round_number,
            prompt_messages=messages,
            responses=[texts[position] for position in order],
            order_shown=order,
            lease_expires_at=_aware(row.lease_expires_at),  # type: ignore[arg-type]
            is_gold=bool(row.is_gold),
        )

    def task_for(self, annotator_id: int, assignment_id: int) -> Task:
        """An assignment of this annotator's, still under lease; anyone else's is 'not found'."""
        with self._transaction() as session:
            owner = session.execute(
                select(Assignment.annotator_id, Assignment.status).where(Assignment.id == assignment_id)
            ).first()
            if owner is None or owner.annotator_id != annotator_id:
                raise AssignmentNotFound(f"no assignment {assignment_id} for you")
            if owner.status != "leased":
                raise AssignmentConflict(f"assignment {assignment_id} is {owner.status}")
            return self._task(session, assignment_id)

    # -- submitting -----------------------------------------------------------------------------

    def submit_judgment(
        self,
        annotator_id: int,
        assignment_id: int,
        *,
        canonical_answer: Callable[[str, list[int]], dict[str, Any]],
        idempotency_key: str,
        source: str,
        rationale: str | None = None,
        duration_ms: int | None = None,
    ) -> SubmitOutcome:
        """Record an answer to a leased assignment, once.

        `canonical_answer(kind, order_shown)` turns what the annotator saw into canonical positions and
        raises an ApprenticeError for a malformed answer. A repeat of the same idempotency key by the same
        annotator returns the stored judgment instead of a second one.
        """
        key = f"{annotator_id}:{idempotency_key}"
        now = utc_now()
        try:
            with self._write_transaction() as session:
                return self._submit(
                    session,
                    annotator_id,
                    assignment_id,
                    key,
                    now,
                    canonical_answer=canonical_answer,
                    source=source,
                    rationale=rationale,
                    duration_ms=duration_ms,
                )
        except IntegrityError:
            # Two requests with one key raced each other past the check (PostgreSQL): the winner's row stands.
            with self._transaction() as session:
                stored = self._stored(session, key, assignment_id)
                if stored is None:
                    raise AssignmentConflict(f"assignment {assignment_id} was answered already") from None
                return stored

    def _stored(self, session: Session, key: str, assignment_id: int) -> SubmitOutcome | None:
        row = session.execute(
            select(Judgment.id, Judgment.assignment_id, Judgment.answer, Comparison.kind, Comparison.gold)
            .join(Comparison, Comparison.id == Judgment.comparison_id)
            .where(Judgment.idempotency_key == key)
        ).first()
        if row is None:
            return None
        if row.assignment_id != assignment_id:
            raise AssignmentConflict("this idempotency key was used for another assignment")
        return SubmitOutcome(row.id, False, row.kind, row.answer, _gold_value(row.gold))

    def _submit(
        self,
        session: Session,
        annotator_id: int,
        assignment_id: int,
        key: str,
        now: datetime,
        *,
        canonical_answer: Callable[[str, list[int]], dict[str, Any]],
        source: str,
        rationale: str | None,
        duration_ms: int | None,
    ) -> SubmitOutcome:
        row = session.execute(
            select(
                Assignment.annotator_id,
                Assignment.comparison_id,
                Assignment.order_shown,
                Assignment.status,
                Assignment.lease_expires_at,
                Comparison.kind,
                Comparison.overlap,
                Comparison.gold,
            )
            .join(Comparison, Comparison.id == Assignment.comparison_id)
            .where(Assignment.id == assignment_id)
        ).first()
        if row is None or row.annotator_id != annotator_id:
            raise AssignmentNotFound(f"no assignment {assignment_id} for you")
        stored = self._stored(session, key, assignment_id)
        if stored is not None:
            return stored
        if row.status != "leased":
            raise AssignmentConflict(f"assignment {assignment_id} is {row.status}, not open for an answer")
        gold = _gold_value(row.gold)
        lease_live = _aware(row.lease_expires_at) > now  # type: ignore[operator]
        if not lease_live and not self._slot_free(session, row.comparison_id, assignment_id, now):
            raise AssignmentConflict(f"the lease on assignment {assignment_id} ran out and others filled it")
        order = [int(position) for position in row.order_shown]
        answer = canonical_answer(row.kind, order)
        judgment_id = session.execute(
            insert(Judgment)
            .values(
                comparison_id=row.comparison_id,
                annotator_id=annotator_id,
                assignment_id=assignment_id,
                answer=answer,
                order_shown=order,
                rationale=rationale,
                duration_ms=duration_ms,
                idempotency_key=key,
                source=source,
                weight=1.0,
                created_at=now,
            )
            .returning(Judgment.id)
        ).scalar_one()
        session.execute(update(Assignment).where(Assignment.id == assignment_id).values(status="submitted"))
        if gold is None:
            judged = session.scalar(select(func.count()).where(Judgment.comparison_id == row.comparison_id)) or 0
            if judged >= row.overlap:
                session.execute(
                    update(Comparison)
                    .where(Comparison.id == row.comparison_id, Comparison.status == "open")
                    .values(status="complete")
                )
        return SubmitOutcome(judgment_id, True, row.kind, answer, gold)

    def skip_assignment(self, annotator_id: int, assignment_id: int, reason: str) -> None:
        """Give a leased task back with a reason; it goes to someone else, never again to this annotator."""
        with self._write_transaction() as session:
            owner = session.execute(
                select(Assignment.annotator_id, Assignment.status).where(Assignment.id == assignment_id)
            ).first()
            if owner is None or owner.annotator_id != annotator_id:
                raise AssignmentNotFound(f"no assignment {assignment_id} for you")
            if owner.status != "leased":
                raise AssignmentConflict(f"assignment {assignment_id} is {owner.status}, it cannot be skipped")
            session.execute(
                update(Assignment)
                .where(Assignment.id == assignment_id)
                .values(status="skipped", skip_reason=reason.strip()[:500] or "no reason given")
            )

    def undo_last_judgment(self, annotator_id: int, *, window_seconds: float, lease_seconds: float) -> int | None:
        """Take back this annotator's latest studio judgment if it is younger than the window.

        The assignment is leased to them again (so it is their next task); returns its id, or None.
        """
        now = utc_now()
        with self._write_transaction() as session:
            row = session.execute(
                select(Judgment.id, Judgment.assignment_id, Judgment.comparison_id, Judgment.created_at)
                .where(
                    Judgment.annotator_id == annotator_id,
                    Judgment.source.in_(STUDIO_SOURCES),
                    Judgment.assignment_id.is_not(None),
                )
                .order_by(Judgment.id.desc())
                .limit(1)
            ).first()
            if row is None or _aware(row.created_at) < now - timedelta(seconds=window_seconds):  # type: ignore[operator]
                return None
            session.execute(delete(Judgment).where(Judgment.id == row.id))
            session.execute(
                update(Assignment)
                .where(Assignment.id == row.assignment_id)
                .values(status="leased", lease_expires_at=now + timedelta(seconds=lease_seconds))
            )
            session.execute(
                update(Comparison)
                .where(Comparison.id == row.comparison_id, Comparison.status == "complete")
                .values(status="open")
            )
            return int(row.assignment_id)

    def last_judgment_time(self, annotator_id: int) -> datetime | None:
        with self._transaction() as session:
            moment = session.scalar(
                select(func.max(Judgment.created_at)).where(
                    Judgment.annotator_id == annotator_id, Judgment.source.in_(STUDIO_SOURCES)
                )
            )
            return _aware(moment)

    # -- priorities and progress ----------------------------------------------------------------

    def set_priorities(self, priorities: dict[int, float]) -> None:
        """Set which comparisons come first (higher first); active selection calls this."""
        with self._write_transaction() as session:
            for comparison_id, priority in priorities.items():
                session.execute(update(Comparison).where(Comparison.id == comparison_id).values(priority=priority))

    def annotator_progress(self, annotator_id: int) -> AnnotatorProgress:
        now = utc_now()
        with self._transaction() as session:
            judged = session.scalar(
                select(func.count()).where(Judgment.annotator_id == annotator_id, Judgment.source.in_(STUDIO_SOURCES))
            )
            skipped = session.scalar(
                select(func.count()).where(Assignment.annotator_id == annotator_id, Assignment.status == "skipped")
            )
            mine = exists().where(Assignment.comparison_id == Comparison.id, Assignment.annotator_id == annotator_id)
            left = session.scalar(
                select(func.count()).where(
                    Comparison.status == "open", ~_IS_GOLD, ~mine, self._taken(now) < Comparison.overlap
                )
            )
            held = session.scalar(
                select(func.count()).where(Assignment.annotator_id == annotator_id, Assignment.status == "leased")
            )
            return AnnotatorProgress(int(judged or 0), int(skipped or 0), int(left or 0) + int(held or 0))

    # -- the admin's view -----------------------------------------------------------------------

    def round_progress(self) -> list[RoundProgress]:
        """Per round: comparisons, how many are complete, judgments wanted and stored (gold items apart)."""
        with self._transaction() as session:
            counts = session.execute(
                select(Comparison.round, Comparison.status, func.count(), func.sum(Comparison.overlap))
                .where(~_IS_GOLD)
                .group_by(Comparison.round, Comparison.status)
            ).all()
            judged = dict(
                session.execute(
                    select(Comparison.round, func.count())
                    .join(Judgment, Judgment.comparison_id == Comparison.id)
                    .where(~_IS_GOLD)
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
                self._account(row)
                for row in session.execute(select(*self._ACCOUNT_COLUMNS).order_by(Annotator.id)).all()
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
                _gold_value(row.gold),
                row.duration_ms,
                _aware(row.created_at),  # type: ignore[arg-type]
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

    def judgment_keys(self, annotator_id: int | None = None) -> list[str]:
        """Idempotency keys of studio judgments as the client gave them (the annotator prefix removed)."""
        with self._transaction() as session:
            query = select(Judgment.idempotency_key).where(Judgment.source.in_(STUDIO_SOURCES))
            if annotator_id is not None:
                query = query.where(Judgment.annotator_id == annotator_id)
            return [key.split(":", 1)[1] for key in session.scalars(query)]


__all__ = [
    "AnnotatorAccount",
    "AnnotatorActivity",
    "AnnotatorProgress",
    "AssignmentConflict",
    "AssignmentNotFound",
    "AssignmentQueries",
    "RoundProgress",
    "StudioJudgmentRow",
    "SubmitOutcome",
    "Task",
]
