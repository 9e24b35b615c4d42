"""Signing in with a one-time link, signing out, and the account page where API tokens are made."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from apprentice.studio.deps import Context, PageUser, check_csrf
from apprentice.studio.security import (
    SESSION_COOKIE,
    issue_api_token,
    parse_signin_token,
    signin_token_valid,
)

router = APIRouter(include_in_schema=False)
INVALID_LINK = (
    "This sign-in link is not valid: it was used already, has expired, or was replaced. Ask an admin for a new one."
)


@router.get("/signin/{token}")
def signin_form(token: str, request: Request, context: Context) -> Response:
    """Ask before using the link: mail scanners that open links must not use it up."""
    parsed = parse_signin_token(token)
    account = context.store.annotator_account(annotator_id=parsed[0]) if parsed else None
    if parsed is None or not signin_token_valid(account, parsed[1]):
        raise HTTPException(400, INVALID_LINK)
    return context.templates.TemplateResponse(
        request,
        "signin.html",
        {
            "project_name": context.project_name,
            "user": None,
            "name": account.name if account else "",
            "token": token,
            "signin_csrf": context.sessions.signin_csrf(token),
        },
    )


@router.post("/signin")
def signin(
    token: Annotated[str, Form(max_length=300)],
    csrf_token: Annotated[str, Form(max_length=500)],
    context: Context,
) -> Response:
    if not context.sessions.signin_csrf_valid(token, csrf_token):
        raise HTTPException(403, "The sign-in form is stale or came from elsewhere; open your link again.")
    parsed = parse_signin_token(token)
    account = context.store.annotator_account(annotator_id=parsed[0]) if parsed else None
    if parsed is None or account is None or not signin_token_valid(account, parsed[1]):
        raise HTTPException(400, INVALID_LINK)
    if not context.store.consume_signin(account.id, account.signin_hash or ""):
        raise HTTPException(400, INVALID_LINK)  # someone used it a moment ago
    response = RedirectResponse("/admin" if account.is_admin else "/judge", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        context.sessions.dump(account),
        max_age=context.sessions.max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=context.secure_cookies,
        path="/",
    )
    return response


@router.post("/signout")
def signout(user: PageUser, csrf_token: Annotated[str | None, Form()] = None) -> Response:
    check_csrf(user, csrf_token)
    response = RedirectResponse("/signed-out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/signed-out")
def signed_out(request: Request, context: Context) -> Response:
    return context.templates.TemplateResponse(
        request,
        "error.html",
        {"status": 200, "message": "You are signed out.", "project_name": context.project_name, "user": None},
    )


@router.get("/account")
def account_page(request: Request, user: PageUser, context: Context) -> Response:
    return context.templates.TemplateResponse(
        request,
        "account.html",
        {
            "project_name": context.project_name,
            "user": user,
            "token": None,
            "has_token": bool(user.account.credential_hash),
        },
    )


@router.post("/account/token")
def new_api_token(
    request: Request, user: PageUser, context: Context, csrf_token: Annotated[str | None, Form()] = None
) -> Response:
    """Show a new API token once; the previous token stops working."""
    check_csrf(user, csrf_token)
    token = issue_api_token(context.store, user.account)
    return context.templates.TemplateResponse(
        request,
        "account.html",
        {"project_name": context.project_name, "user": user, "token": token, "has_token": True},
        headers={"Cache-Control": "no-store"},
    )
