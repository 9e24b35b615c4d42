"""Reward-model training: Bradley-Terry on pairs, Plackett-Luce on ranking groups, under `accelerate`.

The loop, per step: a batch of pairs (chosen and rejected responses scored in one forward pass) or
of ranking groups; loss = weighted Bradley-Terry (with margins, smoothing and tie targets) or
Plackett-Luce, plus the optional centering term; a clipped AdamW step with linear warmup and decay.
Batches are drawn in a seeded order and grouped by length (within shuffled chunks) so that little
time goes to padding. Every `checkpoint_every` steps the whole training state (weights, optimizer,
scheduler, random generators, step) is written to a staging folder and renamed into place, so a
killed run restarts from its last checkpoint and continues with exactly the batches it had left.

We write this loop instead of subclassing TRL's RewardTrainer because TRL has no per-example weights,
no ranking groups and no ensembles, and its Trainer machinery costs time per step on small models.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from apprentice.errors import ApprenticeError
from apprentice.files import shareable
from apprentice.pace import Pace
from apprentice.reward.data import PreferenceData, RankingGroup, RewardPair
from apprentice.reward.evaluate import evaluate_reward_model
from apprentice.reward.losses import bradley_terry_loss, plackett_luce_loss, reward_centering_loss
from apprentice.reward.model import Encoded, Normalization, RewardModel, TrainMode, replace_folder
from apprentice.run_folders import CHECKPOINTS
from apprentice.store.records import Message

TRAINER_STATE = "trainer_state.json"
LENGTH_GROUPING_CHUNK = 32  # batches per chunk sorted by length: long enough to group, short enough to stay random


@dataclass
class RewardTrainingConfig:
    model: str = "minilm"
    """Backbone: 'default' (SmolLM2-135M-Instruct), 'minilm' (all-MiniLM-L6-v2), a folder or a cached hub id."""
    train_mode: TrainMode = "full"
    """'full' fine-tunes everything, 'lora' trains low-rank adapters (merged on export), 'head' only the head."""
    lora_rank: int = 16
    """Rank of the LoRA adapters (train_mode 'lora')."""
    max_length: int = 512
    """Tokens per prompt + response; longer examples lose the oldest prompt tokens first."""
    epochs: int = 1
    """Passes over the training data; one is usual for reward models (they overfit quickly)."""
    batch_size: int = 8
    """Pairs (or ranking groups) per optimizer step."""
    learning_rate: float = 5e-5
    """Peak AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_share: float = 0.05
    """Share of the steps over which the learning rate rises linearly from 0; it then decays linearly to 0."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this norm."""
    disable_dropout: bool = True
    """Dropout off (as in TRL and the N-implementation-details study): deterministic rewards, faster steps."""
    label_smoothing: float = 0.0
    """Moves every pair's target toward 0.5 by this much: robustness to flipped labels."""
    margin_scale: float = 1.0
    """The Bradley-Terry margin is this times the pair's margin (the rating difference; 0 for plain pairs)."""
    center_coefficient: float = 0.0
    """Weight of the reward-centering term (r_c + r_r)^2; TRL suggests 0.01."""
    seed: int = 0
    """Seeds the head, the batch order and dropout."""
    checkpoint_every: int = 100
    """Steps between checkpoints (and at the end of each epoch)."""
    log_every: int = 10
    """Steps between rows of the metrics log."""
    normalization_samples: int = 512
    """Responses scored to measure the normalization constants."""

    def validate(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be at least 1 (it is {self.epochs})"),
            (self.batch_size >= 1, f"batch_size must be at least 1 (it is {self.batch_size})"),
            (self.learning_rate > 0, f"learning_rate must be positive (it is {self.learning_rate})"),
            (0 <= self.warmup_share < 1, f"warmup_share must be in [0, 1) (it is {self.warmup_share})"),
            (0 <= self.label_smoothing < 0.5, f"label_smoothing must be in [0, 0.5) (it is {self.label_smoothing})"),
            (self.checkpoint_every >= 1, f"checkpoint_every must be at least 1 (it is {self.checkpoint_every})"),
            (self.log_every >= 1, f"log_every must be at least 1 (it is {self.log_every})"),
        ]
        for ok, message in checks:
            if not ok:
                raise ApprenticeError(message)


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


# -- checkpoints ------------------------------------------------------------------------------------


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint; staging folders (names starting with '.') are never complete."""
    folder = run_dir / CHECKPOINTS
    if not folder.is_dir():
        return None
    complete = [path for path in folder.glob("step-*") if (path / TRAINER_STATE).is_file()]
    return max(complete, key=lambda path: int(path.name.removeprefix("step-")), default=None)


def _save_checkpoint(accelerator: Any, run_dir: Path, state: dict[str, Any]) -> None:
    folder = run_dir / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"step-{state['step']:07d}"
    staging = folder / f".{target.name}.partial"
    for stale in folder.glob(".step-*.partial"):  # left by a run killed while writing
        shutil.rmtree(stale, ignore_errors=True)
    accelerator.save_state(str(staging))
    if accelerator.is_main_process:
        (staging / TRAINER_STATE).write_text(json.dumps(state) + "\n", encoding="utf-8")
        shareable(staging)
        replace_folder(staging, target)
        for older in folder.glob("step-*"):
            if older != target:
                shutil.rmtree(older, ignore_errors=True)
    accelerator.wait_for_everyone()


# -- the loop ---------------------------------------------------------------------------------------


class _MetricsLog:
    """metrics.jsonl (appended, so a resumed run continues it) and TensorBoard scalars."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.writer: Any = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        for key, value in row.items():
            if key != "step" and isinstance(value, int | float):
                self.writer.add_scalar(key, value, row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _linear_warmup_decay(total_steps: int, warmup_share: float) -> Callable[[int], float]:
    warmup = max(1, round(total_steps * warmup_share)) if warmup_share > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


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
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    config.validate()
    if len(train) == 0:
        raise ApprenticeError("no training examples: the judgments gave no pairs or rankings to learn from")
    run_dir.mkdir(parents=True, exist_ok=True)
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
        for module in reward_model.model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    encoded_pairs = [
        (reward_model.encode(pair.prompt, pair.chosen), reward_model.encode(pair.prompt, pair.rejected))
        for pair in train.pairs
    ]
    encoded_groups = [[reward_model.encode(group.prompt, text) for text in group.responses] for group in train.groups]
    pair_lengths = [max(len(c.input_ids), len(r.input_ids)) for c, r in encoded_pairs]
    group_lengths = [max(len(item.input_ids) for item in group) for group in encoded_groups]

    def batches_for(epoch: int) -> list[_Batch]:
        batches = epoch_batches(pair_lengths, group_lengths, config.batch_size, config.seed, epoch)
        return batches[accelerator.process_index :: accelerator.num_processes]

    steps_per_epoch = len(batches_for(0))
    total_steps = steps_per_epoch * config.epochs
    trainable = [parameter for parameter in reward_model.model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _linear_warmup_decay(total_steps, config.warmup_share))
    model, optimizer, scheduler = accelerator.prepare(reward_model.model, optimizer, scheduler)
    model.train()

    step = 0
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        saved = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
        if saved.get("total_steps") != total_steps:
            raise ApprenticeError(
                f"checkpoint {checkpoint} is from a run of {saved.get('total_steps')} steps, this one has "
                f"{total_steps}; use the same data and settings, or a new run folder"
            )
        step = int(saved["step"])
    resumed_from = step
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")
    log = _MetricsLog(run_dir, accelerator.is_main_process)

    def batch_loss(batch: _Batch) -> tuple[torch.Tensor, dict[str, float]]:
        if batch.kind == "pairs":
            pairs: list[RewardPair] = [train.pairs[i] for i in batch.indices]
            chosen = [encoded_pairs[i][0] for i in batch.indices]
            rejected = [encoded_pairs[i][1] for i in batch.indices]
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
        groups: list[RankingGroup] = [train.groups[i] for i in batch.indices]
        flat: list[Encoded] = [item for i in batch.indices for item in encoded_groups[i]]
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

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("reward training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        disable=not (show_progress and accelerator.is_main_process),
    )
    pace = Pace(
        "reward training",
        total_steps,
        start=step,
        enabled=show_progress and accelerator.is_main_process,
        console=progress.console,
    )
    status = ""
    started = time.perf_counter()
    examples_seen = 0.0
    window: list[dict[str, float]] = []
    with progress:
        task = progress.add_task("train", total=total_steps, completed=step, status="")
        for epoch in range(step // max(1, steps_per_epoch), config.epochs):
            for index, batch in enumerate(batches_for(epoch)):
                if epoch * steps_per_epoch + index < step:
                    continue  # done before the checkpoint this run resumed from
                loss, stats = batch_loss(batch)
                accelerator.backward(loss)
                if config.max_grad_norm:
                    accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                examples_seen += stats["examples"]
                window.append({"loss": loss.item(), **stats})
                if step % config.log_every == 0 or step == total_steps:
                    elapsed = time.perf_counter() - started
                    row = {
                        "step": step,
                        "epoch": epoch + (index + 1) / steps_per_epoch,
                        "loss": sum(w["loss"] for w in window) / len(window),
                        "learning_rate": scheduler.get_last_lr()[0],
                        "examples_per_second": examples_seen / elapsed if elapsed else 0.0,
                    }
                    accuracies = [w["accuracy"] for w in window if "accuracy" in w]
                    if accuracies:
                        row["accuracy"] = sum(accuracies) / len(accuracies)
                    log.write(row)
                    window = []
                    status = f"loss {row['loss']:.3f}"
                    progress.update(task, status=status)
                if step % config.checkpoint_every == 0 or (index + 1) == steps_per_epoch:
                    _save_checkpoint(accelerator, run_dir, {"step": step, "total_steps": total_steps})
                progress.update(task, completed=step)
                pace.update(step, status)
                if on_step is not None:
                    on_step(step)
    train_seconds = time.perf_counter() - started
    log.close()

    reward_model.model = accelerator.unwrap_model(model)
    reward_model.model.eval()
    if hasattr(reward_model.model, "merge_and_unload"):
        reward_model.model = reward_model.model.merge_and_unload()
    samples = list(normalize_on) if normalize_on is not None else _training_responses(train)
    reward_model.normalization = measure_normalization(
        reward_model,
        samples,
        limit=config.normalization_samples,
        seed=config.seed,
        measured_on="the given reference-policy responses" if normalize_on is not None else "the training responses",
    )
    evaluation: dict[str, Any] = {}
    if validation is not None and len(validation):
        evaluation = evaluate_reward_model(reward_model, validation)
    if accelerator.is_main_process:
        reward_model.save(run_dir / "model")
        if evaluation:
            (run_dir / "eval.json").write_text(json.dumps(evaluation, indent=2) + "\n", encoding="utf-8")
    accelerator.wait_for_everyone()
    trained = step - resumed_from
    return RewardTrainingResult(
        model_dir=run_dir / "model",
        steps=step,
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
