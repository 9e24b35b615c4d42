"""Request dependencies: who is asking (session cookie or API token), and checks of their rights.

The API's dependency and routes are `async` and call the store directly, on the event loop: their store
calls are a few short queries, and on SQLite (one writer at a time) a thread pool only adds lock hand-offs
and GIL contention between threads that would queue for the same write lock anyway.

Routes read like their signature: `user: PageUser` is a signed-in person, `admin: AdminUser` an admin,
`caller: ApiCaller` anyone with a valid token (or a session plus its CSRF header for writes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from apprentice.store.assignments import AnnotatorAccount
from apprentice.studio.context import StudioContext
from apprentice.studio.security import (
    SESSION_COOKIE,
    SessionData,
    parse_api_token,
    passes_check,
    same_token,
    secret_check,
)

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_context(request: Request) -> StudioContext:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a hand-off that costs more than this.
    context: StudioContext = request.app.state.studio
    return context


Context = Annotated[StudioContext, Depends(get_context)]


@dataclass(frozen=True)
class SignedIn:
    account: AnnotatorAccount
    csrf: str | None  # None for API-token callers, who carry no cookie and so need no CSRF token

    @property
    def id(self) -> int:
        return self.account.id


def _from_session(context: StudioContext, session: SessionData | None) -> SignedIn | None:
    if session is None:
        return None
    account = context.store.annotator_account(annotator_id=session.annotator_id)
    if account is None or account.disabled or account.session_version != session.version:
        return None
    return SignedIn(account, session.csrf)


def page_user(request: Request, context: Context) -> SignedIn:
    user = _from_session(context, context.sessions.load(request.cookies.get(SESSION_COOKIE)))
    if user is None:
        raise HTTPException(401, "Sign in with the link an admin gave you.")
    return user


PageUser = Annotated[SignedIn, Depends(page_user)]


def admin_user(user: PageUser) -> SignedIn:
    if not user.account.is_admin:
        raise HTTPException(403, "This page is for admins.")
    return user


AdminUser = Annotated[SignedIn, Depends(admin_user)]


def check_csrf(user: SignedIn, token: str | None) -> None:
    """Refuse a cookie-authenticated write without the session's CSRF token."""
    if user.csrf is not None and not same_token(user.csrf, token):
        raise HTTPException(403, "The form is stale or came from elsewhere (CSRF token missing or wrong).")


_bearer = HTTPBearer(auto_error=False, description="The annotator's API token (apt_...), from the account page.")


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def refuse_attempt(verdict: str, message: str, headers: dict[str, str] | None = None, *, status: int = 401) -> None:
    """Raise the HTTP error for a credential that `FailedAttempts.verify` did not find valid."""
    if verdict == "too-many":
        raise HTTPException(
            429,
            "Too many failed attempts from here or for this account: try again in a few minutes.",
            headers={**(headers or {}), "Retry-After": "60"},
        )
    if verdict != "valid":
        raise HTTPException(status, message, headers=headers)


def _invalid_token() -> HTTPException:
    return HTTPException(401, "The API token is not valid.", headers={"WWW-Authenticate": "Bearer"})


async def _token_caller(request: Request, context: StudioContext, token: str) -> SignedIn:
    parsed = parse_api_token(token)
    if parsed is None:
        raise _invalid_token()  # malformed: refused before any lookup or hashing
    annotator_id, secret = parsed
    account = await context.run(context.store.annotator_account, annotator_id=annotator_id)
    usable = account is not None and not account.disabled and account.credential_hash is not None
    if account is not None and usable and context.tokens.known(account, secret):
        return SignedIn(account, None)  # seen before: checked in memory
    check = passes_check(account.credential_check, account.id, secret) if account is not None and usable else False
    verdict = await run_in_threadpool(  # argon2 and the counts' writes, off the event loop
        context.attempts.verify,
        client_address(request),
        account.id if account is not None else None,
        check,
        lambda: account is not None and context.tokens.check(account, secret),
    )
    refuse_attempt(verdict, "The API token is not valid.", {"WWW-Authenticate": "Bearer"})
    if account is None or account.credential_hash is None:  # cannot happen: a valid verdict needs both
        raise _invalid_token()
    if check is None:
        # A token made before fast checks existed: from now on a guess at it is refused without argon2, and
        # the account's failure count no longer gates it.
        stored = account.credential_hash
        await context.run(context.store.add_credential_check, account.id, stored, secret_check(account.id, secret))
    return SignedIn(account, None)


async def api_caller(
    request: Request,
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> SignedIn:
    if credentials is not None:
        return await _token_caller(request, context, credentials.credentials)
    session = context.sessions.load(request.cookies.get(SESSION_COOKIE))
    user = await context.run(_from_session, context, session)
    if user is None:
        raise HTTPException(
            401, "Send an API token (Authorization: Bearer apt_...).", headers={"WWW-Authenticate": "Bearer"}
        )
    if request.method not in SAFE_METHODS:
        check_csrf(user, request.headers.get(CSRF_HEADER))
    return user


ApiCaller = Annotated[SignedIn, Depends(api_caller)]
