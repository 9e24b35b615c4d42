"""What every `apprentice` command module shares: the consoles, the --project option and the error wrapper.

A module of its own so that the sub-commands (studio, annotators, reward, quality, policy) can use them
without importing the top-level CLI that registers those sub-commands.
"""

from __future__ import annotations

import functools
import json
import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from apprentice.errors import ApprenticeError, InputError

# transformers draws a bar for every model it loads or saves (a fraction of a second each, dozens a loop
# round), which buries the stages our own progress shows. Set before transformers is imported; a user who
# wants the bars back sets the variable to 0. Training subprocesses inherit it.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

console = Console()
errors = Console(stderr=True)

ProjectOption = Annotated[
    Path,
    typer.Option("--project", "-p", help="The project folder (holds apprentice.toml).", envvar="APPRENTICE_PROJECT"),
]
Command = TypeVar("Command", bound=Callable[..., Any])


def reports_errors(command: Command) -> Command:
    """Turn an ApprenticeError into one sentence on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ApprenticeError as error:
            errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def parse_set_options(assignments: list[str], *, example: str) -> dict[str, Any]:
    """`--set KEY=VALUE` options as a dict; a value is read as JSON, else kept as a bare string."""
    values: dict[str, Any] = {}
    for assignment in assignments:
        key, equals, raw = assignment.partition("=")
        if not equals or not key:
            raise ApprenticeError(f"--set {assignment!r}: write it as KEY=VALUE, e.g. --set {example}")
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw  # a bare string, e.g. --set lr_schedule=cosine
    return values


def read_options_file(path: Path) -> dict[str, Any]:
    """A `--config` file (JSON, or TOML by its suffix) of option names and values."""
    if not path.is_file():
        raise InputError("no such file", path=path)
    try:
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text(encoding="utf-8"))
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {error}", path=path) from None
    if not isinstance(loaded, dict):
        raise InputError("expected an object of option names and values", path=path)
    return loaded
