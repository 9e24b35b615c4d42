"""`apprentice policy train --algo ppo|grpo|rloo|dpo`: optimize the policy. Thin: parse, call, print.

Runs the same under `accelerate launch`: `accelerate launch --cpu --num_processes 2 -m apprentice policy
train ...` trains in two CPU processes over gloo (see apprentice.launcher for why that needs our help with
accelerate 1.x), `--multi_gpu --num_processes N` on GPUs, or a config from src/apprentice/rl/accelerate/.
Only the main process prints and writes to the store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from apprentice.cli_common import ProjectOption, parse_set_options, print_options, read_options_file, reports_errors
from apprentice.errors import ApprenticeError
from apprentice.files import write_text_atomically
from apprentice.launcher import from_main_process
from apprentice.rl.config import POLICY_FOLDER
from apprentice.run_folders import (
    RUNS_FOLDER,
    claim_numbered_folder,
    discarded_on_failure,
    newest_numbered_folder,
    prepare_output_folder,
    refuse_occupied_folder,
)

if TYPE_CHECKING:
    from apprentice.project import Project

policy_app: typer.Typer = typer.Typer(
    help="Optimize the policy against rewards (PPO, GRPO, RLOO) or preferences (DPO)."
)
console = Console(markup=False)  # user text (paths, names) in brackets must print as written
CONFIG_FILE = "config.json"


def _config_record(algorithm: str, config: Any) -> dict[str, Any]:
    return {"algorithm": algorithm, **json.loads(config.model_dump_json())}


def _check_resume_config(output_dir: Path, algorithm: str, config: Any) -> None:
    """A resumed run must use the algorithm and options it started with (only `steps` may grow).

    `micro_batch_size` may change too (say, after running out of memory): it changes how the update is
    computed, not what it is; and a run from before it existed has no record of it.
    """
    from apprentice.rl.checkpoint import latest_checkpoint

    if latest_checkpoint(output_dir) is None:
        raise ApprenticeError(
            f"--resume: no checkpoint under {output_dir / 'checkpoints'} (a run that succeeded keeps one only "
            "with --keep-checkpoints); start a fresh run"
        )
    saved_path = output_dir / CONFIG_FILE
    if not saved_path.is_file():
        return
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    if saved.get("algorithm") != algorithm:
        raise ApprenticeError(f"--resume: {output_dir} holds a {saved.get('algorithm')} run, not {algorithm}")
    current = _config_record(algorithm, config)
    for key in sorted(set(saved) | set(current)):
        if key not in ("steps", "micro_batch_size") and saved.get(key) != current.get(key):
            raise ApprenticeError(
                f"--resume: option {key} was {saved.get(key)!r} when the run started and is {current.get(key)!r} "
                f"now; resume with the same options (see {saved_path})"
            )


@policy_app.command("train")
@reports_errors
def train(
    algo: Annotated[str, typer.Option(help="ppo, grpo, rloo or dpo.")],
    project_dir: ProjectOption = Path("."),
    reward: Annotated[
        list[str] | None,
        typer.Option(
            help="Reward (repeatable, summed): a reward-model folder, 'latest' (the project's newest reward run), "
            "module:function, ensemble:K:folder1,folder2, each optionally WEIGHT*SPEC."
        ),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            help="Starting policy: a stored policy's name, 'default', a folder or hub id (default: the project's)."
        ),
    ] = None,
    prompts: Annotated[
        Path | None, typer.Option(help="Prompts file (JSONL/CSV) instead of the project's training prompts.")
    ] = None,
    pairs: Annotated[
        Path | None, typer.Option(help="DPO: preference pairs file (TRL, HH-RLHF) instead of the project's judgments.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Run folder (default: the next PROJECT/runs/policy-ALGO-N).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name of the new policy in the store.")] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="JSON or TOML file of algorithm options.")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    set_values: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any algorithm option as KEY=VALUE (JSON value), e.g. --set kl_coef=0.05."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(help="Carry on from the run folder's latest checkpoint (default folder: the newest of ALGO)."),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace the run in the --output folder.")] = False,
    keep_checkpoints: Annotated[
        bool,
        typer.Option(
            "--keep-checkpoints",
            help="Keep the last checkpoint after the run succeeds, to extend it later with --resume "
            "(by default it is deleted then: it holds the optimizer's state, most of a run's size).",
        ),
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a new policy from the current one; the result is a folder transformers loads, stored as a policy."""
    from apprentice.launcher import relaunch_cpu_workers

    if (status := relaunch_cpu_workers()) is not None:
        raise typer.Exit(status)
    from apprentice.rl.config import build_config
    from apprentice.rl.session import distributed_state
    from apprentice.rl.training import train_policy

    state = distributed_state()
    project = _open_project_if_any(project_dir)
    try:
        values = read_options_file(config_file) if config_file else {}
        values |= {
            k: v for k, v in {"steps": steps, "learning_rate": learning_rate, "seed": seed}.items() if v is not None
        }
        values |= parse_set_options(set_values or [], example="kl_coef=0.05")
        if output is not None:
            values["output_dir"] = output
        config = build_config(algo, values)
        policy_name = policy or (project.settings.model.policy if project is not None else "default")
        if project is not None:
            policy_name = project.model_location(policy_name)  # a stored policy's name works too
        fresh_folder = False
        if "output_dir" not in values:
            config.output_dir, fresh_folder = _default_run_folder(project, algo, resume=resume)
            name = name or config.output_dir.name  # the policy is named as its folder: policy-dpo-2
        elif not resume:
            fresh_folder = _prepared_output(config.output_dir, overwrite=overwrite)
        with discarded_on_failure(config.output_dir, fresh=fresh_folder and state.is_main_process):
            if resume:
                _check_resume_config(config.output_dir, algo, config)
            if name is not None and project is not None:
                _check_name_is_free(project, name, config.output_dir)
            if state.is_main_process:
                record = json.dumps(_config_record(algo, config), indent=2) + "\n"
                write_text_atomically(config.output_dir / CONFIG_FILE, record)
            try:
                outcome = train_policy(
                    algo,
                    config,
                    policy_name,
                    project=project,
                    reward_specs=reward or [],
                    prompts_file=prompts,
                    pairs_file=pairs,
                    new_name=name,
                    resume=resume,
                    show_progress=progress,
                    keep_checkpoints=keep_checkpoints,
                )
            except KeyboardInterrupt:
                if state.is_main_process:
                    console.print(
                        how_to_resume(config.output_dir, config.checkpoint_every, output_given=output is not None)
                    )
                raise typer.Exit(130) from None
        if state.is_main_process:
            shown = "  ".join(f"{key} {value:.4g}" for key, value in outcome.metrics.items() if "/" not in key)
            console.print(f"Trained policy in {outcome.policy_path}")
            if outcome.policy_name is not None:
                console.print(f"Stored as policy '{outcome.policy_name}' (id {outcome.policy_id})")
            console.print(f"Last step: {shown}")
    finally:
        if project is not None:
            project.close()


def _default_run_folder(project: Project | None, algo: str, *, resume: bool) -> tuple[Path, bool]:
    """The next numbered folder of this algorithm (created, so fresh), or with `resume` the newest one."""
    if project is None:
        raise ApprenticeError("give --output (the run folder) when not training inside a project")
    runs = project.root / RUNS_FOLDER
    if resume:
        newest = newest_numbered_folder(runs, f"policy-{algo}")
        if newest is None:
            raise ApprenticeError(f"--resume: no {algo} run under {runs}; give its folder with --output")
        return newest, False
    recorded = [run.output_path for run in project.store.runs() if run.output_path]
    return from_main_process(lambda: claim_numbered_folder(runs, f"policy-{algo}", recorded)), True


def _prepared_output(folder: Path, *, overwrite: bool) -> bool:
    refuse_occupied_folder(folder, marker=CONFIG_FILE, overwrite=overwrite)  # in every process
    return from_main_process(lambda: prepare_output_folder(folder, marker=CONFIG_FILE, overwrite=overwrite))


def _check_name_is_free(project: Project, name: str, output_dir: Path) -> None:
    """Refuse a name another policy has (a resumed run keeps its own)."""
    taken = project.store.policy_named(name)
    if taken is not None and taken.model_path != str((output_dir / POLICY_FOLDER).resolve()):
        raise ApprenticeError(
            f"a policy named {name!r} exists already (its weights: {taken.model_path}); choose another --name"
        )


def how_to_resume(output_dir: Path, checkpoint_every: int, *, output_given: bool) -> str:
    """What a stopped run can do next: carry on from its last checkpoint, or start over when it has none."""
    from apprentice.rl.checkpoint import checkpoint_step, latest_checkpoint

    checkpoint = latest_checkpoint(output_dir)
    if checkpoint is None:
        return (
            f"Stopped before the first checkpoint (one every {checkpoint_every} steps), so there is nothing to resume; "
            "run the same command again to start over."
        )
    again = "the same command with --resume" + ("" if output_given else f" --output {output_dir}")
    return (
        f"Stopped. To carry on from the checkpoint at step {checkpoint_step(checkpoint)} in {output_dir}, run {again}."
    )


def _open_project_if_any(project_dir: Path) -> Project | None:
    from apprentice.project import open_project
    from apprentice.settings import PROJECT_FILE

    if not (project_dir / PROJECT_FILE).is_file():
        return None
    return open_project(project_dir)


@policy_app.command("options")
@reports_errors
def options(algo: Annotated[str, typer.Argument(help="ppo, grpo, rloo or dpo.")]) -> None:
    """Every option of an algorithm (for --set KEY=VALUE or --config), with its default and meaning."""
    from apprentice.rl.config import CONFIGS

    if algo not in CONFIGS:
        raise ApprenticeError(f"unknown algorithm {algo!r}; choose one of {', '.join(CONFIGS)}")
    print_options(CONFIGS[algo])
