"""Files written whole or not at all: the text goes to a `.partial` file beside the target, then one rename
replaces the target, so a crash or a bad row midway leaves the previous file as it was."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def write_text_atomically(path: Path, text: str) -> None:
    write_lines_atomically(path, [text])


def write_jsonl_atomically(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object a line (UTF-8, not escaped to ASCII)."""
    write_lines_atomically(path, (json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_lines_atomically(path: Path, chunks: Iterable[str]) -> None:
    """Write the chunks in turn (a generator is not held in memory whole), then put the file in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(chunk)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
