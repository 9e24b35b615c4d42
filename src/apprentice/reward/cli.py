"""`apprentice reward ...`: train, evaluate and use reward models. Thin: parse, call, print."""

from __future__ import annotations

import gzip
import json
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from apprentice.cli_common import ProjectOption, parse_set_options, print_options, read_options_file, reports_errors
from apprentice.errors import ApprenticeError, InputError
from apprentice.files import write_jsonl_atomically, write_text_atomically
from apprentice.launcher import from_main_process
from apprentice.run_folders import (
    RUNS_FOLDER,
    checkpoint_folders,
    claim_numbered_folder,
    discard_checkpoints,
    discarded_on_failure,
    prepare_output_folder,
    refuse_occupied_folder,
)

if TYPE_CHECKING:
    from apprentice.project import Project
    from apprentice.reward.config import RewardConfig
    from apprentice.reward.data import PreferenceData
    from apprentice.store import OpenRun
from apprentice.rates import describe_rate

reward_app: typer.Typer = typer.Typer(help="Reward models trained on the project's judgments.", no_args_is_help=True)
console = Console(markup=False)  # user text (paths, names) in brackets must print as written
SPLIT_FILE = "split.json"


@reward_app.command("train")
@reports_errors
def train(
    project_dir: ProjectOption = Path("."),
    model: Annotated[
        str | None, typer.Option(help="Backbone: 'minilm' (the default), 'default', a folder or a cached hub id.")
    ] = None,
    mode: Annotated[str | None, typer.Option(help="full (the default), lora or head (only the head).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the training pairs (default 1).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Pairs per step (default 8).")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Peak learning rate (default 5e-5).")] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens per prompt + response (default 512).")] = None,
    ties: Annotated[str | None, typer.Option(help="'drop' ties (the default) or keep them as 'half' wins.")] = None,
    members: Annotated[
        int | None, typer.Option(help="Ensemble members (each a full model); 1 (the default) means no ensemble.")
    ] = None,
    shared_heads: Annotated[
        int | None, typer.Option(help="Instead: a frozen backbone with this many linear heads (cheap ensemble).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (split, head, order); default 0.")] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="JSON or TOML file of options (see `apprentice reward options`).")
    ] = None,
    set_values: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any option as KEY=VALUE (JSON value), e.g. --set label_smoothing=0.1."),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(help="Run folder (default: the next PROJECT/runs/reward-N); one with checkpoints is resumed."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace the finished run in --run-dir.")] = False,
    keep_checkpoints: Annotated[
        bool,
        typer.Option(
            "--keep-checkpoints", help="Keep the last checkpoint after the run succeeds (by default it is deleted)."
        ),
    ] = False,
) -> None:
    """Train a reward model (or an ensemble) on the project's judgments and evaluate it on held-out prompts.

    Options come from their defaults, then --config FILE, then the flags, then --set KEY=VALUE."""
    from apprentice.launcher import relaunch_cpu_workers

    if (status := relaunch_cpu_workers()) is not None:
        raise typer.Exit(status)
    from apprentice.project import open_project

    flags = {
        "model": model,
        "train_mode": mode,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "max_length": max_length,
        "ties": ties,
        "members": members,
        "shared_heads": shared_heads,
        "seed": seed,
    }
    config = reward_options_from(config_file, flags, set_values or [])
    project = open_project(project_dir)
    try:
        evaluation, folder = _train_in_project(
            project, config, run_dir, overwrite=overwrite, keep_checkpoints=keep_checkpoints
        )
    finally:
        project.close()
    console.print(f"Reward model in {folder}")
    _print_evaluation(evaluation)


@reward_app.command("options")
@reports_errors
def options() -> None:
    """Every option of a reward run (for --set KEY=VALUE or --config), with its default and meaning."""
    from apprentice.reward.config import RewardConfig

    print_options(RewardConfig)


FLAG_NAMES = {"train_mode": "--mode"}  # a flag named otherwise than its option


def reward_options_from(config_file: Path | None, flags: dict[str, Any], assignments: list[str]) -> RewardConfig:
    """The run's options: defaults, then the file, then the flags given, then --set; a bad value is named with
    where it came from."""
    from apprentice.reward.config import build_reward_config

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if config_file is not None:
        from_file = read_options_file(config_file)
        values |= from_file
        sources |= dict.fromkeys(from_file, str(config_file))
    given = {key: value for key, value in flags.items() if value is not None}
    values |= given
    sources |= {key: FLAG_NAMES.get(key, "--" + key.replace("_", "-")) for key in given}
    set_by_option = parse_set_options(assignments, example="label_smoothing=0.1")
    values |= set_by_option
    sources |= dict.fromkeys(set_by_option, "--set")
    return build_reward_config(values, sources=sources)


def _train_in_project(
    project: Project, config: RewardConfig, run_dir: Path | None, *, overwrite: bool, keep_checkpoints: bool
) -> tuple[dict[str, Any], Path]:
    """Split the project's judgments by prompt, train in the run folder (recorded as a run of kind `reward`,
    with the quality run whose weights it used), and return the evaluation and the folder."""
    from accelerate import PartialState

    from apprentice.reward.data import DerivationOptions, derive_preferences, split_by_prompt

    data = derive_preferences(
        project.store.judged_comparisons(), DerivationOptions(ties=config.ties, rankings=config.rankings)
    )
    train_data, validation = split_by_prompt(data, validation_share=config.validation_share, seed=config.seed)
    # The quality run whose weights these judgments carry (`Store.weights_of_run`); None: all weigh 1.
    recorded = config.model_dump(mode="json") | {"quality_run": project.store.current_weights_run()}
    is_main = PartialState().is_main_process
    folder, fresh = _run_folder(project, run_dir, overwrite=overwrite)
    recording: AbstractContextManager[OpenRun | None] = (
        project.store.recording_run("reward", recorded, output_path=str(folder.resolve())) if is_main else nullcontext()
    )
    with discarded_on_failure(folder, fresh=fresh and is_main), recording as run:
        split = {
            "validation_prompts": sorted(validation.prompts),
            "seed": config.seed,
            "share": config.validation_share,
        }
        if is_main:
            write_text_atomically(folder / SPLIT_FILE, json.dumps(split) + "\n")
        console.print(
            f"{len(train_data)} training and {len(validation)} validation examples ({len(train_data.prompts)} / "
            f"{len(validation.prompts)} prompts); dropped: {dict(data.dropped) or 'none'}"
        )
        evaluation = _train_model_or_ensemble(train_data, validation, config, folder)
        if evaluation and is_main:
            write_text_atomically(folder / "eval.json", json.dumps(evaluation, indent=2) + "\n")
        if run is not None:
            run.metrics = _headline(evaluation)
    if is_main and not keep_checkpoints:
        discard_checkpoints(folder)
    return evaluation, folder


def _train_model_or_ensemble(
    train_data: PreferenceData, validation: PreferenceData, config: RewardConfig, folder: Path
) -> dict[str, Any]:
    from apprentice.reward.ensemble import train_member_ensemble, train_shared_backbone_ensemble
    from apprentice.reward.train import train_reward_model

    if config.shared_heads:
        _, evaluation = train_shared_backbone_ensemble(
            train_data,
            folder,
            model=config.model,
            heads=config.shared_heads,
            max_length=config.max_length,
            validation=validation,
            seed=config.seed,
        )
        return evaluation
    if config.members > 1:
        return train_member_ensemble(train_data, config, folder, members=config.members, validation=validation)
    return train_reward_model(train_data, config, folder, validation=validation).evaluation


@reward_app.command("eval")
@reports_errors
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="A run folder, a reward model folder or an ensemble folder.")],
    project_dir: ProjectOption = Path("."),
    all_prompts: Annotated[
        bool, typer.Option("--all", help="Every judged prompt, not only the run's held-out ones.")
    ] = False,
) -> None:
    """Evaluate a reward model on the project's judgments (by default the prompts its run held out)."""
    from apprentice.project import open_project
    from apprentice.reward.data import PreferenceData, derive_preferences, prompt_key
    from apprentice.reward.ensemble import ENSEMBLE_FILE, evaluate_ensemble, load_ensemble
    from apprentice.reward.evaluate import evaluate_reward_model

    project = open_project(project_dir)
    try:
        data = derive_preferences(project.store.judged_comparisons())
    finally:
        project.close()
    split_path = model_dir / SPLIT_FILE
    if not all_prompts:
        if not split_path.is_file():
            raise ApprenticeError(f"{model_dir} has no {SPLIT_FILE} (not a run folder); give a run folder or use --all")
        held = set(json.loads(split_path.read_text(encoding="utf-8"))["validation_prompts"])
        data = PreferenceData(
            pairs=[p for p in data.pairs if prompt_key(p.prompt) in held],
            groups=[g for g in data.groups if prompt_key(g.prompt) in held],
        )
    if not len(data):
        raise ApprenticeError("no judged pairs to evaluate on")
    if (model_dir / ENSEMBLE_FILE).is_file():
        evaluation = evaluate_ensemble(load_ensemble(model_dir), data)
    else:
        evaluation = evaluate_reward_model(_load_model(model_dir), data)
    _print_evaluation(evaluation)


@reward_app.command("score")
@reports_errors
def score(
    model_dir: Annotated[Path, typer.Argument(help="A run folder, a reward model folder or an ensemble folder.")],
    input_file: Annotated[Path, typer.Option("--input", help="JSONL(.gz) rows with 'prompt' and 'response'.")],
    out: Annotated[Path, typer.Option(help="JSONL to write: each input row with 'reward' (and 'spread').")],
    raw: Annotated[bool, typer.Option(help="Unnormalized rewards.")] = False,
) -> None:
    """Score prompt/response pairs from a JSONL file."""
    from apprentice.reward.ensemble import ENSEMBLE_FILE, load_ensemble

    rows, prompts, responses = _read_scoring_rows(input_file)
    if (model_dir / ENSEMBLE_FILE).is_file():
        scores = load_ensemble(model_dir).score(prompts, responses)
        extra = [{"reward": mean, "spread": std} for mean, std in zip(scores.mean, scores.std, strict=True)]
    else:
        rewards = _load_model(model_dir).score(prompts, responses, normalized=not raw)
        extra = [{"reward": reward} for reward in rewards]
    write_jsonl_atomically(out, (row | added for row, added in zip(rows, extra, strict=True)))
    console.print(f"Scored {len(rows)} responses into {out}")


def _run_folder(project: Project, run_dir: Path | None, *, overwrite: bool) -> tuple[Path, bool]:
    """The run's folder and whether this command made it: the next runs/reward-N, or `run_dir`, which is resumed
    when it holds checkpoints and otherwise must be new or empty (or replaced with --overwrite)."""
    if run_dir is None:
        recorded = [run.output_path for run in project.store.runs() if run.output_path]
        return from_main_process(lambda: claim_numbered_folder(project.root / RUNS_FOLDER, "reward", recorded)), True
    if checkpoint_folders(run_dir):
        return run_dir, False
    refuse_occupied_folder(run_dir, marker=SPLIT_FILE, overwrite=overwrite)  # in every process
    return run_dir, from_main_process(lambda: prepare_output_folder(run_dir, marker=SPLIT_FILE, overwrite=overwrite))


def _load_model(folder: Path) -> Any:
    from apprentice.reward.model import RewardModel, reward_model_folder

    return RewardModel.load(reward_model_folder(folder))


def _read_scoring_rows(path: Path) -> tuple[list[dict[str, Any]], list[list[dict[str, str]]], list[str]]:
    if not path.is_file():
        raise InputError("no such file", path=path)
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    rows, prompts, responses = [], [], []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"not valid JSON ({error.msg})", path=path, line=number) from None
            if not isinstance(row, dict):
                raise InputError("expected a JSON object", path=path, line=number)
            prompt = row.get("prompt")
            if isinstance(prompt, str):
                messages = [{"role": "user", "content": prompt}]
            elif isinstance(prompt, list) and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in prompt
            ):
                messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
            else:
                raise InputError(
                    "needs text or a list of {role, content} messages", path=path, line=number, field="prompt"
                )
            response = row.get("response")
            if not isinstance(response, str):
                raise InputError("needs the response text", path=path, line=number, field="response")
            rows.append(row)
            prompts.append(messages)
            responses.append(response)
    if not rows:
        raise InputError("no rows to score", path=path)
    return rows, prompts, responses


def _headline(evaluation: dict[str, Any]) -> dict[str, Any]:
    keys = ("pairs", "accuracy", "length_baseline_accuracy", "expected_calibration_error", "mean_spread")
    return {key: evaluation[key] for key in keys if key in evaluation}


def _print_evaluation(evaluation: dict[str, Any]) -> None:
    if not evaluation:
        console.print("No validation pairs (too few prompts); nothing evaluated.")
        return
    pairs = evaluation["pairs"]
    console.print(
        f"Held-out pairs: {pairs}; accuracy {describe_rate(evaluation['accuracy'], pairs, digits=3)} "
        f"(length-only baseline {describe_rate(evaluation['length_baseline_accuracy'], pairs, digits=3)}); "
        f"calibration error {evaluation['expected_calibration_error']:.3f}",
        highlight=False,
        soft_wrap=True,
    )
    for level, numbers in evaluation.get("accuracy_by_agreement", {}).items():
        accuracy = describe_rate(numbers["accuracy"], numbers["pairs"], digits=3)
        console.print(f"  {level:20} accuracy {accuracy}", highlight=False, soft_wrap=True)
    if "mean_spread" in evaluation:
        console.print(
            f"  ensemble mean spread {evaluation['mean_spread']:.3f}; members {evaluation['member_accuracies']}"
        )
