"""Files written whole or not at all: the text goes to a `.partial` file beside the target, then one rename
replaces the target, so a crash or a bad row midway leaves the previous file as it was. And folders written
by libraries that ignore the umask, given the permissions it asks for."""

from __future__ import annotations

import json
import os
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


def current_umask() -> int:
    """The process's umask (reading it means setting it: set it back at once)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def shareable(root: Path) -> None:
    """Give `root` and everything under it the modes a plain mkdir and open give: 0777 and 0666 less the umask.

    `tempfile.mkdtemp` (the staging folders that saved models are renamed from) creates 0700 and safetensors
    writes weights 0600 whatever the umask, which keeps teammates on a shared machine from loading a model.
    """
    mask = current_umask()
    folder_mode, file_mode = 0o777 & ~mask, 0o666 & ~mask
    for path in [root, *root.rglob("*")] if root.is_dir() else [root]:
        if path.is_symlink():
            continue
        path.chmod(folder_mode if path.is_dir() else file_mode)
