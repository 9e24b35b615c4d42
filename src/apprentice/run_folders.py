"""The folders that training runs write: one per run, named by kind and numbered in order, never reused.

`runs/policy-dpo-1`, `runs/policy-dpo-2`, `runs/reward-1`: a run without an explicit folder claims the next
number of its kind, counting the folders on disk and those the store records (so a deleted folder's number
is not handed out again). A folder that holds a run is overwritten only when asked. The checkpoints a run
keeps to resume (optimizer state included, most of a run's size) are deleted once it succeeds, unless asked
to keep them; `apprentice runs prune` deletes those of finished runs afterwards.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from apprentice.errors import ApprenticeError

RUNS_FOLDER = "runs"
CHECKPOINTS = "checkpoints"


def _number(path: Path, prefix: str) -> int | None:
    match = re.fullmatch(rf"{re.escape(prefix)}-(\d+)", path.name)
    return int(match.group(1)) if match else None


def claim_numbered_folder(parent: Path, prefix: str, recorded: Iterable[str] = ()) -> Path:
    """Create and return `parent/PREFIX-N` for the next N after every such folder on disk or in `recorded`.

    The folder is created with `mkdir` (which fails if it exists), so two runs started at once get two folders.
    """
    parent.mkdir(parents=True, exist_ok=True)
    resolved = parent.resolve()
    candidates = [*parent.iterdir(), *(Path(path) for path in recorded if Path(path).parent.resolve() == resolved)]
    number = max((n for path in candidates if (n := _number(path, prefix)) is not None), default=0) + 1
    while True:
        folder = parent / f"{prefix}-{number}"
        try:
            folder.mkdir()
        except FileExistsError:
            number += 1
            continue
        return folder


def newest_numbered_folder(parent: Path, prefix: str) -> Path | None:
    """The highest-numbered `parent/PREFIX-N` folder, or None."""
    if not parent.is_dir():
        return None
    numbered = [(n, path) for path in parent.iterdir() if path.is_dir() and (n := _number(path, prefix)) is not None]
    return max(numbered)[1] if numbered else None


def refuse_occupied_folder(folder: Path, *, marker: str, overwrite: bool) -> None:
    """Raise unless `folder` may take a fresh run: it is new or empty, or `overwrite` and it holds a run (its
    `marker` file). Only reads, so every process of a launched group can check and fail alike."""
    if folder.exists() and not folder.is_dir():
        raise ApprenticeError(f"{folder} exists and is not a folder; choose another run folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise ApprenticeError(
                f"{folder} holds a run already; choose another folder, carry it on with --resume, "
                "or replace it with --overwrite"
            )
        if not (folder / marker).is_file():
            raise ApprenticeError(f"--overwrite: {folder} is not a run folder (no {marker}); remove it yourself")


def prepare_output_folder(folder: Path, *, marker: str, overwrite: bool) -> bool:
    """Make `folder` ready for a fresh run; returns whether it was created (or emptied) here.

    A folder holding anything is refused, unless `overwrite` and it holds a run (its `marker` file): then it
    is emptied. A folder that holds something else is never deleted.
    """
    refuse_occupied_folder(folder, marker=marker, overwrite=overwrite)
    if folder.is_dir() and any(folder.iterdir()):
        shutil.rmtree(folder)
    existed = folder.is_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return not existed


@contextmanager
def discarded_on_failure(folder: Path, *, fresh: bool) -> Iterator[None]:
    """Remove a `fresh` run folder again when the block fails before a checkpoint is written in it: there is
    nothing to resume, and a folder with only a config in it would read as a run."""
    try:
        yield
    except BaseException:
        if fresh and folder.is_dir() and not checkpoint_folders(folder):
            shutil.rmtree(folder, ignore_errors=True)
        raise


def checkpoint_folders(run_folder: Path) -> list[Path]:
    """The checkpoint folders of a run: its own, and each ensemble member's."""
    candidates = [run_folder / CHECKPOINTS, *sorted(run_folder.glob(f"member-*/{CHECKPOINTS}"))]
    return [path for path in candidates if path.is_dir()]


def folder_size(path: Path) -> int:
    """Bytes in the files under `path` (links not followed)."""
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file() and not item.is_symlink())


def discard_checkpoints(run_folder: Path, *, dry_run: bool = False) -> int:
    """Delete a finished run's checkpoint folders; returns the bytes freed (or that would be, when `dry_run`)."""
    freed = 0
    for folder in checkpoint_folders(run_folder):
        freed += folder_size(folder)
        if not dry_run:
            shutil.rmtree(folder)
    return freed


@dataclass(frozen=True)
class PruneSummary:
    runs: int  # runs whose checkpoints were (or would be) deleted
    freed_bytes: int


def prune_checkpoints(finished_run_folders: Iterable[Path], *, dry_run: bool = False) -> PruneSummary:
    """Delete the checkpoint folders of these finished runs' folders (each folder once)."""
    runs = freed = 0
    for folder in dict.fromkeys(path.resolve() for path in finished_run_folders):
        if checkpoint_folders(folder):
            runs += 1
            freed += discard_checkpoints(folder, dry_run=dry_run)
    return PruneSummary(runs=runs, freed_bytes=freed)


def human_size(size: int) -> str:
    """Decimal units, as `du --si` and file managers show them: 950 B, 12.3 MB, 2.1 GB."""
    if size < 1000:
        return f"{size} B"
    value, unit = size / 1000, "kB"
    for larger in ("MB", "GB", "TB"):
        if value < 1000:
            break
        value, unit = value / 1000, larger
    return f"{value:.1f} {unit}"
