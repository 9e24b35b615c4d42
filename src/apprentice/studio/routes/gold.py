"""The admin's gold view: set a comparison's known answer, which then scores the annotators who meet it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from apprentice.studio.answers import describe_answer, display_answer, gold_answer
from apprentice.studio.context import StudioContext
from apprentice.studio.deps import AdminUser, Context, SignedIn, check_csrf
from apprentice.studio.rendering import render_markdown

router = APIRouter(prefix="/admin/gold", include_in_schema=False)
ComparisonId = Annotated[int, Path(ge=1, le=2**31 - 1)]
CANDIDATES_SHOWN = 20


def _describe(kind: str, size: int, gold: dict[str, Any]) -> str:
    return describe_answer(kind, display_answer(kind, gold, list(range(size))))


def _page(request: Request, admin: SignedIn, context: StudioContext, **extra: Any) -> Response:
    items = [
        {"id": shape.comparison_id, "kind": shape.kind, "answer": _describe(shape.kind, shape.size, shape.gold)}
        for shape in context.store.gold_items()
        if shape.gold is not None
    ]
    candidates = context.store.gold_candidates(limit=CANDIDATES_SHOWN, before_id=extra.pop("before", None))
    values = {
        "project_name": context.project_name,
        "user": admin,
        "items": items,
        "candidates": candidates,
        "more_before": candidates[-1][0] if len(candidates) == CANDIDATES_SHOWN else None,
        "view": None,
        "saved": None,
    }
    return context.templates.TemplateResponse(request, "admin_gold.html", {**values, **extra})


@router.get("")
def gold_items(
    request: Request,
    admin: AdminUser,
    context: Context,
    comparison: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    saved: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """The gold items, and (with ?comparison=ID) one comparison to give a known answer."""
    view = None
    if comparison is not None:
        view = context.store.comparison_view(comparison)
        if view is None:
            raise HTTPException(404, f"no comparison with id {comparison}")
    current = _describe(view.shape.kind, view.shape.size, view.shape.gold) if view and view.shape.gold else None
    return _page(
        request, admin, context, view=view, current=current, render=render_markdown, saved=saved, before=before
    )


@router.post("/{comparison_id}")
def set_gold(
    comparison_id: ComparisonId,
    admin: AdminUser,
    context: Context,
    answer: Annotated[str, Form(min_length=1, max_length=200)],
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    check_csrf(admin, csrf_token)
    shape = context.store.comparison_shapes([comparison_id]).get(comparison_id)
    if shape is None:
        raise HTTPException(404, f"no comparison with id {comparison_id}")
    context.store.set_gold_answers({comparison_id: gold_answer(shape.kind, shape.size, answer.strip())})
    return RedirectResponse(f"/admin/gold?saved={comparison_id}", status_code=303)
