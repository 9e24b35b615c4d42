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
import time
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Table,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from apprentice.errors import ApprenticeError
from apprentice.store.crowd import IS_ATTENTION, IS_PLAIN_GOLD, CrowdQueries, DisagreementRule, review_disagreement
from apprentice.store.prepared import Prepared
from apprentice.store.studio_records import (
    ACCOUNT_COLUMNS,
    IS_GOLD,
    STUDIO_SOURCES,
    AnnotatorAccount,
    AnnotatorActivity,
    AnnotatorProgress,
    AssignmentConflict,
    AssignmentNotFound,
    Content,
    LeaseRequest,
    RecordedJudgment,
    RoundProgress,
    StudioJudgmentRow,
    SubmitOutcome,
    Task,
    account_from_row,
    aware,
    gold_value,
)
from apprentice.store.studio_views import StudioViews
from apprentice.store.tables import (
    Annotator,
    Assignment,
    AuthFailure,
    Comparison,
    ComparisonMember,
    Judgment,
    JudgmentRevision,
    Prompt,
    Response,
    utc_now,
)

_CONTENT_CACHE_SIZE = 4096
_CONTENT_TTL_SECONDS = 60.0  # how soon a gold answer set by another process reaches this one
_LEASE_ATTEMPTS = 20


# The hot path's statements, built once: constructing a statement costs more than SQLite running it.
_assignments = typing.cast(Table, Assignment.__table__)
_comparisons = typing.cast(Table, Comparison.__table__)
_judgments = typing.cast(Table, Judgment.__table__)
_NOW = bindparam("now", type_=DateTime(timezone=True))
_JUDGED = select(func.count()).where(Judgment.comparison_id == Comparison.id).scalar_subquery()
_LIVE_LEASES = (
    select(func.count())
    .where(Assignment.comparison_id == Comparison.id, Assignment.status == "leased", Assignment.lease_expires_at > _NOW)
    .scalar_subquery()
)
_MINE = exists().where(Assignment.comparison_id == Comparison.id, Assignment.annotator_id == bindparam("annotator"))


def _candidate_query(*, pool: str, lock: str | None) -> Any:
    """The first open comparison of a pool (task, gold, attention) this annotator may take, in queue order
    (ix_comparisons_queue)."""
    query = select(Comparison.id, Comparison.overlap).where(Comparison.status == "open", ~_MINE)
    # Gold items and attention checks ignore overlap: each annotator meets each one at most once.
    if pool == "task":
        query = query.where(~IS_GOLD, Comparison.overlap > _JUDGED + _LIVE_LEASES)
    else:
        query = query.where(IS_PLAIN_GOLD if pool == "gold" else IS_ATTENTION)
    query = query.order_by(Comparison.status, Comparison.priority.desc(), Comparison.id).limit(1)
    if lock is not None:
        query = query.with_for_update(of=Comparison, skip_locked=lock == "skip")
    return query


_CANDIDATES = {
    (pool, lock): _candidate_query(pool=pool, lock=lock)
    for pool in ("task", "gold", "attention")
    for lock in (None, "skip", "wait")
}
_COUNT_JUDGED = (
    select(func.count()).select_from(_judgments).where(_judgments.c.comparison_id == bindparam("comparison"))
)
# Overlap read fresh, not from the content cache: adjudication may have raised it since.
_JUDGED_AND_OVERLAP = select(
    _COUNT_JUDGED.scalar_subquery().label("judged"),
    select(_comparisons.c.overlap)
    .where(_comparisons.c.id == bindparam("comparison"))
    .scalar_subquery()
    .label("overlap"),
)
_COUNT_LIVE_LEASES = (
    select(func.count())
    .select_from(_assignments)
    .where(
        _assignments.c.comparison_id == bindparam("comparison"),
        _assignments.c.status == "leased",
        _assignments.c.lease_expires_at > _NOW,
        _assignments.c.id != bindparam("besides"),
    )
)
_HELD = (
    select(_assignments.c.id, _assignments.c.comparison_id, _assignments.c.order_shown, _assignments.c.lease_expires_at)
    .where(_assignments.c.annotator_id == bindparam("annotator"), _assignments.c.status == "leased")
    .order_by(_assignments.c.id)
)
_RENEW_LEASE = (
    update(_assignments)
    .where(_assignments.c.id == bindparam("assignment"))
    .values(lease_expires_at=bindparam("expires", type_=DateTime(timezone=True)))
)
_SET_STATUS = (
    update(_assignments).where(_assignments.c.id == bindparam("assignment")).values(status=bindparam("status"))
)
_INSERT_ASSIGNMENT = insert(_assignments).returning(_assignments.c.id)
_ASSIGNMENT_COLUMNS = ("comparison_id", "annotator_id", "order_shown", "status", "leased_at", "lease_expires_at")
# A comparison's content in one statement: a row per response, in canonical order.
_CONTENT = (
    select(
        Comparison.kind,
        Comparison.round,
        Comparison.overlap,
        Comparison.gold,
        Prompt.messages,
        IS_GOLD.label("is_gold"),
        Response.text,
        Response.finished,
    )
    .join(Prompt, Prompt.id == Comparison.prompt_id)
    .outerjoin(ComparisonMember, ComparisonMember.comparison_id == Comparison.id)
    .outerjoin(Response, Response.id == ComparisonMember.response_id)
    .where(Comparison.id == bindparam("comparison"))
    .order_by(ComparisonMember.position)
)
_ASSIGNMENT_ROW = select(
    _assignments.c.annotator_id,
    _assignments.c.comparison_id,
    _assignments.c.order_shown,
    _assignments.c.status,
    _assignments.c.lease_expires_at,
).where(_assignments.c.id == bindparam("assignment"))
# Taking a leased assignment for its answer, and reading it, in one statement. Whatever fails after it in
# the transaction (an expired lease, a malformed answer) rolls it back.
_MARK_SUBMITTED = (
    update(_assignments)
    .where(
        _assignments.c.id == bindparam("assignment"),
        _assignments.c.annotator_id == bindparam("annotator"),
        _assignments.c.status == "leased",
    )
    .values(status="submitted")
    .returning(_assignments.c.comparison_id, _assignments.c.order_shown, _assignments.c.lease_expires_at)
)
_STORED = (
    select(Judgment.id, Judgment.assignment_id, Judgment.answer, Comparison.kind, Comparison.gold)
    .join(Comparison, Comparison.id == Judgment.comparison_id)
    .where(Judgment.idempotency_key == bindparam("key"))
)
_ACCOUNT_BY_ID = select(*ACCOUNT_COLUMNS).where(Annotator.id == bindparam("annotator"))
# PostgreSQL: leasing for one annotator is serialized on their row, so that two workers serving the same
# annotator at once cannot each lease them a task (one annotator holds one lease).
_LOCK_ANNOTATOR = select(Annotator.id).where(Annotator.id == bindparam("annotator")).with_for_update()
_ACCOUNT_BY_NAME = select(*ACCOUNT_COLUMNS).where(Annotator.name == bindparam("name"))
_INSERT_JUDGMENT = insert(_judgments).returning(_judgments.c.id)
_JUDGMENT_COLUMNS = (
    "comparison_id",
    "annotator_id",
    "assignment_id",
    "answer",
    "order_shown",
    "rationale",
    "duration_ms",
    "idempotency_key",
    "source",
    "weight",
    "created_at",
)
_COMPLETE = (
    update(_comparisons)
    .where(_comparisons.c.id == bindparam("comparison"), _comparisons.c.status == "open")
    .values(status="complete")
)


class AssignmentQueries(CrowdQueries, StudioViews):
    """Leasing comparisons to annotators and recording what they submit."""

    is_sqlite: bool
    engine: Engine
    # SQLite takes one writer at a time anyway: queueing writers of this process here keeps them out of
    # SQLite's busy handler, whose growing sleeps would dominate the tail latency.
    _sqlite_write_lock = threading.Lock()
    _content_cache: dict[int, tuple[Content, float]]

    def _prepared(self, statement: Any, *, column_keys: Sequence[str] = ()) -> Prepared:
        """One of the module's statements prepared for this store's dialect (once per store)."""
        by_statement: dict[int, Prepared] = self.__dict__.setdefault("_prepared_statements", {})
        prepared = by_statement.get(id(statement))  # the statements are module constants: their ids are stable
        if prepared is None:
            prepared = Prepared(statement, self.engine.dialect, column_keys=column_keys)
            by_statement[id(statement)] = prepared
        return prepared

    @contextmanager
    def _write_connection(self) -> Iterator[Connection]:
        """A write transaction on a Core connection, without an ORM session: the hot path's, cheaper by far."""
        if not self.is_sqlite:
            with self.engine.begin() as connection:
                yield connection
            return
        with self._sqlite_write_lock, self.engine.begin() as connection:
            connection.connection.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
            yield connection

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
            return account_from_row(row)

    def annotator_account(self, *, annotator_id: int | None = None, name: str | None = None) -> AnnotatorAccount | None:
        params: dict[str, Any]
        if annotator_id is not None:
            query, params = _ACCOUNT_BY_ID, {"annotator": annotator_id}
        elif name is not None:
            query, params = _ACCOUNT_BY_NAME, {"name": name}
        else:
            raise ValueError("give annotator_id or name")
        # Every request reads this (session and token checks): a plain connection, no ORM session.
        with self.engine.connect() as connection:
            row = self._prepared(query).first(connection, params)
        return account_from_row(row) if row is not None else None

    def annotator_accounts(self) -> list[AnnotatorAccount]:
        """Every human annotator (imported and simulated sources are not accounts)."""
        with self._transaction() as session:
            rows = session.execute(select(*ACCOUNT_COLUMNS).order_by(Annotator.id)).all()
            return [account_from_row(row) for row in rows if row.kind == "human"]

    def set_signin_hash(
        self, annotator_id: int, signin_hash: str, expires_at: datetime, *, signin_check: str | None = None
    ) -> None:
        with self._write_transaction() as session:
            session.execute(
                update(Annotator)
                .where(Annotator.id == annotator_id)
                .values(signin_hash=signin_hash, signin_expires_at=expires_at, signin_check=signin_check)
            )

    def consume_signin(self, annotator_id: int, signin_hash: str) -> AnnotatorAccount | None:
        """Use up a sign-in link: the account for the one caller that clears this exact hash while it is valid.

        Signing in starts a new session version, so that every older session of this annotator ends.
        """
        with self._write_transaction() as session:
            result = session.execute(
                update(Annotator)
                .where(
                    Annotator.id == annotator_id,
                    Annotator.signin_hash == signin_hash,
                    Annotator.signin_expires_at > utc_now(),
                    Annotator.disabled.is_(False),
                )
                .values(
                    signin_hash=None,
                    signin_expires_at=None,
                    signin_check=None,
                    session_version=Annotator.session_version + 1,
                )
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return None
            row = session.execute(select(*ACCOUNT_COLUMNS).where(Annotator.id == annotator_id)).one()
            return account_from_row(row)

    def end_sessions(self, annotator_id: int, *, session_version: int, revoke_token: bool = False) -> bool:
        """End every session of this annotator (and with `revoke_token`, their API token too).

        Only when `session_version` is still theirs: a stale session cannot end a newer one. True if ended.
        """
        values: dict[str, Any] = {"session_version": Annotator.session_version + 1}
        if revoke_token:
            values.update(credential_hash=None, credential_check=None)
        with self._write_transaction() as session:
            result = session.execute(
                update(Annotator)
                .where(Annotator.id == annotator_id, Annotator.session_version == session_version)
                .values(**values)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def set_credential_hash(
        self, annotator_id: int, credential_hash: str | None, *, credential_check: str | None = None
    ) -> None:
        with self._write_transaction() as session:
            session.execute(
                update(Annotator)
                .where(Annotator.id == annotator_id)
                .values(credential_hash=credential_hash, credential_check=credential_check)
            )

    def add_credential_check(self, annotator_id: int, credential_hash: str, credential_check: str) -> None:
        """Store the fast check of a token verified against `credential_hash` (made before checks existed)."""
        with self._write_transaction() as session:
            session.execute(
                update(Annotator)
                .where(Annotator.id == annotator_id, Annotator.credential_hash == credential_hash)
                .values(credential_check=credential_check)
            )

    def set_annotator_disabled(self, name: str, disabled: bool) -> AnnotatorAccount:
        """Disable (every session and token stops at once, for good) or enable an annotator by name.

        Enabling revives nothing: the annotator needs a new sign-in link, and a new API token.
        """
        with self._write_transaction() as session:
            row = session.scalar(select(Annotator).where(Annotator.name == name))
            if row is None:
                raise ApprenticeError(f"no annotator named {name!r}")
            row.disabled = disabled
            row.session_version = (row.session_version or 0) + 1
            if disabled:
                row.signin_hash = None
                row.signin_expires_at = None
                row.signin_check = None
                row.credential_hash = None
                row.credential_check = None
                # Their leases go back to the pool now rather than when they expire.
                session.execute(
                    update(Assignment)
                    .where(Assignment.annotator_id == row.id, Assignment.status == "leased")
                    .values(status="expired")
                )
            session.flush()
            return account_from_row(row)

    def auth_failures(self, scopes: Sequence[str], *, window_seconds: float) -> dict[str, int]:
        """Failed attempts in each scope's current window (a scope without any is left out)."""
        cutoff = utc_now() - timedelta(seconds=window_seconds)
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(AuthFailure.scope, AuthFailure.failures).where(
                    AuthFailure.scope.in_(list(scopes)), AuthFailure.window_started_at > cutoff
                )
            ).all()
        return {row.scope: int(row.failures) for row in rows}

    def record_auth_failure(self, scopes: Sequence[str], *, window_seconds: float) -> None:
        """Count one failed attempt in each scope; a window older than `window_seconds` starts again at 1."""
        now = utc_now()
        cutoff = now - timedelta(seconds=window_seconds)
        table = typing.cast(Table, AuthFailure.__table__)
        upsert = (sqlite_insert if self.is_sqlite else postgresql_insert)(table)
        live = table.c.window_started_at > cutoff
        statement = upsert.on_conflict_do_update(
            index_elements=[table.c.scope],
            set_={
                "failures": case((live, table.c.failures + 1), else_=1),
                "window_started_at": case((live, table.c.window_started_at), else_=now),
            },
        )
        with self._write_connection() as connection:
            connection.execute(delete(table).where(table.c.window_started_at <= cutoff))
            for scope in scopes:
                connection.execute(statement, {"scope": scope[:128], "failures": 1, "window_started_at": now})

    # -- leasing --------------------------------------------------------------------------------

    def _taken_now(
        self, connection: Connection, comparison_id: int, now: datetime, *, besides: int | None = None
    ) -> int:
        params = {"comparison": comparison_id, "now": now, "besides": besides or 0}
        judged = self._prepared(_COUNT_JUDGED).scalar(connection, params)
        return int(judged) + int(self._prepared(_COUNT_LIVE_LEASES).scalar(connection, params))

    def _candidate(
        self, connection: Connection, annotator_id: int, now: datetime, *, pool: str, tried: set[int], wait: bool
    ) -> Any:
        lock = None if self.is_sqlite or pool != "task" else ("wait" if wait else "skip")
        query = _CANDIDATES[(pool, lock)]
        if tried:  # PostgreSQL only, and rare: a statement of its own
            return connection.execute(
                query.where(Comparison.id.not_in(tried)), {"annotator": annotator_id, "now": now}
            ).first()
        return self._prepared(query).first(connection, {"annotator": annotator_id, "now": now})

    def _lease_new(self, connection: Connection, annotator_id: int, now: datetime, *, pool: str) -> int | None:
        tried: set[int] = set()
        for _ in range(_LEASE_ATTEMPTS):
            candidate = self._candidate(connection, annotator_id, now, pool=pool, tried=tried, wait=False)
            if candidate is None and not self.is_sqlite:
                # Everything left may be locked by other leasers this instant: wait for them, then decide.
                candidate = self._candidate(connection, annotator_id, now, pool=pool, tried=tried, wait=True)
            if candidate is None:
                return None
            # PostgreSQL: the row is locked now, so a fresh count sees every lease committed before ours.
            if pool != "task" or self.is_sqlite or self._taken_now(connection, candidate.id, now) < candidate.overlap:
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
        attention_rate: float = 0.0,
        only_gold: bool = False,
    ) -> Task | None:
        """The annotator's current task, or a newly leased one; None when nothing is left for them.

        A task they hold already (a reload, a second tab) comes back with its lease renewed. With
        `only_gold` only gold items are leased (the qualification test).
        """
        request = LeaseRequest(lease_seconds, gold_rate, rng, attention_rate, only_gold)
        with self._write_connection() as connection:
            return self._next_task(connection, annotator_id, request, utc_now())

    def _next_task(
        self, connection: Connection, annotator_id: int, request: LeaseRequest, now: datetime
    ) -> Task | None:
        rng = request.rng or random.Random()
        expires = now + timedelta(seconds=request.lease_seconds)
        if not self.is_sqlite:  # SQLite's write lock serializes this already
            self._prepared(_LOCK_ANNOTATOR).rows(connection, {"annotator": annotator_id})
        held = self._prepared(_HELD).rows(connection, {"annotator": annotator_id})
        for assignment_id, comparison_id, order_shown, lease_expires_at in held:
            lease_live = aware(lease_expires_at) > now  # type: ignore[operator]
            if lease_live or self._slot_free(connection, comparison_id, assignment_id, now):
                self._prepared(_RENEW_LEASE).rows(connection, {"assignment": assignment_id, "expires": expires})
                return self._task(connection, assignment_id, comparison_id, order_shown, expires)
            self._prepared(_SET_STATUS).rows(connection, {"assignment": assignment_id, "status": "expired"})
        chosen = self._lease_by_pool(connection, annotator_id, request, rng, now)
        if chosen is None:
            return None
        order = list(range(len(self._comparison_content(connection, chosen).texts)))
        rng.shuffle(order)
        assignment_id = self._prepared(_INSERT_ASSIGNMENT, column_keys=_ASSIGNMENT_COLUMNS).scalar(
            connection,
            {
                "comparison_id": chosen,
                "annotator_id": annotator_id,
                "order_shown": order,
                "status": "leased",
                "leased_at": now,
                "lease_expires_at": expires,
            },
        )
        return self._task(connection, assignment_id, chosen, order, expires)

    def _lease_by_pool(
        self, connection: Connection, annotator_id: int, request: LeaseRequest, rng: random.Random, now: datetime
    ) -> int | None:
        """Which comparison to lease: an attention check or a gold item at their rates, else a task."""
        if request.only_gold:
            return self._lease_new(connection, annotator_id, now, pool="gold")
        chosen = None
        if request.attention_rate > 0 and rng.random() < request.attention_rate:
            chosen = self._lease_new(connection, annotator_id, now, pool="attention")
        use_gold = request.gold_rate > 0 and rng.random() < request.gold_rate
        if chosen is None and use_gold:
            chosen = self._lease_new(connection, annotator_id, now, pool="gold")
        if chosen is None:
            chosen = self._lease_new(connection, annotator_id, now, pool="task")
        return chosen

    def _slot_free(self, connection: Connection, comparison_id: int, assignment_id: int, now: datetime) -> bool:
        """Whether an expired lease may still be used: gold, or nobody filled its comparison meanwhile."""
        row = connection.execute(
            select(Comparison.overlap, Comparison.status, IS_GOLD.label("is_gold"))
            .where(Comparison.id == comparison_id)
            .with_for_update(of=Comparison)
        ).first()
        if row is None or row.status == "closed":
            return False
        if row.is_gold:
            return True
        return self._taken_now(connection, comparison_id, now, besides=assignment_id) < row.overlap

    def _comparison_content(self, connection: Connection, comparison_id: int) -> Content:
        """What a comparison shows, cached per process.

        Its texts never change once it exists, but an admin may give it a gold answer later, perhaps from
        another process (`apprentice gold set`): an entry is read again after `_CONTENT_TTL_SECONDS`.
        """
        cache: dict[int, tuple[Content, float]] = self.__dict__.setdefault("_content_cache", {})
        cached = cache.get(comparison_id)
        now = time.monotonic()
        if cached is not None and now - cached[1] < _CONTENT_TTL_SECONDS:
            return cached[0]
        rows = self._prepared(_CONTENT).rows(connection, {"comparison": comparison_id})
        if not rows:
            raise AssignmentNotFound(f"no comparison {comparison_id}")
        first = rows[0]
        texts = [row.text for row in rows if row.text is not None]
        content = Content(
            first.kind,
            first.round,
            first.messages,
            texts,
            bool(first.is_gold),
            gold_value(first.gold),
            first.overlap,
            cut_off=[row.finished is not None and not row.finished for row in rows if row.text is not None],
        )
        if len(cache) >= _CONTENT_CACHE_SIZE:
            cache.clear()
        cache[comparison_id] = (content, now)
        return content

    def _task(
        self, connection: Connection, assignment_id: int, comparison_id: int, order_shown: list[Any], expires: datetime
    ) -> Task:
        content = self._comparison_content(connection, comparison_id)
        order = [int(position) for position in order_shown]
        return Task(
            assignment_id=assignment_id,
            comparison_id=comparison_id,
            kind=content.kind,
            round=content.round,
            prompt_messages=content.messages,
            responses=[content.texts[position] for position in order],
            order_shown=order,
            lease_expires_at=aware(expires),  # type: ignore[arg-type]
            is_gold=content.is_gold,
            cut_off=[content.cut_off[position] for position in order] if content.cut_off else [],
        )

    def task_for(self, annotator_id: int, assignment_id: int) -> Task:
        """An assignment of this annotator's, still under lease; anyone else's is 'not found'."""
        with self.engine.connect() as connection:
            row = self._prepared(_ASSIGNMENT_ROW).first(connection, {"assignment": assignment_id})
            if row is None or row.annotator_id != annotator_id:
                raise AssignmentNotFound(f"no assignment {assignment_id} for you")
            if row.status != "leased":
                raise AssignmentConflict(f"assignment {assignment_id} is {row.status}")
            return self._task(connection, assignment_id, row.comparison_id, row.order_shown, row.lease_expires_at)

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
        then_lease: LeaseRequest | None = None,
        review: DisagreementRule | None = None,
    ) -> SubmitOutcome:
        """Record an answer to a leased assignment, once; with `then_lease`, also lease the next task.

        With `review`, a comparison that this answer fills is checked for disagreement (adjudication).

        `canonical_answer(kind, order_shown)` turns what the annotator saw into canonical positions and
        raises an ApprenticeError for a malformed answer. A repeat of the same idempotency key by the same
        annotator returns the stored judgment instead of a second one. Answer and next lease are one
        transaction: the hot path of a busy studio.
        """
        key = f"{annotator_id}:{idempotency_key}"
        now = utc_now()
        try:
            with self._write_connection() as connection:
                if then_lease is not None and not self.is_sqlite:
                    # The annotator's row before any assignment's, in the order _next_task takes them.
                    self._prepared(_LOCK_ANNOTATOR).rows(connection, {"annotator": annotator_id})
                outcome = self._submit(
                    connection,
                    annotator_id,
                    assignment_id,
                    key,
                    now,
                    canonical_answer=canonical_answer,
                    source=source,
                    rationale=rationale,
                    duration_ms=duration_ms,
                    review=review,
                )
                if then_lease is not None:
                    outcome = replace(outcome, next_task=self._next_task(connection, annotator_id, then_lease, now))
                return outcome
        except IntegrityError:
            # The key is stored already: two requests with it raced (PostgreSQL), and the winner's row stands;
            # or it was used for another assignment, which _stored refuses.
            with self.engine.connect() as connection:
                stored = self._stored(connection, key, assignment_id)
                if stored is None:
                    raise AssignmentConflict(f"assignment {assignment_id} was answered already") from None
            if then_lease is not None:
                stored = replace(stored, next_task=self.next_task(annotator_id, **then_lease.keywords()))
            return stored

    def record_judgment(
        self,
        *,
        comparison_id: int,
        annotator_id: int,
        answer: dict[str, Any],
        idempotency_key: str,
        source: str,
        order_shown: list[int] | None = None,
        rationale: str | None = None,
        duration_ms: int | None = None,
    ) -> tuple[RecordedJudgment, bool]:
        """A judgment given outside the studio's queue (a script, a test): leased and answered in one transaction
        by the studio's own `_submit`, so idempotency, gold items, overlap and adjudication behave exactly as
        for an answer in the studio. `answer` is canonical (positions of the comparison, not of the screen);
        `order_shown` is recorded as the order it was shown in. Returns the judgment and whether it is new.
        """
        key = f"{annotator_id}:{idempotency_key}"
        now = utc_now()
        with self._write_connection() as connection:
            stored = self._prepared(_STORED).first(connection, {"key": key})
            if stored is not None:
                return RecordedJudgment(int(stored.id)), False
            shown = order_shown or list(range(len(self._comparison_content(connection, comparison_id).texts)))
            assignment_id = self._prepared(_INSERT_ASSIGNMENT, column_keys=_ASSIGNMENT_COLUMNS).scalar(
                connection,
                {
                    "comparison_id": comparison_id,
                    "annotator_id": annotator_id,
                    "order_shown": shown,
                    "status": "leased",
                    "leased_at": now,
                    "lease_expires_at": now + timedelta(minutes=1),
                },
            )
            outcome = self._submit(
                connection,
                annotator_id,
                assignment_id,
                key,
                now,
                canonical_answer=lambda kind, order: answer,
                source=source,
                rationale=rationale,
                duration_ms=duration_ms,
            )
        return RecordedJudgment(outcome.judgment_id), True

    def _stored(self, connection: Connection, key: str, assignment_id: int) -> SubmitOutcome | None:
        row = self._prepared(_STORED).first(connection, {"key": key})
        if row is None:
            return None
        if row.assignment_id != assignment_id:
            raise AssignmentConflict("this idempotency key was used for another assignment")
        return SubmitOutcome(row.id, False, row.kind, row.answer, gold_value(row.gold))

    def _submit(
        self,
        connection: Connection,
        annotator_id: int,
        assignment_id: int,
        key: str,
        now: datetime,
        *,
        canonical_answer: Callable[[str, list[int]], dict[str, Any]],
        source: str,
        rationale: str | None,
        duration_ms: int | None,
        review: DisagreementRule | None = None,
    ) -> SubmitOutcome:
        taken = self._prepared(_MARK_SUBMITTED).first(
            connection, {"assignment": assignment_id, "annotator": annotator_id}
        )
        if taken is None:
            return self._not_open(connection, annotator_id, assignment_id, key)
        content = self._comparison_content(connection, taken.comparison_id)
        lease_live = aware(taken.lease_expires_at) > now  # type: ignore[operator]
        if not lease_live and not self._slot_free(connection, taken.comparison_id, assignment_id, now):
            raise AssignmentConflict(f"the lease on assignment {assignment_id} ran out and others filled it")
        order = [int(position) for position in taken.order_shown]
        answer = canonical_answer(content.kind, order)
        # The assignment was leased, so no answer to it is stored; a key used for another assignment breaks
        # the key's unique constraint, and submit_judgment's handler tells that apart from a race.
        judgment_id = self._prepared(_INSERT_JUDGMENT, column_keys=_JUDGMENT_COLUMNS).scalar(
            connection,
            {
                "comparison_id": taken.comparison_id,
                "annotator_id": annotator_id,
                "assignment_id": assignment_id,
                "answer": answer,
                "order_shown": order,
                "rationale": rationale,
                "duration_ms": duration_ms,
                "idempotency_key": key,
                "source": source,
                "weight": 1.0,
                "created_at": now,
            },
        )
        if content.gold is None:
            # With overlap 1 (the usual case) this judgment completes the comparison: no need to count.
            judged, overlap = (
                (1, 1) if content.overlap <= 1 else self._judged_and_overlap(connection, taken.comparison_id)
            )
            if judged >= overlap and not (
                overlap > 1 and review is not None and review_disagreement(connection, taken.comparison_id, review)
            ):
                self._prepared(_COMPLETE).rows(connection, {"comparison": taken.comparison_id})
        return SubmitOutcome(judgment_id, True, content.kind, answer, content.gold)

    def _judged_and_overlap(self, connection: Connection, comparison_id: int) -> tuple[int, int]:
        row = self._prepared(_JUDGED_AND_OVERLAP).first(connection, {"comparison": comparison_id})
        if row is None:
            raise AssignmentNotFound(f"no comparison {comparison_id}")
        return int(row.judged), int(row.overlap)

    def _not_open(self, connection: Connection, annotator_id: int, assignment_id: int, key: str) -> SubmitOutcome:
        """Why an assignment cannot take an answer now; or, for a retry of a stored answer, that answer."""
        row = self._prepared(_ASSIGNMENT_ROW).first(connection, {"assignment": assignment_id})
        if row is None or row.annotator_id != annotator_id:
            raise AssignmentNotFound(f"no assignment {assignment_id} for you")
        stored = self._stored(connection, key, assignment_id)
        if stored is not None:
            return stored
        raise AssignmentConflict(f"assignment {assignment_id} is {row.status}, not open for an answer")

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

    def undo_last_judgment(
        self, annotator_id: int, *, window_seconds: float, lease_seconds: float, keep_gold: bool = False
    ) -> int | None:
        """Take back this annotator's latest studio judgment if it is younger than the window.

        The assignment is leased to them again (so it is their next task); returns its id, or None. With
        `keep_gold` (the annotator was told whether a gold answer was right), an answer to a gold item stands:
        AssignmentConflict, since taking it back would let them try until right.
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
            if row is None or aware(row.created_at) < now - timedelta(seconds=window_seconds):  # type: ignore[operator]
                return None
            if session.scalar(select(JudgmentRevision.id).where(JudgmentRevision.judgment_id == row.id).limit(1)):
                return None  # corrected from the history page: its earlier answers stay on record
            if keep_gold and session.scalar(select(IS_GOLD).where(Comparison.id == row.comparison_id)):
                raise AssignmentConflict("an answer to a check item cannot be taken back once its feedback was shown")
            session.execute(delete(Judgment).where(Judgment.id == row.id))
            session.execute(
                update(Assignment)
                .where(Assignment.id == row.assignment_id)
                .values(status="leased", lease_expires_at=now + timedelta(seconds=lease_seconds))
            )
            # An answer taken back also takes back what it decided: completion, a dispute, a majority resolution.
            session.execute(
                update(Comparison)
                .where(Comparison.id == row.comparison_id, Comparison.status.in_(("complete", "disputed")))
                .values(status="open")
            )
            session.execute(
                update(Comparison)
                .where(Comparison.id == row.comparison_id, Comparison.resolved_by == "majority")
                .values(resolution=None, resolved_by=None)
            )
            return int(row.assignment_id)

    def last_judgment_time(self, annotator_id: int) -> datetime | None:
        with self._transaction() as session:
            moment = session.scalar(
                select(func.max(Judgment.created_at)).where(
                    Judgment.annotator_id == annotator_id, Judgment.source.in_(STUDIO_SOURCES)
                )
            )
            return aware(moment)

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
            left = session.execute(
                select(func.count()).where(
                    Comparison.status == "open", ~IS_GOLD, ~_MINE, Comparison.overlap > _JUDGED + _LIVE_LEASES
                ),
                {"annotator": annotator_id, "now": now},
            ).scalar_one()
            held = session.scalar(
                select(func.count()).where(Assignment.annotator_id == annotator_id, Assignment.status == "leased")
            )
            return AnnotatorProgress(int(judged or 0), int(skipped or 0), int(left or 0) + int(held or 0))


__all__ = [
    "STUDIO_SOURCES",
    "AnnotatorAccount",
    "AnnotatorActivity",
    "AnnotatorProgress",
    "AssignmentConflict",
    "AssignmentNotFound",
    "AssignmentQueries",
    "LeaseRequest",
    "RoundProgress",
    "StudioJudgmentRow",
    "SubmitOutcome",
    "Task",
]
