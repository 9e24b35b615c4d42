"""What a run writes as it goes: metrics JSONL, TensorBoard scalars, and tables of sample completions.

Only the main process writes. On resume, lines past the checkpoint's step are dropped first, so
the files describe one continuous run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _truncate_jsonl(path: Path, last_step: int) -> None:
    if not path.exists():
        return
    kept = [
        line for line in path.read_text(encoding="utf-8").splitlines() if line and json.loads(line)["step"] <= last_step
    ]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


class RunLog:
    def __init__(self, output_dir: Path, *, enabled: bool, tensorboard: bool, resumed_step: int = 0) -> None:
        self.enabled = enabled
        self.metrics_path = output_dir / "metrics.jsonl"
        self.samples_path = output_dir / "samples.jsonl"
        self.writer: Any = None
        if not enabled:
            return
        output_dir.mkdir(parents=True, exist_ok=True)
        _truncate_jsonl(self.metrics_path, resumed_step)
        _truncate_jsonl(self.samples_path, resumed_step)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(output_dir / "tensorboard"), purge_step=resumed_step + 1)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        clean = {key: (value if math.isfinite(value) else None) for key, value in values.items()}
        with self.metrics_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"step": step, **clean}) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if math.isfinite(value):
                    self.writer.add_scalar(key, value, step)

    def samples(self, step: int, prompts: Sequence[str], completions: Sequence[str], rewards: Sequence[float]) -> None:
        if not self.enabled:
            return
        rows = [
            {"step": step, "prompt": prompt, "completion": completion, "reward": reward}
            for prompt, completion, reward in zip(prompts, completions, rewards, strict=True)
        ]
        with self.samples_path.open("a", encoding="utf-8") as out:
            out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        if self.writer is not None:
            table = "| prompt | completion | reward |\n| --- | --- | --- |\n" + "".join(
                f"| {_cell(prompt)} | {_cell(completion)} | {reward:.3f} |\n"
                for prompt, completion, reward in zip(prompts, completions, rewards, strict=True)
            )
            self.writer.add_text("samples", table, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def read_metrics(output_dir: Path) -> list[dict[str, Any]]:
    path = output_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
