"""Admin pages: the dashboard, annotator management (add, sign-in links, disable) and export."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Path, Request
from fastapi.responses import RedirectResponse, Response

from apprentice.preferences import preference_pairs
from apprentice.studio.addresses import link_base
from apprentice.studio.context import StudioContext
from apprentice.studio.dashboard import build_dashboard
from apprentice.studio.deps import AdminUser, Context, check_csrf
from apprentice.studio.security import issue_signin_link

router = APIRouter(prefix="/admin", include_in_schema=False)
AnnotatorId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("")
def dashboard(request: Request, admin: AdminUser, context: Context) -> Response:
    return context.templates.TemplateResponse(
        request,
        "admin_dashboard.html",
        {
            "project_name": context.project_name,
            "user": admin,
            "board": build_dashboard(context.store, context.flags, context.settings),
        },
    )


def _annotators_page(request: Request, admin: Any, context: StudioContext, **extra: Any) -> Response:
    values = {
        "project_name": context.project_name,
        "user": admin,
        "accounts": context.store.annotator_accounts(),
        "new_link": None,
        "link_for": None,
        **extra,
    }
    headers = {"Cache-Control": "no-store"} if values["new_link"] else None
    return context.templates.TemplateResponse(request, "admin_annotators.html", values, headers=headers)


@router.get("/annotators")
def annotators(request: Request, admin: AdminUser, context: Context) -> Response:
    return _annotators_page(request, admin, context)


def _link(request: Request, context: StudioContext, annotator_id: int) -> tuple[str, str]:
    account = context.store.annotator_account(annotator_id=annotator_id)
    if account is None or account.kind != "human":
        raise HTTPException(404, f"no annotator with id {annotator_id}")
    settings = context.settings
    # Without [studio] public_url, the link names the address this admin reached the studio at (its port too).
    public_url = link_base(settings, request_base=str(request.base_url))
    link = issue_signin_link(context.store, account, public_url=public_url, valid_hours=settings.signin_link_hours)
    return account.name, link


@router.post("/annotators")
def add_annotator(
    request: Request,
    admin: AdminUser,
    context: Context,
    name: Annotated[str, Form(min_length=1, max_length=255)],
    role: Annotated[str, Form(pattern="^(annotator|admin)$")] = "annotator",
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    """Create an annotator and show their one-time sign-in link."""
    check_csrf(admin, csrf_token)
    account = context.store.add_studio_annotator(name, role=role)
    name, link = _link(request, context, account.id)
    return _annotators_page(request, admin, context, new_link=link, link_for=name)


@router.post("/annotators/{annotator_id}/link")
def new_link(
    request: Request,
    annotator_id: AnnotatorId,
    admin: AdminUser,
    context: Context,
    csrf_token: Annotated[str | None, Form()] = None,
) -> Response:
    check_csrf(admin, csrf_token)
    name, link = _link(request, context, annotator_id)
    return _annotators_page(request, admin, context, new_link=link, link_for=name)


def _set_disabled(context: StudioContext, annotator_id: int, disabled: bool) -> Response:
    account = context.store.annotator_account(annotator_id=annotator_id)
    if account is None:
        raise HTTPException(404, f"no annotator with id {annotator_id}")
    context.store.set_annotator_disabled(account.name, disabled)
    return RedirectResponse("/admin/annotators", status_code=303)


@router.post("/annotators/{annotator_id}/disable")
def disable(
    annotator_id: AnnotatorId, admin: AdminUser, context: Context, csrf_token: Annotated[str | None, Form()] = None
) -> Response:
    check_csrf(admin, csrf_token)
    if annotator_id == admin.id:
        raise HTTPException(400, "You cannot disable yourself; ask another admin or use the command line.")
    return _set_disabled(context, annotator_id, True)


@router.post("/annotators/{annotator_id}/enable")
def enable(
    annotator_id: AnnotatorId, admin: AdminUser, context: Context, csrf_token: Annotated[str | None, Form()] = None
) -> Response:
    check_csrf(admin, csrf_token)
    return _set_disabled(context, annotator_id, False)


@router.get("/export/preferences.jsonl")
def export_preferences(admin: AdminUser, context: Context) -> Response:
    """Every judged pair as TRL conversational preference rows, one JSON object a line."""
    rows = [pair.to_trl() for pair in preference_pairs(context.store.judged_comparisons())]
    body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return Response(
        body,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="preferences.jsonl"'},
    )
