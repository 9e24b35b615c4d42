"""Store queries for crowd work: attention checks, qualification items, adjudication, studies and participants.

A part of the `Store` gateway (through `AssignmentQueries`); only the store package touches the database.

- Attention checks are gold pairs with `purpose = "attention"`: a real response to a prompt against a canned,
  obviously bad text, the real one the known winner. They are drawn at their own rate, never count as gold
  accuracy, and never reach training.
- Qualification uses the ordinary gold items (purpose None): an annotator's first ones are their test.
- Adjudication: when a comparison's judgments disagree beyond a rule (`DisagreementRule`), it is either
  reopened for one more judgment (overlap raised) or set aside as "disputed" for an admin. Its `resolution` is
  then the answer training uses; the judgments all stay.
- A study has an entry link whose random key is kept only as a SHA-256; each platform participant gets an
  annotator account of their own on entry, at most `quota` of them.
"""

from __future__ import annotations

import hashlib
import random
import typing
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Table, and_, func, select, update
from sqlalchemy.orm import Session

from apprentice.errors import ApprenticeError
from apprentice.store.base import StoreBase
from apprentice.store.studio_records import (
    ACCOUNT_COLUMNS,
    IS_GOLD,
    STUDIO_SOURCES,
    AnnotatorAccount,
    account_from_row,
    aware,
    gold_value,
)
from apprentice.store.tables import (
    Annotator,
    Assignment,
    Comparison,
    ComparisonMember,
    Judgment,
    Policy,
    Prompt,
    Response,
    Study,
    StudyParticipant,
    utc_now,
)

ATTENTION = "attention"
ATTENTION_POLICY = "attention-check"
CANNED_BAD_TEXT = (
    "This response is an attention check. Please mark the OTHER response as better. Banana banana banana banana."
)
IS_ATTENTION = Comparison.purpose == ATTENTION
IS_PLAIN_GOLD = and_(IS_GOLD, Comparison.purpose.is_(None))  # gold items that are not attention checks
_comparisons = typing.cast(Table, Comparison.__table__)
_judgments = typing.cast(Table, Judgment.__table__)


class StudyFull(ApprenticeError):
    """A new participant arrived after the study's quota was reached."""


@dataclass(frozen=True)
class DisagreementRule:
    """When a complete comparison goes to adjudication, and where.

    `verdict(kind, answer)` is what two answers must share to agree. A comparison whose most common verdict
    has a share below `threshold` is reopened for one more judgment (`mode="overlap"`, while its overlap is
    below `max_overlap`) or else set aside as disputed for an admin. Ratings are not adjudicated.
    """

    threshold: float
    mode: Literal["overlap", "admin"]
    max_overlap: int
    verdict: Callable[[str, Mapping[str, Any]], Hashable]


@dataclass(frozen=True)
class JudgmentSummary:
    judgment_id: int
    annotator: str
    answer: dict[str, Any]  # canonical positions
    rationale: str | None


@dataclass(frozen=True)
class AdjudicationItem:
    comparison_id: int
    kind: str
    status: str
    overlap: int
    escalations: int
    prompt_messages: list[dict[str, str]]
    responses: list[str]  # canonical order
    judgments: list[JudgmentSummary]
    resolution: dict[str, Any] | None
    resolved_by: str | None


@dataclass(frozen=True)
class StudyRecord:
    id: int
    name: str
    quota: int
    items: int
    completion_code: str
    completion_url: str | None
    participants: int
    completed: int


@dataclass(frozen=True)
class Participant:
    study: StudyRecord
    annotator_id: int
    participant_id: str
    completed_at: datetime | None


@dataclass(frozen=True)
class ParticipantWork:
    """What a participant did, for payment: items judged and skipped, and the time it took."""

    participant_id: str
    platform_study_id: str | None
    session_id: str | None
    annotator: str
    started_at: datetime
    completed_at: datetime | None
    judgments: int
    skips: int
    active_seconds: float  # the sum of the judgments' timed durations
    last_activity_at: datetime | None

    @property
    def elapsed_seconds(self) -> float:
        """From entry to the last judgment (or completion): the wall-clock time spent."""
        end = self.completed_at or self.last_activity_at
        return max(0.0, (end - self.started_at).total_seconds()) if end else 0.0


def entry_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def review_disagreement(connection: Connection, comparison_id: int, rule: DisagreementRule) -> bool:
    """Apply the rule to a comparison that just got its last wanted judgment; True if it must stay incomplete.

    Called inside the submitting transaction. A comparison that went to another judgment before and now
    agrees enough gets the majority's answer as its resolution.
    """
    row = connection.execute(
        select(_comparisons.c.kind, _comparisons.c.overlap, _comparisons.c.escalations).where(
            _comparisons.c.id == comparison_id
        )
    ).one()
    if row.kind == "rating":
        return False
    answers = [
        answer
        for (answer,) in connection.execute(
            select(_judgments.c.answer).where(_judgments.c.comparison_id == comparison_id).order_by(_judgments.c.id)
        )
    ]
    if len(answers) < 2:
        return False
    verdicts = [rule.verdict(row.kind, answer) for answer in answers]
    top, count = Counter(verdicts).most_common(1)[0]
    if count / len(answers) >= rule.threshold:
        if row.escalations:
            majority = next(answer for answer, verdict in zip(answers, verdicts, strict=True) if verdict == top)
            connection.execute(
                update(_comparisons)
                .where(_comparisons.c.id == comparison_id)
                .values(resolution=majority, resolved_by="majority")
            )
        return False
    if rule.mode == "overlap" and row.overlap < rule.max_overlap:
        values: dict[str, Any] = {"overlap": row.overlap + 1, "escalations": row.escalations + 1}
    else:
        values = {"status": "disputed"}
    connection.execute(update(_comparisons).where(_comparisons.c.id == comparison_id).values(**values))
    return True


class CrowdQueries(StoreBase):
    """Attention checks, qualification, adjudication and studies."""

    def _write_transaction(self) -> AbstractContextManager[Session]:
        raise NotImplementedError  # AssignmentQueries provides it (SQLite's write lock)

    # -- attention checks and gold items ---------------------------------------------------------

    def add_attention_checks(self, count: int, *, text: str = CANNED_BAD_TEXT, seed: int = 0) -> list[int]:
        """Make `count` attention checks on prompts that have a real response; returns their comparison ids.

        Each pairs one real response with `text` (stored once per prompt under the policy "attention-check"),
        in a random canonical order, the real one the gold winner. Prompts held out for evaluation are not used.
        """
        if count < 1:
            raise ApprenticeError(f"count must be at least 1, got {count}")
        if not text.strip():
            raise ApprenticeError("the attention check's text must not be empty")
        rng = random.Random(seed)
        with self._write_transaction() as session:
            policy = session.scalar(select(Policy).where(Policy.name == ATTENTION_POLICY))
            if policy is None:
                policy = Policy(name=ATTENTION_POLICY, kind="imported", model_path=None)
                session.add(policy)
                session.flush()
            used = set(
                session.scalars(select(Comparison.prompt_id).where(IS_ATTENTION))
            )  # one check per prompt at most
            real = session.execute(
                select(Response.prompt_id, func.min(Response.id))
                .join(Prompt, Prompt.id == Response.prompt_id)
                .where(Response.policy_id != policy.id, Prompt.held_out.is_(False))
                .group_by(Response.prompt_id)
                .order_by(Response.prompt_id)
            ).all()
            candidates = [(prompt_id, response_id) for prompt_id, response_id in real if prompt_id not in used]
            if len(candidates) < count:
                raise ApprenticeError(
                    f"only {len(candidates)} prompts have a response and no attention check yet; asked for {count}"
                )
            created = []
            for prompt_id, response_id in rng.sample(candidates, count):
                canned = self._canned_response(session, prompt_id, policy.id, text)
                real_first = rng.random() < 0.5
                members = [response_id, canned] if real_first else [canned, response_id]
                comparison = Comparison(
                    kind="pair",
                    prompt_id=prompt_id,
                    overlap=1,
                    gold={"winner": 0 if real_first else 1, "tie": False, "both_bad": False},
                    purpose=ATTENTION,
                    status="open",
                )
                comparison.members = [ComparisonMember(position=i, response_id=r) for i, r in enumerate(members)]
                session.add(comparison)
                session.flush()
                created.append(comparison.id)
            return created

    @staticmethod
    def _canned_response(session: Session, prompt_id: int, policy_id: int, text: str) -> int:
        text_hash = hashlib.sha256(text.encode()).hexdigest()
        existing = session.scalar(
            select(Response.id).where(Response.prompt_id == prompt_id, Response.text_hash == text_hash)
        )
        if existing is not None:
            return int(existing)
        row = Response(prompt_id=prompt_id, policy_id=policy_id, text=text, text_hash=text_hash, sampling={})
        session.add(row)
        session.flush()
        return row.id

    def gold_item_count(self) -> int:
        """Gold items that are not attention checks: the pool qualification draws from."""
        with self._transaction() as session:
            return int(session.scalar(select(func.count()).select_from(Comparison).where(IS_PLAIN_GOLD)) or 0)

    def gold_answers(self, annotator_id: int | None = None) -> list[tuple[int, str, dict[str, Any], dict[str, Any]]]:
        """(annotator id, kind, answer, gold) of studio judgments on gold items that are not attention checks,
        oldest first; for one annotator or all."""
        return self._gold_answers(IS_PLAIN_GOLD, annotator_id)

    def attention_answers(
        self, annotator_id: int | None = None
    ) -> list[tuple[int, str, dict[str, Any], dict[str, Any]]]:
        """(annotator id, kind, answer, gold) of studio judgments on attention checks, oldest first."""
        return self._gold_answers(and_(IS_GOLD, IS_ATTENTION), annotator_id)

    def _gold_answers(
        self, condition: Any, annotator_id: int | None
    ) -> list[tuple[int, str, dict[str, Any], dict[str, Any]]]:
        with self._transaction() as session:
            query = (
                select(Judgment.annotator_id, Comparison.kind, Judgment.answer, Comparison.gold)
                .join(Comparison, Comparison.id == Judgment.comparison_id)
                .where(condition, Judgment.source.in_(STUDIO_SOURCES))
                .order_by(Judgment.id)
            )
            if annotator_id is not None:
                query = query.where(Judgment.annotator_id == annotator_id)
            return [
                (int(row.annotator_id), row.kind, row.answer, gold_value(row.gold) or {})
                for row in session.execute(query)
            ]

    def last_judgment_on_gold(self, annotator_id: int) -> bool:
        """Whether this annotator's latest studio judgment answered a gold item (not an attention check)."""
        with self._transaction() as session:
            latest = session.scalar(
                select(func.max(Judgment.id)).where(
                    Judgment.annotator_id == annotator_id, Judgment.source.in_(STUDIO_SOURCES)
                )
            )
            if latest is None:
                return False
            return bool(
                session.scalar(
                    select(func.count())
                    .select_from(Judgment)
                    .join(Comparison, Comparison.id == Judgment.comparison_id)
                    .where(Judgment.id == latest, IS_PLAIN_GOLD)
                )
            )

    # -- adjudication ----------------------------------------------------------------------------

    def adjudication_items(self, *, include_resolved: bool = False) -> list[AdjudicationItem]:
        """Disputed comparisons (and, asked for, those resolved), with every judgment, oldest first."""
        with self._transaction() as session:
            condition = Comparison.status == "disputed"
            if include_resolved:
                condition = condition | Comparison.resolution.is_not(None)
            comparisons = list(session.scalars(select(Comparison).where(condition).order_by(Comparison.id)))
            items = []
            for comparison in comparisons:
                prompt = session.get(Prompt, comparison.prompt_id)
                texts = dict(
                    session.execute(
                        select(Response.id, Response.text).where(
                            Response.id.in_([member.response_id for member in comparison.members])
                        )
                    ).all()
                )
                judgments = [
                    JudgmentSummary(row.id, row.name, row.answer, row.rationale)
                    for row in session.execute(
                        select(Judgment.id, Annotator.name, Judgment.answer, Judgment.rationale)
                        .join(Annotator, Annotator.id == Judgment.annotator_id)
                        .where(Judgment.comparison_id == comparison.id)
                        .order_by(Judgment.id)
                    )
                ]
                items.append(
                    AdjudicationItem(
                        comparison_id=comparison.id,
                        kind=comparison.kind,
                        status=comparison.status,
                        overlap=comparison.overlap,
                        escalations=comparison.escalations,
                        prompt_messages=prompt.messages if prompt else [],
                        responses=[texts[member.response_id] for member in comparison.members],
                        judgments=judgments,
                        resolution=gold_value(comparison.resolution),
                        resolved_by=comparison.resolved_by,
                    )
                )
            return items

    def disputed_count(self) -> int:
        with self._transaction() as session:
            return int(
                session.scalar(select(func.count()).select_from(Comparison).where(Comparison.status == "disputed")) or 0
            )

    def resolve_comparison(self, comparison_id: int, answer: dict[str, Any], *, resolved_by: str) -> None:
        """Record an admin's answer to a disputed comparison (canonical positions); it becomes complete."""
        with self._write_transaction() as session:
            comparison = session.get(Comparison, comparison_id)
            if comparison is None or comparison.status != "disputed":
                raise ApprenticeError(f"comparison {comparison_id} is not waiting for adjudication")
            comparison.resolution = answer
            comparison.resolved_by = resolved_by
            comparison.status = "complete"

    # -- studies and participants ----------------------------------------------------------------

    def create_study(
        self, name: str, *, key_hash: str, quota: int, items: int, completion_code: str, completion_url: str | None
    ) -> StudyRecord:
        cleaned = name.strip()
        if not cleaned or len(cleaned) > 64 or not all(c.isalnum() or c in "-_." for c in cleaned):
            raise ApprenticeError(f"study name {name!r} must be 1-64 letters, digits, '-', '_' or '.'")
        if quota < 1 or items < 1:
            raise ApprenticeError(f"quota and items must be at least 1, got {quota} and {items}")
        code = completion_code.strip()
        if not code or len(code) > 64:
            raise ApprenticeError(f"completion code {completion_code!r} must be 1-64 characters")
        if completion_url is not None and not completion_url.startswith(("https://", "http://")):
            raise ApprenticeError(f"completion URL {completion_url!r} must start with https:// or http://")
        with self._write_transaction() as session:
            if session.scalar(select(Study.id).where(Study.name == cleaned)) is not None:
                raise ApprenticeError(f"a study named {cleaned!r} exists already")
            row = Study(
                name=cleaned,
                entry_key_hash=key_hash,
                quota=quota,
                items=items,
                completion_code=code,
                completion_url=completion_url,
            )
            session.add(row)
            session.flush()
            return StudyRecord(row.id, row.name, quota, items, code, completion_url, 0, 0)

    def studies(self) -> list[StudyRecord]:
        with self._transaction() as session:
            return [self._study_record(session, row) for row in session.scalars(select(Study).order_by(Study.id))]

    def study(self, *, study_id: int | None = None, name: str | None = None) -> StudyRecord | None:
        with self._transaction() as session:
            condition = Study.id == study_id if study_id is not None else Study.name == name
            row = session.scalar(select(Study).where(condition))
            return self._study_record(session, row) if row is not None else None

    def study_entry_valid(self, study_id: int, key_hash: str) -> bool:
        import hmac

        with self._transaction() as session:
            stored = session.scalar(select(Study.entry_key_hash).where(Study.id == study_id))
            return stored is not None and hmac.compare_digest(stored, key_hash)

    @staticmethod
    def _study_record(session: Session, row: Study) -> StudyRecord:
        participants, completed = session.execute(
            select(func.count(StudyParticipant.id), func.count(StudyParticipant.completed_at)).where(
                StudyParticipant.study_id == row.id
            )
        ).one()
        return StudyRecord(
            row.id,
            row.name,
            row.quota,
            row.items,
            row.completion_code,
            row.completion_url,
            int(participants),
            int(completed),
        )

    def enter_study(
        self, study_id: int, participant_id: str, *, platform_study_id: str | None, session_id: str | None
    ) -> AnnotatorAccount:
        """The participant's annotator account: made on their first entry (within the quota), reused after."""
        with self._write_transaction() as session:
            study = session.scalar(select(Study).where(Study.id == study_id).with_for_update())
            if study is None:
                raise ApprenticeError(f"no study {study_id}")
            known = session.scalar(
                select(StudyParticipant).where(
                    StudyParticipant.study_id == study_id, StudyParticipant.participant_id == participant_id
                )
            )
            if known is None:
                started = session.scalar(
                    select(func.count(StudyParticipant.id)).where(StudyParticipant.study_id == study_id)
                )
                if int(started or 0) >= study.quota:
                    raise StudyFull(f"study {study.name} has all its {study.quota} participants")
                annotator = Annotator(name=_free_name(session, f"{study.name}/{participant_id}"), kind="human")
                session.add(annotator)
                session.flush()
                known = StudyParticipant(
                    study_id=study_id,
                    annotator_id=annotator.id,
                    participant_id=participant_id,
                    platform_study_id=platform_study_id,
                    session_id=session_id,
                )
                session.add(known)
            elif session_id:
                known.session_id = session_id
            session.flush()
            row = session.execute(select(*ACCOUNT_COLUMNS).where(Annotator.id == known.annotator_id)).one()
            return account_from_row(row)

    def participant(self, annotator_id: int) -> Participant | None:
        with self._transaction() as session:
            row = session.scalar(select(StudyParticipant).where(StudyParticipant.annotator_id == annotator_id))
            if row is None:
                return None
            study = session.get(Study, row.study_id)
            assert study is not None  # a foreign key
            return Participant(
                self._study_record(session, study), annotator_id, row.participant_id, aware(row.completed_at)
            )

    def complete_participant(self, annotator_id: int) -> None:
        """Mark a participant done (once; later calls keep the first time)."""
        with self._write_transaction() as session:
            session.execute(
                update(StudyParticipant)
                .where(StudyParticipant.annotator_id == annotator_id, StudyParticipant.completed_at.is_(None))
                .values(completed_at=utc_now())
            )

    def study_payments(self, study_id: int) -> list[ParticipantWork]:
        """Per participant of a study, in order of entry: items done and time spent."""
        with self._transaction() as session:
            rows = session.execute(
                select(StudyParticipant, Annotator.name)
                .join(Annotator, Annotator.id == StudyParticipant.annotator_id)
                .where(StudyParticipant.study_id == study_id)
                .order_by(StudyParticipant.id)
            ).all()
            ids = [participant.annotator_id for participant, _ in rows]
            work = {
                int(annotator_id): (int(count), float(total or 0) / 1000, last)
                for annotator_id, count, total, last in session.execute(
                    select(
                        Judgment.annotator_id,
                        func.count(Judgment.id),
                        func.sum(Judgment.duration_ms),
                        func.max(Judgment.created_at),
                    )
                    .where(Judgment.annotator_id.in_(ids))
                    .group_by(Judgment.annotator_id)
                )
            }
            skips = dict(
                session.execute(
                    select(Assignment.annotator_id, func.count())
                    .where(Assignment.annotator_id.in_(ids), Assignment.status == "skipped")
                    .group_by(Assignment.annotator_id)
                ).all()
            )
        result = []
        for participant, name in rows:
            judged, seconds, last = work.get(participant.annotator_id, (0, 0.0, None))
            result.append(
                ParticipantWork(
                    participant_id=participant.participant_id,
                    platform_study_id=participant.platform_study_id,
                    session_id=participant.session_id,
                    annotator=name,
                    started_at=aware(participant.started_at),  # type: ignore[arg-type]
                    completed_at=aware(participant.completed_at),
                    judgments=judged,
                    skips=int(skips.get(participant.annotator_id, 0)),
                    active_seconds=round(seconds, 1),
                    last_activity_at=aware(last),
                )
            )
        return result


def _free_name(session: Session, wanted: str) -> str:
    """`wanted`, or `wanted#2`, `#3`... when an annotator of that name exists already (names are unique)."""
    name, number = wanted, 1
    while session.scalar(select(Annotator.id).where(Annotator.name == name)) is not None:
        number += 1
        name = f"{wanted}#{number}"
    return name
