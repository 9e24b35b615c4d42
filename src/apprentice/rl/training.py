"""From a project (or files) to a trained policy in the store: gather inputs, run the algorithm, record it."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apprentice.errors import ApprenticeError
from apprentice.rl.config import AnyConfig, DPOConfig, GRPOConfig, PPOConfig, RLOOConfig, SFTConfig
from apprentice.rl.rewards import RewardSource, parse_reward
from apprentice.rl.session import TrainResult
from apprentice.run_folders import discard_checkpoints
from apprentice.store.records import Message

if TYPE_CHECKING:
    from apprentice.project import Project
    from apprentice.rl.dpo import PreferenceLike
    from apprentice.rl.sft import DemonstrationLike
    from apprentice.store import OpenRun, Run


@dataclass(frozen=True)
class PolicyOutcome:
    policy_path: Path
    metrics: dict[str, float]
    policy_name: str | None  # None when trained outside a project
    policy_id: int | None


@dataclass(frozen=True)
class TrainingData:
    """Data handed over whole (the loop's pairs and demonstrations) instead of read from the project or files."""

    pairs: Sequence[PreferenceLike] = ()
    demonstrations: Sequence[DemonstrationLike] = ()


def training_prompts(project: Project | None, prompts_file: Path | None) -> list[list[Message]]:
    if prompts_file is not None:
        from apprentice.importing import read_import_file

        prompts = [record.messages for record in read_import_file(prompts_file).prompts]
    elif project is not None:
        prompts = [row.messages for row in project.store.prompts(held_out=False)]
    else:
        raise ApprenticeError("no prompts: give --prompts FILE or run inside a project")
    if not prompts:
        raise ApprenticeError("no training prompts; import some with `apprentice prompts import FILE`")
    return prompts


def preference_data(project: Project | None, pairs_file: Path | None) -> list[Any]:
    if pairs_file is not None:
        from apprentice.importing import read_import_file
        from apprentice.rl.dpo import TextPair

        return [
            TextPair(pair.prompt.messages, pair.chosen, pair.rejected) for pair in read_import_file(pairs_file).pairs
        ]
    if project is None:
        raise ApprenticeError("no preference pairs: give --pairs FILE or run inside a project")
    from apprentice.preferences import preference_pairs

    return preference_pairs(project.store.judged_comparisons())


def _recorded_reward_folder(project: Project, run: Run) -> Path:
    """Where a reward run wrote; runs from before every run recorded its folder wrote to a fixed place."""
    if run.output_path:
        return Path(run.output_path)
    if "loop_round" in run.config:
        return project.root / "loop" / f"round-{run.config['loop_round']}" / "reward"
    return project.root / "runs" / f"reward-{run.id}"


def latest_reward_folder(project: Project | None) -> str:
    """The folder of the project's newest finished reward run that is still on disk (what `latest` names)."""
    if project is None:
        raise ApprenticeError("--reward latest needs a project; give a reward-model folder instead")
    done = [run for run in project.store.runs("reward") if run.status == "done"]
    for run in reversed(done):
        folder = _recorded_reward_folder(project, run)
        if folder.is_dir():
            return str(folder)
    raise ApprenticeError("the project has no finished reward model yet; run `apprentice reward train` first")


def reward_source(project: Project | None, specs: list[str], batch_size: int) -> RewardSource:
    resolved = []
    for spec in specs:
        weight, star, rest = spec.rpartition("*")
        if rest == "latest":
            rest = latest_reward_folder(project)
        resolved.append(f"{weight}{star}{rest}")
    return parse_reward(resolved, batch_size=batch_size)


def train_policy(
    algorithm: str,
    config: AnyConfig | SFTConfig,
    policy_name: str,
    *,
    project: Project | None = None,
    reward_specs: list[str] | None = None,
    prompts_file: Path | None = None,
    pairs_file: Path | None = None,
    data: TrainingData | None = None,
    new_name: str | None = None,
    resume: bool = False,
    show_progress: bool = True,
    keep_checkpoints: bool = False,
) -> PolicyOutcome:
    """Train, and record the run and the new policy in the project's store (from the main process).

    The run's checkpoints are deleted once it succeeds, unless `keep_checkpoints` (to extend it later with
    `resume`); a failed run keeps them to be resumed.
    """
    from apprentice.rl.session import distributed_state

    is_main = distributed_state().is_main_process
    run_config = {
        "algorithm": algorithm,
        "policy": policy_name,
        "rewards": reward_specs or [],
        **config.model_dump(mode="json"),
    }
    recording: contextlib.AbstractContextManager[OpenRun | None] = (
        project.store.recording_run("policy", run_config, output_path=str(config.output_dir.resolve()))
        if project is not None and is_main
        else contextlib.nullcontext()
    )
    with recording as run:
        result = _run(
            algorithm,
            config,
            policy_name,
            project,
            reward_specs or [],
            prompts_file,
            pairs_file,
            data,
            resume,
            show_progress,
        )
        name, policy_id = _store_policy(project, run, algorithm, policy_name, new_name, result)
    if is_main and not keep_checkpoints:
        discard_checkpoints(config.output_dir)
    return PolicyOutcome(result.policy_path, result.metrics, name, policy_id)


def _store_policy(
    project: Project | None,
    run: OpenRun | None,
    algorithm: str,
    policy_name: str,
    new_name: str | None,
    result: TrainResult,
) -> tuple[str | None, int | None]:
    """The trained policy as a row in the store (named, with its parent), and the run's metrics."""
    from apprentice.models import resolve_model

    if run is None or project is None:
        return None, None
    # From a policy the store holds (the loop's next round starts from the last one) that one is the
    # parent; only a model the store has not seen becomes a new base policy.
    base = project.store.policy_for_model(policy_name, resolve_model(policy_name))
    name = new_name or f"{algorithm}-run{run.id}"
    trained = project.store.ensure_policy(
        name, kind="trained", model_path=str(result.policy_path.resolve()), parent_id=base.id
    )
    run.metrics = result.metrics | {"policy_id": trained.id}
    return name, trained.id


def _run(
    algorithm: str,
    config: AnyConfig | SFTConfig,
    policy_name: str,
    project: Project | None,
    reward_specs: list[str],
    prompts_file: Path | None,
    pairs_file: Path | None,
    data: TrainingData | None,
    resume: bool,
    show_progress: bool,
) -> TrainResult:
    if isinstance(config, DPOConfig):
        from apprentice.rl.dpo import train_dpo

        if reward_specs:
            raise ApprenticeError("DPO learns from preference pairs, not a reward; drop --reward")
        pairs = data.pairs if data is not None else preference_data(project, pairs_file)
        return train_dpo(config, policy_name, pairs, resume=resume, show_progress=show_progress)
    if isinstance(config, SFTConfig):
        from apprentice.rl.sft import train_sft

        if data is None:
            raise ApprenticeError("supervised fine-tuning needs demonstrations")
        return train_sft(config, policy_name, data.demonstrations, resume=resume, show_progress=show_progress)
    if not reward_specs:
        raise ApprenticeError(
            f"{algorithm} needs a reward: pass --reward (a reward-model folder, 'latest' or module:function)"
        )
    prompts = training_prompts(project, prompts_file)
    reward = reward_source(project, reward_specs, config.reward_batch_size)
    if isinstance(config, PPOConfig):
        from apprentice.rl.ppo import train_ppo

        return train_ppo(config, policy_name, prompts, reward, resume=resume, show_progress=show_progress)
    if isinstance(config, GRPOConfig):
        from apprentice.rl.grpo import train_grpo

        return train_grpo(config, policy_name, prompts, reward, resume=resume, show_progress=show_progress)
    if isinstance(config, RLOOConfig):
        from apprentice.rl.rloo import train_rloo

        return train_rloo(config, policy_name, prompts, reward, resume=resume, show_progress=show_progress)
    raise ApprenticeError(f"unknown algorithm {algorithm!r}")
