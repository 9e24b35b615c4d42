"""What a reward run is configured with: the trainer's options and, for `apprentice reward train`, the data
and ensemble options around it. Pydantic models, each field's description also its help text
(`apprentice reward options`), so a value that cannot work is refused before any model is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from apprentice.errors import ApprenticeError
from apprentice.reward.data import RankingHandling, TieHandling
from apprentice.reward.model import TrainMode


class RewardTrainingConfig(BaseModel):
    """The trainer's options (`reward/train.py`): backbone, optimizer, loss and bookkeeping."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field(
        "minilm",
        description="Backbone: 'default' (SmolLM2-135M-Instruct), 'minilm' (all-MiniLM-L6-v2), a folder or a "
        "cached hub id.",
    )
    train_mode: TrainMode = Field(
        "full",
        description="'full' fine-tunes everything, 'lora' trains low-rank adapters (merged on export), 'head' "
        "only the head.",
    )
    lora_rank: int = Field(16, ge=1, description="Rank of the LoRA adapters (train_mode 'lora').")
    max_length: int = Field(
        512, ge=8, description="Tokens per prompt + response; longer examples lose the oldest prompt tokens first."
    )
    epochs: int = Field(1, ge=1, description="Passes over the training data; one is usual (reward models overfit).")
    batch_size: int = Field(8, ge=1, description="Pairs (or ranking groups) per optimizer step.")
    learning_rate: float = Field(5e-5, gt=0.0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    warmup_share: float = Field(
        0.05,
        ge=0.0,
        lt=1.0,
        description="Share of the steps over which the learning rate rises linearly from 0; it then decays "
        "linearly to 0.",
    )
    max_grad_norm: float = Field(1.0, ge=0.0, description="Gradients are clipped to this norm (0: not clipped).")
    disable_dropout: bool = Field(
        True, description="Dropout off (as in TRL and the N-implementation-details study): deterministic rewards."
    )
    label_smoothing: float = Field(
        0.0, ge=0.0, lt=0.5, description="Moves every pair's target toward 0.5 by this much: robustness to flips."
    )
    margin_scale: float = Field(
        1.0, description="The Bradley-Terry margin is this times the pair's margin (the rating difference)."
    )
    center_coefficient: float = Field(
        0.0, ge=0.0, description="Weight of the reward-centering term (r_c + r_r)^2; TRL suggests 0.01."
    )
    seed: int = Field(0, description="Seeds the split, the head, the batch order and dropout.")
    checkpoint_every: int = Field(100, ge=1, description="Steps between checkpoints (and at the end of each epoch).")
    log_every: int = Field(10, ge=1, description="Steps between rows of the metrics log.")
    normalization_samples: int = Field(
        512, ge=2, description="Responses scored to measure the normalization constants."
    )
    tensorboard: bool = Field(True, description="Write TensorBoard logs beside the metrics JSONL.")


class RewardConfig(RewardTrainingConfig):
    """A reward run of `apprentice reward train`: the trainer's options, how judgments become training
    examples, and whether to train an ensemble."""

    ties: TieHandling = Field("drop", description="'drop' ties, or keep them as 'half' a win for each side.")
    rankings: RankingHandling = Field(
        "pairs", description="A ranking as 'pairs' (every pair it implies) or one 'plackett-luce' group."
    )
    validation_share: float = Field(
        0.2, ge=0.0, lt=1.0, description="Share of prompts held out for validation (split by prompt)."
    )
    members: int = Field(1, ge=1, description="Ensemble members, each a full model; 1 means no ensemble.")
    shared_heads: int = Field(
        0, ge=0, description="Instead of members: a frozen backbone with this many linear heads (a cheap ensemble)."
    )


def build_reward_config(values: Mapping[str, Any], *, sources: Mapping[str, str] | None = None) -> RewardConfig:
    """The config from plain values, or an ApprenticeError naming the option, where its value came from
    (`sources`: option -> e.g. '--ties', '--set', 'run.toml') and what to change."""
    try:
        return RewardConfig(**values)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        source = (sources or {}).get(where)
        prefix = f"{source}: " if source and source.startswith("--") and source != "--set" else ""
        origin = f" (from {source})" if source and not prefix else ""
        raise ApprenticeError(f"{prefix}reward option {where}{origin}: {message}, got {first.get('input')!r}") from None
