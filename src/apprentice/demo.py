"""The main job on the embedded defaults, as `make demo` runs it: the whole loop, simulated people.

A fresh project with the bundled prompts and the default model (SmolLM2-135M-Instruct), a real studio
server on SQLite, simulated annotators judging through its HTTP API, then reward training, policy
optimization and evaluation, round after round, and one HTML report at the end. The settings are
sized to finish within a quarter of an hour on a 2-core CPU with bf16 units (about 9 minutes, 3.05 GiB at
its peak, on one with AMX; 11 to 13 minutes, 2.86 GiB, with AVX-512 bf16) and in 17 to 30 minutes, 2.6 GiB,
on one without; they are all in the project's apprentice.toml, so the same project can go on with more
rounds, or with people, afterwards.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from rich.console import Console
from rich.table import Table

from apprentice.importing import read_import_file
from apprentice.loop import run_loop
from apprentice.models import cache_dir, resolve_model
from apprentice.project import init_project
from apprentice.report import accuracy_cell, labels_so_far, rate_cell, round_figures, write_report
from apprentice.settings import Settings


def bundled_prompts_path() -> Path:
    return Path(str(files("apprentice") / "data" / "prompts.jsonl"))


def demo_settings(model_name: str) -> Settings:
    """Defaults trimmed to fit the demo's time on a laptop CPU."""
    settings = Settings()
    settings.project.name = "apprentice-demo"
    settings.model.policy = model_name
    settings.generation.max_new_tokens = 64
    settings.generation.candidates = 3  # three pairs per prompt: enough comparisons for the round's quota
    loop = settings.loop
    loop.rounds = 2
    loop.prompts_per_round = 24
    loop.labels_per_round = 48
    loop.eval_prompts = 48  # enough held-out prompts for a win rate whose interval can clear 0.5
    loop.annotators = 8
    loop.oracle = "composite"
    loop.flip_rate = 0.25
    loop.policy_steps = 10
    # A LoRA adapter a round: the reference is the adapter switched off and Adam keeps state for the
    # adapter alone, so the demo fits in 3 GB. 7e-4 moved it too little (KL 0.6 a round), 1.5e-3 too far
    # (KL 8 after one round, gold win rate 0.22).
    loop.policy_lora_rank = 16
    loop.policy_learning_rate = 1e-3
    return settings


def run_demo(folder: Path, *, model_name: str = "default", rounds: int | None = None, console: Console) -> Path:
    console.rule("Apprentice demo: the whole loop, with simulated annotators")
    console.print(f"Preparing the model '{model_name}' (the first use converts it once; cache: {cache_dir()})")
    resolve_model(model_name)
    project = init_project(folder, settings=demo_settings(model_name))
    try:
        parsed = read_import_file(bundled_prompts_path())
        imported = project.store.import_prompts(parsed.prompts, parsed.pairs, source="bundled")
        console.print(f"Project in {folder} with {imported.prompts_added} bundled prompts", markup=False)
        run_loop(project, rounds=rounds, console=console)
        report = write_report(project)
        table = Table(title="Rounds (held-out prompts)")
        columns = (
            "round",
            "labels so far",
            "reward acc. (labels)",
            "reward acc. vs gold",
            "KL",
            "proxy",
            "gold",
            "base gold",
            "gold win rate vs base",
        )
        for column in columns:
            table.add_column(column, overflow="fold")  # a narrow terminal wraps figures, never cuts them
        rows = round_figures(project.store.rounds())
        for row, labels in zip(rows, labels_so_far(rows), strict=True):
            table.add_row(
                str(row["round"]),
                str(labels),  # every judgment the loop has cost, later answers to earlier rounds' included
                accuracy_cell(row),
                rate_cell(row["reward_gold_accuracy"]),
                _fmt(row["kl_from_base"]),
                _fmt(row["proxy_reward"]),
                _fmt(row["gold"]),
                _fmt(row["base_gold"]),
                rate_cell(row["win_rate_vs_base_gold"]),
            )
        console.print(table)
        console.print(f"Report: {report}", markup=False)
        console.print(
            "To do the same with people: set [loop] annotators = 0 in "
            f"{folder / 'apprentice.toml'}, run `apprentice studio -p {folder}`, give each person the link that "
            f"`apprentice annotators add NAME -p {folder}` prints, and run `apprentice loop -p {folder}`.",
            markup=False,
        )
        return report
    finally:
        project.close()


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
