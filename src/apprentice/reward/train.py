"""Reward-model training: Bradley-Terry on pairs, Plackett-Luce on ranking groups, under `accelerate`.

The loop, per step: a batch of pairs (chosen and rejected responses scored in one forward pass) or
of ranking groups; loss = weighted Bradley-Terry (with margins, smoothing and tie targets) or
Plackett-Luce, plus the optional centering term; a clipped AdamW step with linear warmup and decay.
Batches are drawn in a seeded order and grouped by length (within shuffled chunks) so that little
time goes to padding. Every `checkpoint_every` steps the whole training state (weights, optimizer,
scheduler, random generators, step) is saved with the policy trainers' atomic checkpoints
(`rl/checkpoint.py`), so a killed run restarts from its last checkpoint and continues with exactly the
batches it had left; the metrics log is theirs too (`rl/metrics.py`).

We write this loop instead of subclassing TRL's RewardTrainer because TRL has no per-example weights,
no ranking groups and no ensembles, and its Trainer machinery costs time per step on small models.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from apprentice.errors import ApprenticeError
from apprentice.pace import Pace
from apprentice.reward.config import RewardConfig, RewardTrainingConfig
from apprentice.reward.data import PreferenceData, RankingGroup, RewardPair
from apprentice.reward.evaluate import evaluate_reward_model
from apprentice.reward.losses import bradley_terry_loss, plackett_luce_loss, reward_centering_loss
from apprentice.reward.model import Encoded, Normalization, RewardModel
from apprentice.rl.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from apprentice.rl.metrics import RunLog
from apprentice.rl.session import disable_dropout
from apprentice.store.records import Message

__all__ = [
    "RewardConfig",
    "RewardTrainingConfig",
    "RewardTrainingResult",
    "latest_checkpoint",
    "measure_normalization",
    "train_reward_model",
]

CHECKPOINT_DIGITS = 7  # checkpoints are named step-0000100, so their names sort like their steps
LENGTH_GROUPING_CHUNK = 32  # batches per chunk sorted by length: long enough to group, short enough to stay random


@dataclass
class RewardTrainingResult:
    model_dir: Path
    steps: int
    resumed_from_step: int
    train_seconds: float
    examples_per_second: float
    evaluation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Batch:
    kind: str  # "pairs" or "groups"
    indices: tuple[int, ...]


# -- batches ----------------------------------------------------------------------------------------


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled indices cut into batches of similar length: shuffle, sort within chunks, shuffle the batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * LENGTH_GROUPING_CHUNK
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        block = sorted(order[start : start + chunk], key=lambda index: -lengths[index])
        batches.extend(block[i : i + batch_size] for i in range(0, len(block), batch_size))
    rng.shuffle(batches)
    return batches


def epoch_batches(
    pair_lengths: Sequence[int], group_lengths: Sequence[int], batch_size: int, seed: int, epoch: int
) -> list[_Batch]:
    rng = random.Random(seed * 1_000_003 + epoch)
    batches = [_Batch("pairs", tuple(b)) for b in length_grouped_batches(pair_lengths, batch_size, rng)]
    batches += [_Batch("groups", tuple(b)) for b in length_grouped_batches(group_lengths, batch_size, rng)]
    rng.shuffle(batches)
    return batches


# -- one step's loss ----------------------------------------------------------------------------------


@dataclass
class _EncodedData:
    """The training data tokenized once, with each batch item's longest length for length grouping."""

    data: PreferenceData
    pairs: list[tuple[Encoded, Encoded]]
    groups: list[list[Encoded]]

    @classmethod
    def of(cls, data: PreferenceData, reward_model: RewardModel) -> _EncodedData:
        pairs = [
            (reward_model.encode(pair.prompt, pair.chosen), reward_model.encode(pair.prompt, pair.rejected))
            for pair in data.pairs
        ]
        groups = [[reward_model.encode(group.prompt, text) for text in group.responses] for group in data.groups]
        return cls(data, pairs, groups)

    @property
    def pair_lengths(self) -> list[int]:
        return [max(len(chosen.input_ids), len(rejected.input_ids)) for chosen, rejected in self.pairs]

    @property
    def group_lengths(self) -> list[int]:
        return [max(len(item.input_ids) for item in group) for group in self.groups]


def _pair_loss(
    reward_model: RewardModel, model: Any, encoded: _EncodedData, indices: Sequence[int], config: RewardTrainingConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted Bradley-Terry (with margins, smoothing and tie targets) plus the optional centering term;
    chosen and rejected responses are scored in one forward pass."""
    pairs: list[RewardPair] = [encoded.data.pairs[i] for i in indices]
    chosen = [encoded.pairs[i][0] for i in indices]
    rejected = [encoded.pairs[i][1] for i in indices]
    scores = reward_model.raw_scores(reward_model.collate(chosen + rejected), model)  # (2B,)
    chosen_rewards, rejected_rewards = scores[: len(pairs)], scores[len(pairs) :]
    device = scores.device
    weights = torch.tensor([p.weight for p in pairs], device=device)
    loss = bradley_terry_loss(
        chosen_rewards,
        rejected_rewards,
        margins=torch.tensor([p.margin * config.margin_scale for p in pairs], device=device),
        targets=torch.tensor([p.target for p in pairs], device=device),
        label_smoothing=config.label_smoothing,
        weights=weights,
    )
    if config.center_coefficient:
        loss = loss + config.center_coefficient * reward_centering_loss(
            chosen_rewards, rejected_rewards, weights=weights
        )
    accuracy = (chosen_rewards > rejected_rewards).float().mean().item()
    return loss, {"accuracy": accuracy, "examples": float(len(pairs))}


def _group_loss(
    reward_model: RewardModel, model: Any, encoded: _EncodedData, indices: Sequence[int]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Plackett-Luce on ranking groups of different sizes, padded to the widest and masked."""
    groups: list[RankingGroup] = [encoded.data.groups[i] for i in indices]
    flat: list[Encoded] = [item for i in indices for item in encoded.groups[i]]
    flat_scores = reward_model.raw_scores(reward_model.collate(flat), model)
    width = max(len(group.responses) for group in groups)
    scores = torch.zeros((len(groups), width), device=flat_scores.device)
    ranks = torch.zeros((len(groups), width), dtype=torch.long, device=flat_scores.device)
    mask = torch.zeros((len(groups), width), dtype=torch.bool, device=flat_scores.device)
    offset = 0
    for row, group in enumerate(groups):
        size = len(group.responses)
        scores[row, :size] = flat_scores[offset : offset + size]
        ranks[row, :size] = torch.tensor(group.ranks)
        mask[row, :size] = True
        offset += size
    weights = torch.tensor([g.weight for g in groups], device=scores.device)
    return plackett_luce_loss(scores, ranks, mask=mask, weights=weights), {"examples": float(len(groups))}


# -- the optimizer and its schedule -------------------------------------------------------------------


def _linear_warmup_decay(total_steps: int, warmup_share: float) -> Callable[[int], float]:
    warmup = max(1, round(total_steps * warmup_share)) if warmup_share > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


@dataclass
class _Run:
    """What the training steps work on: the prepared model, optimizer and schedule, and where the run is."""

    config: RewardTrainingConfig
    run_dir: Path
    accelerator: Any
    reward_model: RewardModel
    model: Any  # the backbone as `accelerate` prepared it
    optimizer: Any
    scheduler: Any
    trainable: list[torch.nn.Parameter]
    encoded: _EncodedData
    steps_per_epoch: int
    total_steps: int
    step: int = 0

    def batches_for(self, epoch: int) -> list[_Batch]:
        return _process_batches(self.encoded, self.config, self.accelerator, epoch)

    def save_checkpoint(self) -> None:
        save_checkpoint(
            self.accelerator,
            self.run_dir,
            self.step,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            training_state={"total_steps": self.total_steps},
            keep=1,
            digits=CHECKPOINT_DIGITS,
        )


def _process_batches(encoded: _EncodedData, config: RewardTrainingConfig, accelerator: Any, epoch: int) -> list[_Batch]:
    """This process's share of the epoch's batches (every process draws the same order)."""
    batches = epoch_batches(encoded.pair_lengths, encoded.group_lengths, config.batch_size, config.seed, epoch)
    return batches[accelerator.process_index :: accelerator.num_processes]


def _prepare(train: PreferenceData, config: RewardTrainingConfig, run_dir: Path) -> _Run:
    """The reward model on its backbone, the data tokenized, and AdamW with warm-up and linear decay."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator()
    set_seed(config.seed)
    reward_model = RewardModel.from_backbone(
        config.model,
        max_length=config.max_length,
        train_mode=config.train_mode,
        lora_rank=config.lora_rank,
        seed=config.seed,
    )
    if config.disable_dropout:
        disable_dropout(reward_model.model)
    encoded = _EncodedData.of(train, reward_model)
    steps_per_epoch = len(_process_batches(encoded, config, accelerator, 0))
    total_steps = steps_per_epoch * config.epochs
    trainable = [parameter for parameter in reward_model.model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _linear_warmup_decay(total_steps, config.warmup_share))
    model, optimizer, scheduler = accelerator.prepare(reward_model.model, optimizer, scheduler)
    model.train()
    return _Run(
        config,
        run_dir,
        accelerator,
        reward_model,
        model,
        optimizer,
        scheduler,
        trainable,
        encoded,
        steps_per_epoch,
        total_steps,
    )


def _resume(run: _Run) -> None:
    """Carry on from the run folder's newest checkpoint, which must be of a run of as many steps."""
    checkpoint = latest_checkpoint(run.run_dir)
    if checkpoint is None:
        return
    if not (checkpoint / "state.pt").is_file():
        raise ApprenticeError(
            f"checkpoint {checkpoint} was written by an older version of apprentice and cannot be resumed; "
            "delete it or use a new run folder"
        )
    state = load_checkpoint(
        run.accelerator, checkpoint, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler
    )
    if state.get("total_steps") != run.total_steps:
        raise ApprenticeError(
            f"checkpoint {checkpoint} is from a run of {state.get('total_steps')} steps, this one has "
            f"{run.total_steps}; use the same data and settings, or a new run folder"
        )
    run.step = int(state["step"])


# -- the loop -----------------------------------------------------------------------------------------


def _optimizer_step(run: _Run, batch: _Batch) -> dict[str, float]:
    """One batch's loss, backward, clipping and AdamW step; returns its loss and statistics."""
    if batch.kind == "pairs":
        loss, stats = _pair_loss(run.reward_model, run.model, run.encoded, batch.indices, run.config)
    else:
        loss, stats = _group_loss(run.reward_model, run.model, run.encoded, batch.indices)
    run.accelerator.backward(loss)
    if run.config.max_grad_norm:
        run.accelerator.clip_grad_norm_(run.trainable, run.config.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    return {"loss": loss.item(), **stats}


def _log_row(run: _Run, window: list[dict[str, float]], epoch: float, examples_per_second: float) -> dict[str, float]:
    """The means over the steps since the last row."""
    row = {
        "epoch": epoch,
        "loss": sum(w["loss"] for w in window) / len(window),
        "learning_rate": run.scheduler.get_last_lr()[0],
        "examples_per_second": examples_per_second,
    }
    accuracies = [w["accuracy"] for w in window if "accuracy" in w]
    if accuracies:
        row["accuracy"] = sum(accuracies) / len(accuracies)
    return row


def _progress_bar(enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("reward training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        disable=not enabled,
    )


def _train_epochs(
    run: _Run, log: RunLog, *, show_progress: bool, on_step: Callable[[int], None] | None
) -> tuple[float, float]:
    """Every step from the resumed one to the end, with logs and checkpoints; (seconds, examples seen)."""
    config = run.config
    started = time.perf_counter()
    examples_seen = 0.0
    window: list[dict[str, float]] = []
    shown = show_progress and run.accelerator.is_main_process
    progress = _progress_bar(shown)
    # A line with the expected time after the first step, and one a minute when output is not a terminal.
    pace = Pace("reward training", run.total_steps, start=run.step, enabled=shown, console=progress.console)
    status = ""
    with progress:
        task = progress.add_task("train", total=run.total_steps, completed=run.step, status="")
        for epoch in range(run.step // max(1, run.steps_per_epoch), config.epochs):
            for index, batch in enumerate(run.batches_for(epoch)):
                if epoch * run.steps_per_epoch + index < run.step:
                    continue  # done before the checkpoint this run resumed from
                stats = _optimizer_step(run, batch)
                examples_seen += stats["examples"]
                window.append(stats)
                if run.step % config.log_every == 0 or run.step == run.total_steps:
                    elapsed = time.perf_counter() - started
                    row = _log_row(
                        run,
                        window,
                        epoch + (index + 1) / run.steps_per_epoch,
                        examples_seen / elapsed if elapsed else 0.0,
                    )
                    log.metrics(run.step, row)
                    window = []
                    status = f"loss {row['loss']:.3f}"
                    progress.update(task, status=status)
                if run.step % config.checkpoint_every == 0 or (index + 1) == run.steps_per_epoch:
                    run.save_checkpoint()
                progress.update(task, completed=run.step)
                pace.update(run.step, status)
                if on_step is not None:
                    on_step(run.step)
    return time.perf_counter() - started, examples_seen


def _export(
    run: _Run,
    train: PreferenceData,
    validation: PreferenceData | None,
    normalize_on: Sequence[tuple[Sequence[Message], str]] | None,
) -> dict[str, Any]:
    """The trained model unwrapped (LoRA merged), normalized, evaluated and saved to `run_dir/model`."""
    reward_model = run.reward_model
    reward_model.model = run.accelerator.unwrap_model(run.model)
    reward_model.model.eval()
    if hasattr(reward_model.model, "merge_and_unload"):
        reward_model.model = reward_model.model.merge_and_unload()
    samples = list(normalize_on) if normalize_on is not None else _training_responses(train)
    reward_model.normalization = measure_normalization(
        reward_model,
        samples,
        limit=run.config.normalization_samples,
        seed=run.config.seed,
        measured_on="the given reference-policy responses" if normalize_on is not None else "the training responses",
    )
    evaluation: dict[str, Any] = {}
    if validation is not None and len(validation):
        evaluation = evaluate_reward_model(reward_model, validation)
    if run.accelerator.is_main_process:
        reward_model.save(run.run_dir / "model")
        if evaluation:
            (run.run_dir / "eval.json").write_text(json.dumps(evaluation, indent=2) + "\n", encoding="utf-8")
    run.accelerator.wait_for_everyone()
    return evaluation


def train_reward_model(
    train: PreferenceData,
    config: RewardTrainingConfig,
    run_dir: Path,
    *,
    validation: PreferenceData | None = None,
    normalize_on: Sequence[tuple[Sequence[Message], str]] | None = None,
    resume: bool = True,
    show_progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> RewardTrainingResult:
    """Train, export to `run_dir/model`, normalize, and evaluate on `validation` when given.

    `normalize_on`: (prompt, response) samples of the reference policy; by default the training
    responses. `on_step` is called after each optimizer step with the step number.
    """
    if len(train) == 0:
        raise ApprenticeError("no training examples: the judgments gave no pairs or rankings to learn from")
    run_dir.mkdir(parents=True, exist_ok=True)
    run = _prepare(train, config, run_dir)
    if resume:
        _resume(run)
    resumed_from = run.step
    (run_dir / "config.json").write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
    log = RunLog(
        run_dir, enabled=run.accelerator.is_main_process, tensorboard=config.tensorboard, resumed_step=run.step
    )
    try:
        train_seconds, examples_seen = _train_epochs(run, log, show_progress=show_progress, on_step=on_step)
    finally:
        log.close()
    evaluation = _export(run, train, validation, normalize_on)
    trained = run.step - resumed_from
    return RewardTrainingResult(
        model_dir=run_dir / "model",
        steps=run.step,
        resumed_from_step=resumed_from,
        train_seconds=train_seconds,
        examples_per_second=examples_seen / train_seconds if trained and train_seconds else 0.0,
        evaluation=evaluation,
    )


def _training_responses(data: PreferenceData) -> list[tuple[Sequence[Message], str]]:
    seen: dict[tuple[str, str], tuple[Sequence[Message], str]] = {}
    for pair in data.pairs:
        for text in (pair.chosen, pair.rejected):
            seen.setdefault((json.dumps(pair.prompt), text), (pair.prompt, text))
    for group in data.groups:
        for text in group.responses:
            seen.setdefault((json.dumps(group.prompt), text), (group.prompt, text))
    return list(seen.values())


def measure_normalization(
    model: RewardModel,
    samples: Sequence[tuple[Sequence[Message], str]],
    *,
    limit: int,
    seed: int,
    measured_on: str,
) -> Normalization:
    """Mean and std of the raw rewards of (a random subset of) `samples`."""
    chosen = list(samples)
    if len(chosen) > limit:
        chosen = random.Random(seed).sample(chosen, limit)
    if len(chosen) < 2:
        return Normalization(measured_on="too few responses to normalize")
    raw = torch.tensor(model.score([p for p, _ in chosen], [r for _, r in chosen], normalized=False))
    std = float(raw.std())
    return Normalization(
        mean=float(raw.mean()),
        std=std if math.isfinite(std) and std > 1e-8 else 1.0,
        measured_on=f"{len(chosen)} of {measured_on}",
    )
