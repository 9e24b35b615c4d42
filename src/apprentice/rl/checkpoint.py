"""Checkpoints that a kill cannot corrupt: everything needed to carry on exactly where a run stopped.

A checkpoint is a folder `checkpoints/step-N` holding the model (policy and value head), optimizer,
scheduler, the algorithm's own state (KL controller, data position) and each process's RNG states.
It is written into a hidden staging folder and renamed into place only when complete: a rename is
atomic, so a `step-N` folder is always whole, and a run killed while writing leaves only the
staging folder behind (cleaned up by the next save).
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apprentice.run_folders import CHECKPOINTS

_STEP = re.compile(r"^step-(\d+)$")


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_root(output_dir: Path) -> Path:
    return output_dir / CHECKPOINTS


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return None
    steps = [(int(match.group(1)), path) for path in root.iterdir() if (match := _STEP.match(path.name))]
    return max(steps)[1] if steps else None


def checkpoint_step(path: Path) -> int:
    match = _STEP.match(path.name)
    if match is None:
        raise ValueError(f"{path} is not a checkpoint folder")
    return int(match.group(1))


def save_checkpoint(
    accelerator: Any,
    output_dir: Path,
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    training_state: dict[str, Any],
    keep: int,
    digits: int = 0,
) -> Path:
    """Write `checkpoints/step-{step}` atomically; every process calls this (each saves its RNG).

    `digits` zero-pads the step in the name (reward runs name theirs `step-0000100`)."""
    root = checkpoint_root(output_dir)
    name = f"step-{step:0{digits}d}"
    staging = root / f".staging-{name}"
    final = root / name
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        for leftover in root.glob(".staging-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        staging.mkdir()
    accelerator.wait_for_everyone()
    torch.save(rng_state(), staging / f"rng-{accelerator.process_index}.pt")
    # Every process takes part: under FSDP or DeepSpeed gathering the full state dict is a collective.
    model_state = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        state = {
            "model": model_state,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "training": training_state,
            "step": step,
        }
        torch.save(state, staging / "state.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        existing = sorted(
            (checkpoint_step(path), path) for path in root.iterdir() if _STEP.match(path.name) and path != final
        )
        for _, old in existing[: max(0, len(existing) - (keep - 1))]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(
    accelerator: Any, path: Path, *, model: torch.nn.Module, optimizer: Any, scheduler: Any
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and this process's RNG; returns the algorithm's state."""
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    accelerator.unwrap_model(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng_file = path / f"rng-{accelerator.process_index}.pt"
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, weights_only=False))
    training: dict[str, Any] = state["training"]
    training["step"] = state["step"]
    return training
