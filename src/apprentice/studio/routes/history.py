"""An annotator's own answers: the list, and correcting one (the replaced answer is kept on record)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from apprentice.studio.answers import CRITERIA, canonical_answer, describe_answer, display_answer
from apprentice.studio.deps import Context, PageUser, check_csrf
from apprentice.studio.rendering import render_markdown
from apprentice.studio.routes.judging import Score, form_ranks
from apprentice.studio.schemas import _one_line

router = APIRouter(include_in_schema=False)
JudgmentId = Annotated[int, Path(ge=1, le=2**31 - 1)]
PAGE_SIZE = 50


@router.get("/history")
def history(
    request: Request,
    user: PageUser,
    context: Context,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    corrected: int | None = None,
) -> Response:
    store = context.store
    past = store.judgment_history(user.id, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    rows = [
        {
            "id": item.judgment_id,
            "when": item.answered_at,
            "kind": item.task.kind,
            "prompt": item.task.prompt_messages[-1].get("content", "") if item.task.prompt_messages else "",
            "answer": describe_answer(
                item.task.kind, display_answer(item.task.kind, item.answer, item.task.order_shown)
            ),
            "rationale": item.rationale,
            "corrections": item.corrections,
        }
        for item in past
    ]
    total = store.judgment_history_count(user.id)
    return context.templates.TemplateResponse(
        request,
        "history.html",
        {
            "project_name": context.project_name,
            "user": user,
            "rows": rows,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // PAGE_SIZE)),
            "corrected": corrected,
        },
    )


@router.get("/history/{judgment_id}")
def correction_page(request: Request, judgment_id: JudgmentId, user: PageUser, context: Context) -> Response:
    past = context.store.past_judgment(user.id, judgment_id)
    task = past.task
    previous: dict[str, Any] = {**display_answer(task.kind, past.answer, task.order_shown), "rationale": past.rationale}
    values: dict[str, Any] = {
        "project_name": context.project_name,
        "user": user,
        "task": task,
        "message": None,
        "can_undo": False,
        "undo_seconds": context.settings.undo_seconds,
        "undo_seconds_left": 0,
        "idempotency_key": "",
        "criteria": CRITERIA if context.settings.criteria else (),
        "render": render_markdown,
        "labels": [chr(ord("A") + index) for index in range(len(task.responses))],
        "action": f"/history/{judgment_id}",
        "previous": previous,
        "correcting": {"created_at": past.answered_at},
    }
    return context.templates.TemplateResponse(request, "judge.html", values)


@router.post("/history/{judgment_id}")
def correct(
    judgment_id: JudgmentId,
    user: PageUser,
    context: Context,
    csrf_token: Annotated[str | None, Form()] = None,
    choice: Annotated[str | None, Form(max_length=16)] = None,
    rank: Annotated[list[str] | None, Form()] = None,
    score: Score = None,
    helpful: Score = None,
    honest: Score = None,
    harmless: Score = None,
    rationale: Annotated[str | None, Form(max_length=500)] = None,
) -> Response:
    """Replace the answer; with gold feedback on, check items keep theirs (their answer was shown)."""
    check_csrf(user, csrf_token)
    criteria = {
        name: value for name, value in (("helpful", helpful), ("honest", honest), ("harmless", harmless)) if value
    }
    display: dict[str, Any] = {"choice": choice, "ranks": form_ranks(rank), "score": score, "criteria": criteria}
    context.store.correct_judgment(
        user.id,
        judgment_id,
        canonical_answer=lambda kind, order: canonical_answer(kind, display, order),
        rationale=_one_line(rationale) if rationale and rationale.strip() else None,
        source="studio",
        allow_gold=not context.settings.gold_feedback,
    )
    return RedirectResponse(f"/history?corrected={judgment_id}", status_code=303)
