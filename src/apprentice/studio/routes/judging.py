"""The judging pages: the next task, submit, skip, undo, and the guidelines."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response

from apprentice.store.assignments import AssignmentConflict
from apprentice.store.tables import utc_now
from apprentice.studio import crowd
from apprentice.studio.answers import CRITERIA, AnswerError, canonical_answer, matches_gold
from apprentice.studio.deps import Context, PageUser, check_csrf
from apprentice.studio.rendering import render_document, render_markdown
from apprentice.studio.schemas import _one_line

router = APIRouter(include_in_schema=False)
AssignmentId = Annotated[int, Path(ge=1, le=2**31 - 1)]
MESSAGES = {
    "saved": "Saved.",
    "skipped": "Skipped.",
    "undone": "Your last answer was taken back: answer it again.",
    "nothing-to-undo": "Too late to undo: the undo window has passed. Correct older answers under Your answers.",
    "gold-final": "That was a check item with feedback shown: its answer cannot be taken back.",
    "check-final": "Answers to qualification check items are final: they cannot be undone.",
    "gold-right": "Saved. That was a check item, and you got it right.",
    "gold-wrong": "Saved. That was a check item, and the expected answer was different: see the guidelines.",
}
Score = Annotated[int | None, Form(ge=1, le=7)]


def form_ranks(values: list[str] | None) -> list[int] | None:
    """The ranks a ranking form sent; the page fills none in, so a blank one means the annotator left it out."""
    if values is None:
        return None
    if any(not value.strip() for value in values):
        raise AnswerError("rank every response before sending the ranking (some ranks were left blank)")
    try:
        return [int(value) for value in values]
    except ValueError:
        raise AnswerError(f"each rank must be a whole number, got {values!r}") from None


def _redirect(done: str) -> Response:
    return RedirectResponse(f"/judge?done={done}", status_code=303)


@router.get("/")
def home(user: PageUser) -> Response:
    return RedirectResponse("/admin" if user.account.is_admin else "/judge", status_code=303)


@router.get("/judge")
def judge_page(request: Request, user: PageUser, context: Context, done: str | None = None) -> Response:
    settings = context.settings
    plan = crowd.lease_plan(context, user)  # qualification, attention checks, a study's end
    if plan.lease is None or plan.stop_page is not None:
        return RedirectResponse(plan.stop_page or "/qualification", status_code=303)
    task = context.store.next_task(user.id, **plan.lease.keywords())
    if task is None and plan.when_empty is not None:
        return RedirectResponse(plan.when_empty, status_code=303)
    testing = plan.qualification if plan.lease.only_gold else None
    progress = context.store.annotator_progress(user.id)
    last = context.store.last_judgment_time(user.id)
    undo_left = (timedelta(seconds=settings.undo_seconds) - (utc_now() - last)).total_seconds() if last else 0.0
    if not crowd.undo_allowed(context, user):
        undo_left = 0.0
    values: dict[str, Any] = {
        "project_name": context.project_name,
        "user": user,
        "task": task,
        "progress": progress,
        "total": progress.judged + progress.left,
        "message": MESSAGES.get(done or ""),
        "can_undo": undo_left > 0,
        "undo_seconds": settings.undo_seconds,
        "undo_seconds_left": max(0, int(undo_left)),
        "action": f"/judge/{task.assignment_id}" if task else "",
        "previous": {},
        "correcting": None,
        "idempotency_key": uuid.uuid4().hex,
        "criteria": CRITERIA if settings.criteria else (),
        "render": render_markdown,
        "labels": [chr(ord("A") + index) for index in range(len(task.responses))] if task else [],
        "qualification": testing,
        "guidelines": render_markdown(context.guidelines_markdown()) if testing else None,
    }
    return context.templates.TemplateResponse(request, "judge.html" if task else "done.html", values)


@router.post("/judge/{assignment_id}")
def submit(
    assignment_id: AssignmentId,
    user: PageUser,
    context: Context,
    csrf_token: Annotated[str | None, Form()] = None,
    idempotency_key: Annotated[str | None, Form(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")] = None,
    choice: Annotated[str | None, Form(max_length=16)] = None,
    rank: Annotated[list[str] | None, Form()] = None,
    score: Score = None,
    helpful: Score = None,
    honest: Score = None,
    harmless: Score = None,
    rationale: Annotated[str | None, Form(max_length=500)] = None,
    duration_ms: Annotated[int | None, Form(ge=0, le=86_400_000)] = None,
) -> Response:
    check_csrf(user, csrf_token)
    criteria = {
        name: value for name, value in (("helpful", helpful), ("honest", honest), ("harmless", harmless)) if value
    }
    display: dict[str, Any] = {"choice": choice, "ranks": form_ranks(rank), "score": score, "criteria": criteria}
    in_test = crowd.taking_qualification(context, user)  # qualification items always get feedback
    outcome = context.store.submit_judgment(
        user.id,
        assignment_id,
        canonical_answer=lambda kind, order: canonical_answer(kind, display, order),
        # Without a key (a form from an old page) the answer is stored once all the same: the assignment
        # takes one answer; only a retry cannot be told from a second answer.
        idempotency_key=idempotency_key or uuid.uuid4().hex,
        source="studio",
        rationale=_one_line(rationale) if rationale and rationale.strip() else None,
        duration_ms=duration_ms,
        review=crowd.disagreement_rule(context.settings),
    )
    if (context.settings.gold_feedback or in_test) and outcome.gold is not None:
        return _redirect("gold-right" if matches_gold(outcome.kind, outcome.answer, outcome.gold) else "gold-wrong")
    return _redirect("saved")


@router.post("/judge/{assignment_id}/skip")
def skip(
    assignment_id: AssignmentId,
    user: PageUser,
    context: Context,
    reason: Annotated[str, Form(min_length=1, max_length=500)],
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    check_csrf(user, csrf_token)
    context.store.skip_assignment(user.id, assignment_id, _one_line(reason) or "no reason given")
    return _redirect("skipped")


@router.post("/undo")
def undo(user: PageUser, context: Context, csrf_token: Annotated[str | None, Form()] = None) -> Response:
    check_csrf(user, csrf_token)
    settings = context.settings
    if not crowd.undo_allowed(context, user):
        return _redirect("check-final")
    try:
        undone = context.store.undo_last_judgment(
            user.id,
            window_seconds=settings.undo_seconds,
            lease_seconds=settings.lease_seconds,
            keep_gold=settings.gold_feedback,
        )
    except AssignmentConflict:
        return _redirect("gold-final")
    return _redirect("undone" if undone is not None else "nothing-to-undo")


@router.get("/guidelines")
def guidelines(request: Request, user: PageUser, context: Context) -> Response:
    return context.templates.TemplateResponse(
        request,
        "guidelines.html",
        {"project_name": context.project_name, "user": user, "body": render_document(context.guidelines_markdown())},
    )
