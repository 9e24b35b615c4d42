"""Signing in with a one-time link, signing out (here or everywhere), and the account page with API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from apprentice.store.assignments import AnnotatorAccount
from apprentice.studio.context import StudioContext
from apprentice.studio.deps import Context, PageUser, check_csrf, client_address, refuse_attempt
from apprentice.studio.security import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    bind_form_to_browser,
    browser_nonce,
    issue_api_token,
    parse_signin_token,
    passes_check,
    signin_link_pending,
    signin_token_valid,
)

router = APIRouter(include_in_schema=False)
INVALID_LINK = (
    "This sign-in link is not valid: it was used already, has expired, or was replaced. Ask an admin for a new one."
)
NO_STORE = {"Cache-Control": "no-store"}


def _valid_link_account(request: Request, context: StudioContext, token: str) -> AnnotatorAccount:
    """The account whose pending link `token` is; refused cheaply (no argon2) when it cannot be one."""
    parsed = parse_signin_token(token)
    if parsed is None:
        raise HTTPException(400, INVALID_LINK)
    account = context.store.annotator_account(annotator_id=parsed[0])
    pending = account is not None and signin_link_pending(account)
    check = passes_check(account.signin_check, account.id, parsed[1]) if account is not None and pending else False
    verdict = context.attempts.verify(
        client_address(request),
        account.id if account is not None else None,
        check,
        lambda: signin_token_valid(account, parsed[1]),
    )
    refuse_attempt(verdict, INVALID_LINK, status=400)
    if account is None:  # cannot happen: a valid verdict needs an account
        raise HTTPException(400, INVALID_LINK)
    return account


@router.get("/signin/{token}")
def signin_form(token: str, request: Request, context: Context) -> Response:
    """Ask before using the link: mail scanners that open links must not use it up."""
    account = _valid_link_account(request, context, token)
    # The form's CSRF token is bound to this browser through a cookie that only this response sets.
    nonce = browser_nonce(request.cookies)
    response = context.templates.TemplateResponse(
        request,
        "signin.html",
        {
            "project_name": context.project_name,
            "user": None,
            "name": account.name,
            "token": token,
            "signin_csrf": context.sessions.signin_csrf(token, nonce),
        },
        headers=NO_STORE,
    )
    return bind_form_to_browser(response, nonce, path="/signin", secure=context.secure_cookies)


@router.post("/signin")
def signin(
    request: Request,
    token: Annotated[str, Form(max_length=300)],
    csrf_token: Annotated[str, Form(max_length=500)],
    context: Context,
) -> Response:
    if not context.sessions.signin_csrf_valid(token, csrf_token, request.cookies.get(SIGNIN_COOKIE)):
        raise HTTPException(403, "The sign-in form is stale or came from elsewhere; open your link again.")
    account = _valid_link_account(request, context, token)
    # Using the link starts a new session version: every older session of this annotator ends.
    signed_in = context.store.consume_signin(account.id, account.signin_hash or "")
    if signed_in is None:
        raise HTTPException(400, INVALID_LINK)  # someone used it a moment ago
    return signed_in_response(context, signed_in, "/admin" if signed_in.is_admin else "/judge")


def signed_in_response(context: StudioContext, account: AnnotatorAccount, location: str) -> Response:
    """A redirect to `location` carrying `account`'s session cookie: how every sign-in ends."""
    response = RedirectResponse(location, status_code=303)
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


def _signed_out(context: StudioContext) -> Response:
    response = RedirectResponse("/signed-out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=context.secure_cookies, httponly=True, samesite="lax")
    return response


@router.post("/signout")
def signout(user: PageUser, context: Context, csrf_token: Annotated[str | None, Form()] = None) -> Response:
    """End this session in the store (a copy of the cookie stops working too), not only in this browser."""
    check_csrf(user, csrf_token)
    context.store.end_sessions(user.id, session_version=user.account.session_version)
    return _signed_out(context)


@router.post("/account/signout-everywhere")
def signout_everywhere(user: PageUser, context: Context, csrf_token: Annotated[str | None, Form()] = None) -> Response:
    """End every session of this annotator and revoke their API token."""
    check_csrf(user, csrf_token)
    context.store.end_sessions(user.id, session_version=user.account.session_version, revoke_token=True)
    return _signed_out(context)


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
        headers=NO_STORE,
    )
