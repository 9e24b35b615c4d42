"""What every request of one studio app shares: the store, the settings, the signers, the templates."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from apprentice.settings import StudioSection
from apprentice.store import Store
from apprentice.studio.attempts import FailedAttempts
from apprentice.studio.security import SessionCodec, TokenCache

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
Result = TypeVar("Result")


@dataclass(frozen=True)
class Flag:
    """Something the quality checks want an admin to look at (the quality package fills these)."""

    subject: str
    reason: str
    severity: str = "warning"


FlagSource = Callable[[Store], list[Flag]]


@dataclass
class CrowdMemo:
    """What the crowd gates learn once per account and keep: they never change back (see studio.crowd)."""

    participant: dict[int, bool] = field(default_factory=dict)  # annotator id -> came through a study link
    qualified: set[int] = field(default_factory=set)  # annotators who passed the qualification


@dataclass
class StudioContext:
    store: Store
    settings: StudioSection
    sessions: SessionCodec
    project_name: str
    guidelines_path: Path | None
    flags: FlagSource | None = None
    tokens: TokenCache = field(default_factory=TokenCache)
    attempts: FailedAttempts = field(init=False)
    rng: random.Random = field(default_factory=random.Random)
    crowd: CrowdMemo = field(default_factory=CrowdMemo)
    templates: Jinja2Templates = field(default_factory=lambda: Jinja2Templates(directory=str(TEMPLATES)))

    def __post_init__(self) -> None:
        self.attempts = FailedAttempts(self.store)

    async def run(self, function: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
        """Call a store method from an async route: inline on SQLite, in the thread pool otherwise.

        SQLite serves one writer at a time, and its queries take well under a millisecond: running them on
        the event loop avoids thread hand-offs. A PostgreSQL query waits on the network, during which the
        loop should serve other requests.
        """
        if self.store.is_sqlite:
            return function(*args, **kwargs)
        return await run_in_threadpool(function, *args, **kwargs)

    @property
    def secure_cookies(self) -> bool:
        return self.settings.public_url.startswith("https://")

    def guidelines_markdown(self) -> str:
        if self.guidelines_path is not None and self.guidelines_path.is_file():
            return self.guidelines_path.read_text(encoding="utf-8")
        if self.guidelines_path is None:
            missing = "This studio runs without a project folder, so it has no guidelines file."
        else:
            # The setting has a default, so what is missing is nearly always the file it names.
            # The page is for annotators: the file's name, not the server's folders.
            missing = (
                f"The guidelines file `{self.guidelines_path.name}` is missing from the project folder: an admin "
                "writes it there, or points `[studio] guidelines` in `apprentice.toml` at another file."
            )
        return DEFAULT_GUIDELINES.format(missing=missing)


DEFAULT_GUIDELINES = """# Guidelines

{missing} Until then, these general rules apply:

- Prefer the response that answers the question **helpfully**, **honestly** and **harmlessly**.
- A correct short answer beats a long one that wanders.
- Use *tie* when you cannot choose, *both bad* when neither should be shown to anyone.
- Skip (with a reason) what you cannot judge: a language you do not read, a topic you do not know.
"""
