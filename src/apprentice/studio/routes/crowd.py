"""Crowd participants' pages: a study's entry link, its completion page, and the qualification result."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from apprentice.store.crowd import StudyFull, entry_key_hash
from apprentice.studio.crowd import lease_plan, qualification_of
from apprentice.studio.deps import Context, PageUser
from apprentice.studio.routes.auth import signed_in_response
from apprentice.studio.security import SIGNIN_COOKIE, bind_form_to_browser, browser_nonce

router = APIRouter(include_in_schema=False)
StudyId = Annotated[int, Path(ge=1, le=2**31 - 1)]
EntryKey = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]
# Platform ids: Prolific's are 24 hex digits; allow what other platforms use, nothing that needs escaping.
PlatformId = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
INVALID_STUDY_LINK = "This study link is not valid. Open the study again from the platform you came from."


def _platform_id(value: str | None, field: str, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise HTTPException(400, f"{field} is missing from the link: open the study from the platform.")
        return None
    if not PlatformId.match(value):
        raise HTTPException(400, f"{field} must be 1-64 letters, digits, '-' or '_', got {value[:80]!r}")
    return value


def _check_link(context: Context, study_id: int, key: str) -> None:
    if not context.store.study_entry_valid(study_id, entry_key_hash(key)):
        raise HTTPException(404, INVALID_STUDY_LINK)


@router.get("/study/{study_id}/{key}")
def study_entry(
    request: Request,
    study_id: StudyId,
    key: EntryKey,
    context: Context,
    participant: Annotated[str | None, Query(alias="PROLIFIC_PID", max_length=200)] = None,
    platform_study: Annotated[str | None, Query(alias="STUDY_ID", max_length=200)] = None,
    session: Annotated[str | None, Query(alias="SESSION_ID", max_length=200)] = None,
) -> Response:
    """A start page, not a sign-in: link checkers that open the link must not take a place in the study."""
    _check_link(context, study_id, key)
    participant = _platform_id(participant, "PROLIFIC_PID", required=True)
    study = context.store.study(study_id=study_id)
    assert study is not None  # the link was valid
    form_token = f"study:{study_id}:{key}:{participant}"
    # As on the sign-in page: the start form's CSRF token is bound to this browser by a cookie only it holds.
    nonce = browser_nonce(request.cookies)
    response = context.templates.TemplateResponse(
        request,
        "study_start.html",
        {
            "project_name": context.project_name,
            "user": None,
            "study": study,
            "action": f"/study/{study_id}/{key}/start",
            "participant": participant,
            "platform_study": _platform_id(platform_study, "STUDY_ID", required=False) or "",
            "session": _platform_id(session, "SESSION_ID", required=False) or "",
            "csrf": context.sessions.signin_csrf(form_token, nonce),
        },
        headers={"Cache-Control": "no-store"},
    )
    return bind_form_to_browser(response, nonce, path="/study", secure=context.secure_cookies)


@router.post("/study/{study_id}/{key}/start")
def study_start(
    request: Request,
    study_id: StudyId,
    key: EntryKey,
    context: Context,
    participant: Annotated[str, Form(max_length=200)],
    csrf_token: Annotated[str, Form(max_length=500)],
    platform_study: Annotated[str, Form(max_length=200)] = "",
    session: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Make the participant's account on first entry (within the quota) or resume it, and sign them in."""
    _check_link(context, study_id, key)
    participant_id = _platform_id(participant, "PROLIFIC_PID", required=True)
    assert participant_id is not None
    nonce = request.cookies.get(SIGNIN_COOKIE)
    if not context.sessions.signin_csrf_valid(f"study:{study_id}:{key}:{participant_id}", csrf_token, nonce):
        raise HTTPException(403, "The start form is stale or came from elsewhere; open the study link again.")
    try:
        account = context.store.enter_study(
            study_id,
            participant_id,
            platform_study_id=_platform_id(platform_study, "STUDY_ID", required=False),
            session_id=_platform_id(session, "SESSION_ID", required=False),
        )
    except StudyFull as error:
        raise HTTPException(409, f"{error}. Thank you for your interest; please return the study.") from None
    if account.disabled:
        raise HTTPException(403, "Your place in this study was closed by its researchers.")
    return signed_in_response(context, account, "/judge")


@router.get("/study/done")
def study_done(request: Request, user: PageUser, context: Context) -> Response:
    """The completion code, once the participant's work is done; before that, back to judging."""
    store = context.store
    participant = store.participant(user.id)
    if participant is None:
        raise HTTPException(404, "You did not come from a study: there is no completion code for you.")
    if participant.completed_at is None:
        plan = lease_plan(context, user)
        progress = store.annotator_progress(user.id)
        nothing_left = plan.lease is not None and not plan.lease.only_gold and progress.left == 0
        if plan.stop_page != "/study/done" and not nothing_left:
            return RedirectResponse("/judge", status_code=303)
        store.complete_participant(user.id)
    study = participant.study
    return context.templates.TemplateResponse(
        request,
        "study_done.html",
        {
            "project_name": context.project_name,
            "user": user,
            "study": study,
            "progress": store.annotator_progress(user.id),
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/qualification")
def qualification_page(request: Request, user: PageUser, context: Context) -> Response:
    """Where a qualification stands when it gives no task: failed, or no gold item left to take it with."""
    qualification = qualification_of(context.store, context.settings, user.id)
    if qualification is None or user.account.is_admin or qualification.state == "passed":
        return RedirectResponse("/judge", status_code=303)
    return context.templates.TemplateResponse(
        request,
        "qualification.html",
        {"project_name": context.project_name, "user": user, "qualification": qualification},
    )
