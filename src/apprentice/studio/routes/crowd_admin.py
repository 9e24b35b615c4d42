"""Admin pages for crowd work: adjudicating disputed comparisons, and studies with their payment export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Path, Request
from fastapi.responses import RedirectResponse, Response

from apprentice.studio.crowd import payments_csv
from apprentice.studio.deps import AdminUser, Context, check_csrf
from apprentice.studio.rendering import render_markdown

router = APIRouter(prefix="/admin", include_in_schema=False)
ComparisonId = Annotated[int, Path(ge=1, le=2**31 - 1)]
StudyId = Annotated[int, Path(ge=1, le=2**31 - 1)]
PAIR_VERDICTS: dict[str, dict[str, Any]] = {
    "0": {"winner": 0, "tie": False, "both_bad": False},
    "1": {"winner": 1, "tie": False, "both_bad": False},
    "tie": {"winner": None, "tie": True, "both_bad": False},
    "both_bad": {"winner": None, "tie": False, "both_bad": True},
}


def describe(kind: str, answer: dict[str, Any]) -> str:
    """An answer in canonical positions, as the adjudication page names the responses (1, 2, ...)."""
    if kind == "pair":
        if answer.get("tie"):
            return "tie"
        if answer.get("both_bad"):
            return "both bad"
        winner = answer.get("winner")
        return f"response {winner + 1} is better" if isinstance(winner, int) else "no verdict"
    if kind == "ranking":
        ranks = answer.get("ranks") or []
        order = sorted(range(len(ranks)), key=lambda position: ranks[position])
        return "ranked " + " > ".join(str(position + 1) for position in order)
    return f"score {answer.get('score')}"


@router.get("/adjudication")
def adjudication(request: Request, admin: AdminUser, context: Context) -> Response:
    items = context.store.adjudication_items(include_resolved=True)
    return context.templates.TemplateResponse(
        request,
        "admin_adjudication.html",
        {
            "project_name": context.project_name,
            "user": admin,
            "disputed": [item for item in items if item.status == "disputed"],
            "resolved": [item for item in items if item.status != "disputed"],
            "describe": describe,
            "render": render_markdown,
        },
    )


@router.post("/adjudication/{comparison_id}")
def resolve(
    comparison_id: ComparisonId,
    admin: AdminUser,
    context: Context,
    csrf_token: Annotated[str | None, Form()] = None,
    verdict: Annotated[str | None, Form(max_length=16)] = None,
    judgment_id: Annotated[int | None, Form(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """Settle a disputed comparison: a pair's verdict, or any kind by taking one judgment's answer as right."""
    check_csrf(admin, csrf_token)
    item = next((item for item in context.store.adjudication_items() if item.comparison_id == comparison_id), None)
    if item is None:
        raise HTTPException(404, f"comparison {comparison_id} is not waiting for adjudication")
    if judgment_id is not None:
        chosen = next((j.answer for j in item.judgments if j.judgment_id == judgment_id), None)
        if chosen is None:
            raise HTTPException(422, f"judgment {judgment_id} is not one of comparison {comparison_id}'s")
        answer = chosen
    elif item.kind == "pair" and verdict in PAIR_VERDICTS:
        answer = PAIR_VERDICTS[verdict]
    else:
        raise HTTPException(422, f"verdict must be one of {', '.join(PAIR_VERDICTS)} for a pair, or give judgment_id")
    context.store.resolve_comparison(comparison_id, answer, resolved_by=admin.account.name)
    return RedirectResponse("/admin/adjudication", status_code=303)


@router.get("/studies")
def studies(request: Request, admin: AdminUser, context: Context) -> Response:
    return context.templates.TemplateResponse(
        request,
        "admin_studies.html",
        {"project_name": context.project_name, "user": admin, "studies": context.store.studies()},
    )


@router.get("/studies/{study_id}/payments.csv")
def payments(study_id: StudyId, admin: AdminUser, context: Context) -> Response:
    """Per participant: items judged and skipped, active and elapsed seconds, for payment."""
    study = context.store.study(study_id=study_id)
    if study is None:
        raise HTTPException(404, f"no study {study_id}")
    return Response(
        payments_csv(context.store.study_payments(study_id)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{study.name}-payments.csv"'},
    )
