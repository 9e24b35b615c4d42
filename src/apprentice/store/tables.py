"""The tables of the project store (SQLAlchemy 2, declarative).

Only `apprentice.store` imports this module: other modules read and write through `Store`.
Every change here comes with an Alembic revision in `migrations/versions/`; a test checks that the
migrations and these tables describe the same schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints so that migrations can alter them on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Prompt(Base):
    """A conversation to be answered: `messages` ends with the user's turn."""

    __tablename__ = "prompts"

    id: Mapped[int] = mapped_column(primary_key=True)
    # sha256 of the canonical JSON of `messages`: the same prompt imported twice is stored once.
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    messages: Mapped[list[Any]] = mapped_column(JSON)
    text: Mapped[str] = mapped_column(Text)  # the last user turn, for display and search
    category: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(255))
    held_out: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Policy(Base):
    """A model that produced responses: the base model, an imported source, or a trained checkpoint."""

    __tablename__ = "policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # base | trained | imported
    model_path: Mapped[str | None] = mapped_column(Text)  # a folder or Hugging Face id; None for imports
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("policies.id"))
    round: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Response(Base):
    """One candidate answer to a prompt, with the policy and sampling settings that made it."""

    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("prompt_id", "text_hash", name="uq_responses_prompt_text"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64))
    num_tokens: Mapped[int | None] = mapped_column(Integer)
    finished: Mapped[bool] = mapped_column(Boolean, default=True)  # ended with EOS, not cut at the limit
    sampling: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Comparison(Base):
    """Something for evaluators to judge: two responses (pair), K (ranking) or one (rating)."""

    __tablename__ = "comparisons"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # pair | ranking | rating
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    round: Mapped[int] = mapped_column(Integer, default=0)
    overlap: Mapped[int] = mapped_column(Integer, default=1)  # judgments wanted
    priority: Mapped[float] = mapped_column(Float, default=0.0)  # higher is shown sooner
    gold: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the known answer of a gold item
    # open | complete | closed | disputed (its judgments disagree: waiting for an admin's adjudication)
    status: Mapped[str] = mapped_column(String(16), default="open")
    # None for a task or a gold item; "attention" for an attention check (a gold item with an obvious answer).
    purpose: Mapped[str | None] = mapped_column(String(16))
    # Adjudication: how often overlap was raised for a third judgment, and the answer training uses instead of
    # the disagreeing judgments (canonical positions), with who decided it ("majority" or an admin's name).
    escalations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    resolution: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    resolved_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    members: Mapped[list[ComparisonMember]] = relationship(
        order_by="ComparisonMember.position", cascade="all, delete-orphan", lazy="selectin"
    )


# The studio's queue: open comparisons by priority (highest first), oldest first within a priority. With
# this order in an index, finding the next task reads the first few entries instead of sorting them all.
# It also serves any lookup by status, or by status and priority (migration 0006 dropped a narrower index).
Index("ix_comparisons_queue", Comparison.status, Comparison.priority.desc(), Comparison.id)


class ComparisonMember(Base):
    """A response's canonical position in a comparison; answers are stored in these positions."""

    __tablename__ = "comparison_members"

    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id"), index=True)


class Annotator(Base):
    """A person (or a simulated or imported source) who judges; admins also manage the studio."""

    __tablename__ = "annotators"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="annotator")  # annotator | admin
    kind: Mapped[str] = mapped_column(String(16), default="human")  # human | simulated | imported
    credential_hash: Mapped[str | None] = mapped_column(String(255))  # slow hash, never the secret
    # A short fast hash of the API token's secret: a guess that misses it is refused without the slow hash.
    credential_check: Mapped[str | None] = mapped_column(String(32))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The studio's one-time sign-in link: a slow hash of its secret, cleared when used.
    signin_hash: Mapped[str | None] = mapped_column(String(255))
    signin_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    signin_check: Mapped[str | None] = mapped_column(String(32))  # as credential_check, for the sign-in link
    # Bumped to end every session of this annotator at once (disable, sign out everywhere).
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class AuthFailure(Base):
    """Failed sign-in and token attempts per scope (a client address or an account) in the current window.

    Kept in the store so that every server process counts the same attempts.
    """

    __tablename__ = "auth_failures"

    scope: Mapped[str] = mapped_column(String(128), primary_key=True)  # "client:ADDRESS" | "account:ID"
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Assignment(Base):
    """A comparison leased to one annotator, with the order its responses were shown in."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("comparison_id", "annotator_id", name="uq_assignments_pair"),
        # The tasks an annotator holds (looked up on every submission) without visiting all they ever had.
        Index("ix_assignments_annotator_status", "annotator_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Looked up through uq_assignments_pair, whose first column it is (no index of its own).
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    order_shown: Mapped[list[Any]] = mapped_column(JSON)  # canonical positions, in display order
    status: Mapped[str] = mapped_column(String(16), default="leased")  # leased | submitted | skipped | expired
    leased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    lease_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    skip_reason: Mapped[str | None] = mapped_column(Text)


class Judgment(Base):
    """One annotator's answer to one comparison, in canonical positions.

    `answer` by kind: pair `{"winner": 0 | 1 | None, "tie": bool, "both_bad": bool}`; ranking
    `{"ranks": [rank of position 0, ...]}` (1 is best, equal ranks are ties); rating
    `{"score": 1..7, "criteria": {name: score}}`.
    """

    __tablename__ = "judgments"
    __table_args__ = (UniqueConstraint("comparison_id", "annotator_id", name="uq_judgments_pair"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Looked up through uq_judgments_pair, whose first column it is (no index of its own).
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"))
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)
    order_shown: Mapped[list[Any] | None] = mapped_column(JSON)
    rationale: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    # A retried submission carries the same key and is stored once.
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # studio | api | simulated | imported
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class JudgmentRevision(Base):
    """An answer its annotator later corrected: the judgment row holds the new answer, this the one it replaced."""

    __tablename__ = "judgment_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    judgment_id: Mapped[int] = mapped_column(ForeignKey("judgments.id", ondelete="CASCADE"), index=True)
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)
    rationale: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # when the replaced answer was given
    replaced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Study(Base):
    """A crowd study (Prolific-style): an entry link, a quota of participants and a completion code."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    entry_key_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the link's random key, never the key
    quota: Mapped[int] = mapped_column(Integer)  # participants who may start
    items: Mapped[int] = mapped_column(Integer)  # judgments a participant makes before the completion code
    completion_code: Mapped[str] = mapped_column(String(64))
    completion_url: Mapped[str | None] = mapped_column(Text)  # where "Return to the platform" leads
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class StudyParticipant(Base):
    """A platform participant of a study and the annotator account made for them on entry."""

    __tablename__ = "study_participants"
    __table_args__ = (UniqueConstraint("study_id", "participant_id", name="uq_study_participants_pair"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), unique=True)
    participant_id: Mapped[str] = mapped_column(String(64))  # PROLIFIC_PID
    platform_study_id: Mapped[str | None] = mapped_column(String(64))  # STUDY_ID
    session_id: Mapped[str | None] = mapped_column(String(64))  # SESSION_ID of the latest entry
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Run(Base):
    """A unit of work with a config and metrics: generation, reward training, policy training, evaluation."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # generate | reward | policy | eval | quality
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | failed
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    output_path: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JudgmentWeight(Base):
    """The training weight a quality run gave one judgment. `judgments.weight` holds the newest run's; these
    rows keep every run's, so a finished reward run's weights stay readable after the next quality run."""

    __tablename__ = "judgment_weights"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    judgment_id: Mapped[int] = mapped_column(ForeignKey("judgments.id", ondelete="CASCADE"), primary_key=True)
    weight: Mapped[float] = mapped_column(Float)


class LoopRound(Base):
    """One round of the loop and the step it has reached, so a stopped loop resumes where it was."""

    __tablename__ = "rounds"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    # generate | collect | quality | reward | policy | evaluate | done: the next step to run
    step: Mapped[str] = mapped_column(String(16), default="generate")
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))  # the policy that generates this round
    new_policy_id: Mapped[int | None] = mapped_column(ForeignKey("policies.id"))
    # What each finished step produced (counts, folders, metrics), by step name.
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Judge(Base):
    """A machine judge: the `ai` annotator it judges as, and the model it asks (never its API key)."""

    __tablename__ = "judges"

    id: Mapped[int] = mapped_column(primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), unique=True)
    backend: Mapped[str] = mapped_column(String(16))  # local | endpoint
    model: Mapped[str] = mapped_column(Text)  # a folder, a cached id or 'default'; the endpoint's model name
    url: Mapped[str | None] = mapped_column(Text)  # the endpoint's base URL
    # The name of the environment variable that holds the endpoint's API key, read at request time.
    api_key_env: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
