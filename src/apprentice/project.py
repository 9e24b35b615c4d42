"""A project: a folder with `apprentice.toml`, its settings and its store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from apprentice.errors import ApprenticeError
from apprentice.settings import DEFAULT_DATABASE, PROJECT_FILE, Settings, load_settings, render_settings
from apprentice.store import Store


@dataclass
class Project:
    root: Path
    settings: Settings
    store: Store

    @property
    def database_url(self) -> str:
        return database_url(self.root, self.settings)

    def model_location(self, name: str) -> str:
        """The folder of the trained policy stored as `name` (`round-2-grpo`, `policy-dpo-1`), else `name` as it
        is, for `models.resolve_model` to read as 'default', a folder or a hub id."""
        policy = self.store.policy_named(name)
        if policy is not None and policy.kind == "trained" and policy.model_path:
            return policy.model_path
        return name

    def close(self) -> None:
        self.store.close()


def database_url(root: Path, settings: Settings) -> str:
    return settings.store.url or f"sqlite:///{(root / DEFAULT_DATABASE).resolve()}"


def init_project(root: Path, *, settings: Settings | None = None, store_url: str | None = None) -> Project:
    """Create `root` with a project file and a migrated store; refuse to overwrite a project."""
    project_file = root / PROJECT_FILE
    if project_file.exists():
        raise ApprenticeError(f"{project_file} already exists; this folder is a project already")
    if root.exists() and not root.is_dir():
        raise ApprenticeError(f"{root} exists and is not a folder")
    settings = settings or Settings()
    if store_url is not None:
        settings.store.url = store_url
    root.mkdir(parents=True, exist_ok=True)
    store = Store.open(database_url(root, settings))
    # The project file is written last: a folder with one is always a project with a working store.
    project_file.write_text(render_settings(settings), encoding="utf-8")
    return Project(root=root, settings=settings, store=store)


def open_project(root: Path) -> Project:
    settings = load_settings(root / PROJECT_FILE)
    return Project(root=root, settings=settings, store=Store.open(database_url(root, settings)))
