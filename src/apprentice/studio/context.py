"""What every request of one studio app shares: the store, the settings, the signers, the templates."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.templating import Jinja2Templates

from apprentice.settings import StudioSection
from apprentice.store import Store
from apprentice.studio.security import SessionCodec, TokenCache

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True)
class Flag:
    """Something the quality checks want an admin to look at (the quality package fills these)."""

    subject: str
    reason: str
    severity: str = "warning"


FlagSource = Callable[[Store], list[Flag]]


@dataclass
class StudioContext:
    store: Store
    settings: StudioSection
    sessions: SessionCodec
    project_name: str
    guidelines_path: Path | None
    flags: FlagSource | None = None
    tokens: TokenCache = field(default_factory=TokenCache)
    rng: random.Random = field(default_factory=random.Random)
    templates: Jinja2Templates = field(default_factory=lambda: Jinja2Templates(directory=str(TEMPLATES)))

    @property
    def secure_cookies(self) -> bool:
        return self.settings.public_url.startswith("https://")

    def guidelines_markdown(self) -> str:
        if self.guidelines_path is not None and self.guidelines_path.is_file():
            return self.guidelines_path.read_text(encoding="utf-8")
        return DEFAULT_GUIDELINES


DEFAULT_GUIDELINES = """# Guidelines

This project has no guidelines file yet (set `[studio] guidelines` in `apprentice.toml`).

- Prefer the response that answers the question **helpfully**, **honestly** and **harmlessly**.
- A correct short answer beats a long one that wanders.
- Use *tie* when you cannot choose, *both bad* when neither should be shown to anyone.
- Skip (with a reason) what you cannot judge: a language you do not read, a topic you do not know.
"""
