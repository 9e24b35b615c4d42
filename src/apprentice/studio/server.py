"""Serving the studio with uvicorn: one process on SQLite, several workers on PostgreSQL.

SQLite takes one writer at a time, so extra processes would only queue on its lock; PostgreSQL lets
workers write in parallel, and the store's row locks keep leasing correct across them.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

from fastapi import FastAPI

from apprentice.errors import ApprenticeError
from apprentice.project import open_project

PROJECT_ENV = "APPRENTICE_PROJECT"


def app_from_environment() -> FastAPI:
    """The app factory each uvicorn worker calls: the project folder comes from $APPRENTICE_PROJECT."""
    from apprentice.studio.app import create_app
    from apprentice.studio.dashboard import CachedFlags, quality_flags

    app = create_app(open_project(Path(os.environ.get(PROJECT_ENV, "."))), flags=CachedFlags(quality_flags))
    # What start-up built (modules, routes, SQLAlchemy's and pydantic's structures: about 116,000 tracked
    # objects) lives as long as the process: moved out of the collector's sight, it is no longer traversed by
    # every full collection, a pause that all requests in flight wait for.
    gc.collect()
    gc.freeze()
    return app


def serve(project_dir: Path, *, host: str, port: int, workers: int, log_level: str = "warning") -> None:
    import uvicorn

    from apprentice.studio.addresses import record_served_url, served_url
    from apprentice.studio.app import SECRET_FILE
    from apprentice.studio.security import load_or_create_secret_key

    project = open_project(project_dir)  # fail here, with a clear message, before any worker starts
    if workers > 1 and project.store.is_sqlite:
        project.close()
        raise ApprenticeError(
            "--workers above 1 needs a PostgreSQL store ([store] url = postgresql+psycopg://...); "
            "SQLite serves one writer at a time"
        )
    load_or_create_secret_key(project.root / SECRET_FILE)  # every worker must sign with the same key
    # Sign-in links made meanwhile (`apprentice annotators add`) name this address unless [studio] public_url is set.
    record_served_url(project.root, served_url(host, port))
    project.close()
    os.environ[PROJECT_ENV] = str(project_dir.resolve())
    uvicorn.run(
        "apprentice.studio.server:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,  # a line per request costs more than the request on the hot path
    )
