"""The feedback studio: a FastAPI app where people judge responses, and admins watch and manage.

`create_app(project_or_store)` builds the app; `apprentice studio` serves it with uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apprentice.studio.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported only when the studio is used, not by every `import apprentice.studio.answers`.
    if name == "create_app":
        from apprentice.studio.app import create_app

        return create_app
    raise AttributeError(name)
