"""The JSON API for annotating: fetch the next task, submit, skip, undo, progress. Token authentication."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from apprentice.studio import crowd
from apprentice.studio.answers import canonical_answer, matches_gold
from apprentice.studio.context import StudioContext
from apprentice.studio.deps import ApiCaller, Context, SignedIn
from apprentice.studio.schemas import (
    JudgmentIn,
    JudgmentOut,
    NextTaskOut,
    ProgressOut,
    SkipIn,
    SkipOut,
    TaskOut,
    UndoOut,
)

router = APIRouter(prefix="/api/v1", tags=["annotate"])
AssignmentId = Annotated[int, Path(ge=1, le=2**31 - 1, description="From the task you were given.")]


async def _next(context: StudioContext, caller: SignedIn) -> TaskOut | None:
    lease = await context.run(crowd.api_lease, context, caller)  # qualification and a study's end gate this
    if lease is None:
        return None
    task = await context.run(context.store.next_task, caller.id, **lease.keywords())
    return TaskOut.of(task, criteria=context.settings.criteria) if task is not None else None


@router.get("/tasks/next")
async def next_task(caller: ApiCaller, context: Context, include_progress: bool = False) -> NextTaskOut:
    """Your next task: the one you hold already, or a newly leased one. `task` is null when none is left."""
    task = await _next(context, caller)
    progress = (
        ProgressOut.of(await context.run(context.store.annotator_progress, caller.id)) if include_progress else None
    )
    return NextTaskOut(task=task, progress=progress)


@router.get("/assignments/{assignment_id}")
async def get_assignment(assignment_id: AssignmentId, caller: ApiCaller, context: Context) -> TaskOut:
    """A task you hold (404 for anyone else's)."""
    task = await context.run(context.store.task_for, caller.id, assignment_id)
    return TaskOut.of(task, criteria=context.settings.criteria)


@router.post("/assignments/{assignment_id}/judgment")
async def submit_judgment(
    assignment_id: AssignmentId, body: JudgmentIn, caller: ApiCaller, context: Context
) -> JudgmentOut:
    """Answer a task you hold. Retrying with the same idempotency key returns the stored judgment."""
    display = body.answer.display()
    settings = context.settings
    lease = await context.run(crowd.api_lease, context, caller) if body.include_next else None
    outcome = await context.run(
        context.store.submit_judgment,
        caller.id,
        assignment_id,
        canonical_answer=lambda kind, order: canonical_answer(kind, display, order),
        idempotency_key=body.idempotency_key,
        source="api" if caller.csrf is None else "studio",
        rationale=body.rationale or None,
        duration_ms=body.duration_ms,
        then_lease=lease,
        review=crowd.disagreement_rule(settings),
    )
    gold_correct = None
    if context.settings.gold_feedback and outcome.gold is not None:
        gold_correct = matches_gold(outcome.kind, outcome.answer, outcome.gold)
    return JudgmentOut(
        judgment_id=outcome.judgment_id,
        created=outcome.created,
        gold_correct=gold_correct,
        next=TaskOut.of(outcome.next_task, criteria=settings.criteria) if outcome.next_task is not None else None,
    )


@router.post("/assignments/{assignment_id}/skip")
async def skip_assignment(assignment_id: AssignmentId, body: SkipIn, caller: ApiCaller, context: Context) -> SkipOut:
    """Give a task back with a reason; you will not get it again."""
    await context.run(context.store.skip_assignment, caller.id, assignment_id, body.reason)
    return SkipOut(skipped=True, next=await _next(context, caller) if body.include_next else None)


@router.post("/undo")
async def undo(caller: ApiCaller, context: Context) -> UndoOut:
    """Take back your last judgment if it is within the undo window; its task becomes yours again.

    409 for an answer to a check item whose feedback was shown: it stands."""
    if not await context.run(crowd.undo_allowed, context, caller):
        return UndoOut(undone=False, assignment_id=None)
    assignment_id = await context.run(
        context.store.undo_last_judgment,
        caller.id,
        window_seconds=context.settings.undo_seconds,
        lease_seconds=context.settings.lease_seconds,
        keep_gold=context.settings.gold_feedback,
    )
    return UndoOut(undone=assignment_id is not None, assignment_id=assignment_id)


@router.get("/progress")
async def progress(caller: ApiCaller, context: Context) -> ProgressOut:
    """How many tasks you judged and skipped, and how many are left for you."""
    return ProgressOut.of(await context.run(context.store.annotator_progress, caller.id))
