"""What the studio does for a crowd: qualification, attention checks, adjudication rules and study links.

- Qualification: with `[studio] qualification_items` above 0, an annotator's first gold items (not attention
  checks) are their test. Until they have answered that many (or every gold item there is, if fewer) they
  get only gold items, with feedback and the guidelines beside them; then they pass if the share right is
  at least `qualification_threshold`, and get real tasks, or fail and get none. Admins are exempt.
- Attention checks are drawn at `attention_rate` (see `apprentice.store.crowd` for how they are made).
- Adjudication: `disagreement_rule` turns the settings into the store's rule.
- Studies: an entry link carries a random key (the store keeps its SHA-256) and the platform's
  placeholders; a participant is done after the study's number of items, or when nothing is left for them.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from apprentice.settings import StudioSection
from apprentice.store import Store
from apprentice.store.assignments import LeaseRequest
from apprentice.store.crowd import DisagreementRule, ParticipantWork, StudyRecord, entry_key_hash
from apprentice.studio.answers import matches_gold, outcome
from apprentice.studio.context import StudioContext
from apprentice.studio.deps import SignedIn

QualificationState = Literal["qualifying", "passed", "failed", "no-items"]
# Prolific fills these placeholders in a study's URL; other platforms take the same names by configuration.
PLATFORM_PLACEHOLDERS = {
    "PROLIFIC_PID": "{{%PROLIFIC_PID%}}",
    "STUDY_ID": "{{%STUDY_ID%}}",
    "SESSION_ID": "{{%SESSION_ID%}}",
}


@dataclass(frozen=True)
class Qualification:
    state: QualificationState
    answered: int
    correct: int
    needed: int  # qualification_items, or every gold item there is if fewer
    threshold: float

    @property
    def label(self) -> str:
        if self.state == "no-items":
            return "qualifying (no gold items yet)"
        figures = f"{self.correct} of {self.answered} right" if self.answered else "not started"
        return f"{self.state}: {figures}, {self.needed} needed at {self.threshold:.0%}"


def qualification_from(
    answers: Iterable[tuple[str, dict[str, object], dict[str, object]]], *, items: int, threshold: float, pool: int
) -> Qualification:
    """The state after these gold answers (kind, answer, gold; oldest first) with `pool` gold items in all."""
    needed = min(items, pool)
    scored = [matches_gold(kind, answer, gold) for kind, answer, gold in answers][:needed] if needed else []
    correct = sum(scored)
    if needed == 0:
        return Qualification("no-items", 0, 0, 0, threshold)
    if len(scored) < needed:
        return Qualification("qualifying", len(scored), correct, needed, threshold)
    state: QualificationState = "passed" if correct / needed >= threshold else "failed"
    return Qualification(state, len(scored), correct, needed, threshold)


def qualification_of(store: Store, settings: StudioSection, annotator_id: int) -> Qualification | None:
    """This annotator's qualification; None where none is asked for."""
    if settings.qualification_items == 0:
        return None
    answers = [(kind, answer, gold) for _, kind, answer, gold in store.gold_answers(annotator_id)]
    return qualification_from(
        answers,
        items=settings.qualification_items,
        threshold=settings.qualification_threshold,
        pool=store.gold_item_count(),
    )


def qualifications(store: Store, settings: StudioSection) -> dict[int, Qualification]:
    """Every annotator's qualification who answered a gold item (for the dashboard); empty when it is off."""
    if settings.qualification_items == 0:
        return {}
    by_annotator: dict[int, list[tuple[str, dict[str, object], dict[str, object]]]] = {}
    for annotator_id, kind, answer, gold in store.gold_answers():
        by_annotator.setdefault(annotator_id, []).append((kind, answer, gold))
    pool = store.gold_item_count()
    return {
        annotator_id: qualification_from(
            answers, items=settings.qualification_items, threshold=settings.qualification_threshold, pool=pool
        )
        for annotator_id, answers in by_annotator.items()
    }


@dataclass(frozen=True)
class LeasePlan:
    """How to give this annotator work: the lease to ask for, or the page to send them to instead."""

    lease: LeaseRequest | None  # None: no tasks for them now
    qualification: Qualification | None
    stop_page: str | None = None  # where to go instead of a task (a failed qualification, a finished study)
    when_empty: str | None = None  # where to go when no task is left (a study's completion page)

    def __post_init__(self) -> None:
        if (self.lease is None) != (self.stop_page is not None):
            raise ValueError("a lease plan gives either a lease or a page to go to instead")


def lease_plan(context: StudioContext, user: SignedIn) -> LeasePlan:
    """The gates in order: a failed qualification, a finished study, the qualification test, the study's items."""
    settings = context.settings
    lease = LeaseRequest(settings.lease_seconds, settings.gold_rate, context.rng, settings.attention_rate)
    if user.account.is_admin:
        return LeasePlan(lease, None)
    store = context.store
    memo = context.crowd
    # A pass is final (a gold item's answer cannot be undone while qualification is on): remembered, so the
    # busy path of a qualified annotator makes no query for it.
    qualification = None if user.id in memo.qualified else qualification_of(store, settings, user.id)
    if qualification is not None and qualification.state == "passed":
        memo.qualified.add(user.id)
    if qualification is not None and qualification.state == "failed":
        return LeasePlan(None, qualification, stop_page="/qualification")
    # Whether an account came through a study link is fixed when it is made.
    participant = store.participant(user.id) if memo.participant.get(user.id, True) else None
    memo.participant[user.id] = participant is not None
    if participant is not None and participant.completed_at is not None:
        return LeasePlan(None, qualification, stop_page="/study/done")
    if qualification is not None and qualification.state != "passed":
        gold_only = LeaseRequest(settings.lease_seconds, 0.0, context.rng, only_gold=True)
        return LeasePlan(gold_only, qualification, when_empty="/qualification")
    if participant is None:
        return LeasePlan(lease, qualification)
    # A participant is done after the study's number of judgments (checks included) or when none is left.
    if store.annotator_progress(user.id).judged >= participant.study.items:
        return LeasePlan(None, qualification, stop_page="/study/done")
    return LeasePlan(lease, qualification, when_empty="/study/done")


def taking_qualification(context: StudioContext, user: SignedIn) -> bool:
    """Whether this annotator's next gold answer counts for their qualification (so it gets feedback)."""
    if user.account.is_admin or user.id in context.crowd.qualified:
        return False
    qualification = qualification_of(context.store, context.settings, user.id)
    return qualification is not None and qualification.state == "qualifying"


def undo_allowed(context: StudioContext, user: SignedIn) -> bool:
    """Where qualification is asked for, a gold item's answer is final: its feedback shows the right answer,
    and taking the answer back would let the annotator answer again."""
    if context.settings.qualification_items == 0 or user.account.is_admin:
        return True
    return not context.store.last_judgment_on_gold(user.id)


def api_lease(context: StudioContext, user: SignedIn) -> LeaseRequest | None:
    """The lease for an API caller: the same gates as the pages (None: no task for them)."""
    return lease_plan(context, user).lease


def disagreement_rule(settings: StudioSection) -> DisagreementRule | None:
    if settings.adjudicate_below <= 0:
        return None
    return DisagreementRule(
        threshold=settings.adjudicate_below,
        mode=settings.adjudication,
        max_overlap=settings.adjudication_max_overlap,
        verdict=outcome,
    )


def create_study(
    store: Store,
    name: str,
    *,
    quota: int,
    items: int,
    completion_code: str,
    completion_url: str | None,
    public_url: str,
) -> tuple[StudyRecord, str]:
    """A new study and its entry link (shown once: only the key's hash is stored)."""
    key = secrets.token_urlsafe(24)
    study = store.create_study(
        name,
        key_hash=entry_key_hash(key),
        quota=quota,
        items=items,
        completion_code=completion_code,
        completion_url=completion_url,
    )
    return study, entry_link(public_url, study.id, key)


def entry_link(public_url: str, study_id: int, key: str) -> str:
    # The placeholders' braces are left readable: Prolific matches them literally.
    query = urlencode(PLATFORM_PLACEHOLDERS, safe="{}%")
    return f"{public_url.rstrip('/')}/study/{study_id}/{key}?{query}"


PAYMENT_COLUMNS = (
    "participant_id",
    "study_id",
    "session_id",
    "annotator",
    "started_at",
    "completed_at",
    "judgments",
    "skips",
    "active_seconds",
    "elapsed_seconds",
)


def payments_csv(rows: Iterable[ParticipantWork]) -> str:
    """One line per participant: items done and time spent, for paying them."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PAYMENT_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row.participant_id,
                row.platform_study_id or "",
                row.session_id or "",
                row.annotator,
                row.started_at.isoformat(timespec="seconds"),
                row.completed_at.isoformat(timespec="seconds") if row.completed_at else "",
                row.judgments,
                row.skips,
                f"{row.active_seconds:.1f}",
                f"{row.elapsed_seconds:.1f}",
            ]
        )
    return buffer.getvalue()
