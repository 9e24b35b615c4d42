"""The studio's FastAPI app: `create_app(project_or_store)` builds one on a project's store.

Routes live one router per resource in `routes/`; they are thin and call the store. Errors from the store
become HTTP statuses here: not found 404, conflict 409, a malformed answer 422; pages render them as HTML,
the API as JSON. Request bodies are capped (`BodyLimit`, 413) before anything reads them whole.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apprentice.errors import ApprenticeError
from apprentice.project import Project
from apprentice.settings import StudioSection
from apprentice.store import Store
from apprentice.store.assignments import AssignmentConflict, AssignmentNotFound
from apprentice.studio.answers import AnswerError
from apprentice.studio.context import STATIC, FlagSource, StudioContext
from apprentice.studio.routes import admin, api, auth, crowd, crowd_admin, gold, history, judging
from apprentice.studio.security import SessionCodec, load_or_create_secret_key

SECRET_FILE = ".studio-secret"
# The largest request body: the studio's forms and JSON bodies are a few kilobytes at most.
MAX_BODY_BYTES = 1 << 20
# Nothing loads from anywhere but the studio itself; no inline script, no framing.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
        b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # sign-in links carry a secret in the path
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds the headers above to every response (plain ASGI: cheaper than a BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit:,} bytes.")


class BodyLimit:
    """Refuses request bodies over `max_bytes` with 413: by their Content-Length at once, and by counting the
    bytes received (a chunked body, or one longer than it said) as the app reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            status = 413 if declared.isdigit() else 400
            message = str(BodyTooLarge(self.max_bytes).detail) if status == 413 else "Content-Length is not a number."
            await JSONResponse({"detail": message}, status_code=status)(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)  # the app's handlers answer 413
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as error:  # raised where no handler answered it
            if not started:
                await JSONResponse({"detail": error.detail}, status_code=413)(scope, receive, send)


def create_app(
    project_or_store: Project | Store,
    *,
    settings: StudioSection | None = None,
    secret_key: str | None = None,
    guidelines: Path | None = None,
    flags: FlagSource | None = None,
    project_name: str | None = None,
) -> FastAPI:
    """The studio on a project (settings, guidelines and session key from its folder) or on a bare store."""
    if isinstance(project_or_store, Project):
        project = project_or_store
        store = project.store
        settings = settings or project.settings.studio
        secret_key = secret_key or load_or_create_secret_key(project.root / SECRET_FILE)
        guidelines = guidelines or project.root / settings.guidelines
        project_name = project_name or project.settings.project.name
    else:
        store = project_or_store
        settings = settings or StudioSection()
        # Without a project folder there is nowhere to keep a key: sessions last as long as this process.
        secret_key = secret_key or secrets.token_urlsafe(48)
    # PostgreSQL: leasing plans well only on current statistics (Store.refresh_statistics); cheap when they are.
    store.refresh_statistics(stale_only=True)
    context = StudioContext(
        store=store,
        settings=settings,
        sessions=SessionCodec(secret_key, max_age_seconds=settings.session_days * 86400),
        project_name=project_name or "Apprentice",
        guidelines_path=guidelines,
        flags=flags,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # SQLite: WAL checkpoints off the request path while serving (Store.start_background_checkpoints).
        store.start_background_checkpoints()
        try:
            yield
        finally:
            store.stop_background_checkpoints()

    app = FastAPI(
        lifespan=lifespan,
        title="Apprentice studio",
        version="1",
        description="Judge model responses: fetch the next task, submit, skip, undo. Authenticate with your API token.",
        # Swagger UI and ReDoc load their scripts from a CDN; the studio loads nothing from the internet.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        openapi_url="/api/openapi.json",
        # FastAPI's OpenTelemetry hooks cost a check of the global providers on every request; the studio
        # does not report to a collector.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.studio = context
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    # Routes are matched in order: the API, the busiest by far, first (no path is shared between routers).
    routers = (api, auth, judging, history, admin, gold, crowd, crowd_admin)
    for router in (module.router for module in routers):
        app.include_router(router)
    _install_error_handlers(app, context)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)  # added last: outermost, so that every answer carries the headers
    return app


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, context: StudioContext, status: int, message: str, headers: Any = None) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status, headers=headers)
    return context.templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "message": message, "project_name": context.project_name, "user": None},
        status_code=status,
        headers=headers,
    )


def _install_error_handlers(app: FastAPI, context: StudioContext) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        return _error(request, context, error.status_code, str(error.detail), error.headers)

    @app.exception_handler(AssignmentNotFound)
    async def not_found(request: Request, error: AssignmentNotFound) -> Response:
        return _error(request, context, 404, str(error))

    @app.exception_handler(AssignmentConflict)
    async def conflict(request: Request, error: AssignmentConflict) -> Response:
        return _error(request, context, 409, str(error))

    @app.exception_handler(AnswerError)
    async def bad_answer(request: Request, error: AnswerError) -> Response:
        return _error(request, context, 422, str(error))

    @app.exception_handler(ApprenticeError)
    async def bad_request(request: Request, error: ApprenticeError) -> Response:
        return _error(request, context, 400, str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        if _wants_json(request):
            # Without the input: echoing it back reflects whatever was sent, and NaN or Infinity (which
            # Python's JSON parser accepts) cannot be written as JSON.
            errors = [{key: value for key, value in item.items() if key != "input"} for item in error.errors()]
            return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)
        first = error.errors()[0] if error.errors() else {"msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return _error(request, context, 422, f"{where}: {first['msg']}" if where else str(first["msg"]))
