"""What every `apprentice` command module shares: the consoles, the --project option and the error wrapper.

A module of its own so that the sub-commands (studio, annotators, reward, quality, policy) can use them
without importing the top-level CLI that registers those sub-commands.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.text import Text

from apprentice.errors import ApprenticeError, InputError

# transformers draws a bar for every model it loads or saves (a fraction of a second each, dozens a loop
# round), which buries the stages our own progress shows. Set before transformers is imported; a user who
# wants the bars back sets the variable to 0. Training subprocesses inherit it.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# Markup off: what the commands print is full of user text (file names, TOML sections, prompts) whose
# brackets Rich would read as styles and drop, so `data[v2].jsonl` printed as `data.jsonl`. Styles are given
# with `style=` or `rich.text.Text` instead.
console = Console(markup=False)
errors = Console(stderr=True, markup=False)

# --help as plain click prints it: boolean options as `--flag / --no-flag` (Typer's panels add `<bool>`), help
# wrapped, never cut off with an ellipsis, up to 120 columns when the output is not a terminal (80 before).
HELP_LAYOUT: dict[str, Any] = {
    "max_content_width": 120,
    "terminal_width": shutil.get_terminal_size(fallback=(120, 24)).columns,
}

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
            errors.print(Text.assemble(("error:", "bold red"), f" {error}"), highlight=False, soft_wrap=True)
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


def print_options(config: type[BaseModel]) -> None:
    """Each option of a run's config, as `--set KEY=VALUE` takes it, with its default and meaning."""
    for field_name, field in config.model_fields.items():
        shown = Text.assemble((field_name, "bold"), f" = {plain_value(field.default)}  {field.description}")
        console.print(shown, highlight=False)


def plain_value(value: Any) -> str:
    """A default as one would write it after --set KEY=: paths and words bare, the rest as JSON."""
    if isinstance(value, str | Path):
        return str(value)
    return json.dumps(value)
