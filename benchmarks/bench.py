"""The headline benchmarks, short versions, one table of ratios against their baselines (`make bench`).

Each benchmark runs in its own process (peak memory is per process) and prints its figures as JSON on its
last line; this script reads them and prints one table. Short versions: the ratios are what to read, and
they are noisier than the full runs' in benchmarks/README.md. The bf16 row (ours with bf16 products on
float32 weights, as `mixed_precision = "auto"` runs on such hardware, against `generate` on a bf16 copy)
runs only where `precision.fast_bf16` says bf16 is fast (a GPU, a CPU with AMX or AVX-512 bf16);
elsewhere bf16 runs many times slower than float32 (cpu_bf16.py), so it is skipped. The GRPO step runs
both sides in bf16 there and in float32 elsewhere.

    .venv/bin/python benchmarks/bench.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# name, script arguments, how to read (ours, baseline, unit) from its JSON, what "better" means
RUNS: list[tuple[str, list[str], str]] = [
    (
        "generation tokens/s, fp32 (ours / HF generate, same batches)",
        ["generation.py", "--prompts", "8", "--rounds", "1", "--max-new-tokens", "48"],
        "generation",
    ),
    (
        "generation tokens/s, bf16 (ours / HF generate, same batches)",
        ["generation.py", "--prompts", "8", "--rounds", "1", "--max-new-tokens", "48", "--dtype", "mixed"],
        "generation",
    ),
    ("GRPO step seconds (ours / TRL GRPOTrainer)", ["policy_step.py", "--steps", "2", "--warmup", "1"], "policy_step"),
]


def last_json(output: str) -> dict[str, Any]:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise ValueError("the benchmark printed no JSON line")


def row(kind: str, figures: dict[str, Any]) -> tuple[str, str, str]:
    """(ours, baseline, ratio) as printed."""
    if kind == "generation":
        ours, base = figures["apprentice_tokens_per_second"], figures["generate_tokens_per_second"]
        return f"{ours:.1f} tok/s", f"{base:.1f} tok/s", f"{figures['speedup']:.2f}x faster"
    ours, base = figures["apprentice"]["seconds_per_step"], figures["trl"]["seconds_per_step"]
    peak = figures["process"]["peak_rss_gib"]
    return (
        f"{ours:.2f} s",
        f"{base:.2f} s",
        f"{figures['ratio']['apprentice_over_trl']:.2f} of the time (peak {peak:.1f} GiB)",
    )


def bf16_has_hardware() -> bool:
    import torch

    from apprentice.precision import fast_bf16

    return fast_bf16(torch.device("cuda" if torch.cuda.is_available() else "cpu"))


def main() -> None:
    table: list[tuple[str, str, str, str, str]] = []
    for name, arguments, kind in RUNS:
        if "mixed" in arguments and not bf16_has_hardware():
            table.append((name, "skipped", "", "no fast bf16 on this machine", ""))
            continue
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(HERE / arguments[0]), *arguments[1:]], capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stdout[-2000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
            table.append((name, "failed", "", f"exit {done.returncode}", f"{seconds:.0f} s"))
            continue
        table.append((name, *row(kind, last_json(done.stdout)), f"{seconds:.0f} s"))
        print(f"done: {name} ({seconds:.0f} s)", file=sys.stderr)
    headers = ("benchmark", "ours", "baseline", "ratio", "wall")
    widths = [max(len(str(line[column])) for line in [headers, *table]) for column in range(len(headers))]
    for line in [headers, tuple("-" * width for width in widths), *table]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)))


if __name__ == "__main__":
    main()
