"""The one exception type users see: a sentence that says what went wrong and where.

The CLI turns an `ApprenticeError` into that sentence on stderr and a non-zero exit; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class ApprenticeError(Exception):
    """A problem with the user's input or environment, reported as one clear sentence."""


class InputError(ApprenticeError):
    """Bad input in a file: carries the file and, where known, the line and field."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.line = line
        self.field = field
        self.reason = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.path is not None:
            where = str(self.path)
            if self.line is not None:
                where += f", line {self.line}"
        if self.field is not None:
            where += f"{', ' if where else ''}field '{self.field}'"
        return f"{where}: {self.reason}" if where else self.reason
