"""One config per algorithm; each validates itself and says what to change when a value cannot work.

Every field's description is also its help text. A config is plain data: it can be written to the
run's folder as JSON and read back to resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from apprentice.errors import ApprenticeError
from apprentice.precision import MIXED_PRECISION_HELP, MixedPrecision

POLICY_FOLDER = "policy"  # the trained policy, inside the run's output_dir


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OnlineConfig(_Config):
    """What every online algorithm (PPO, GRPO, RLOO) shares: sampling, reference, optimizer, bookkeeping."""

    output_dir: Path = Field(Path("policy-run"), description="Folder for checkpoints, logs and the final policy.")
    seed: int = Field(0, description="Random seed for the data order, sampling and initialisation.")
    steps: int = Field(100, ge=1, description="Rollout-and-update steps to run.")
    prompts_per_step: int = Field(8, ge=1, description="Prompts sampled per step on each process.")
    completions_per_prompt: int = Field(4, ge=1, description="Completions sampled per prompt (the group size).")
    max_new_tokens: int = Field(48, ge=1, le=4096, description="Longest completion, in tokens.")
    max_prompt_tokens: int = Field(256, ge=1, description="Prompts longer than this keep only their last tokens.")
    temperature: float = Field(0.7, gt=0.0, le=5.0, description="Sampling temperature; log-probs use the same.")
    top_k: int = Field(0, ge=0, description="Sample only from the k likeliest tokens; 0 means all.")
    learning_rate: float = Field(1e-5, gt=0.0, description="AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    adam_eps: float = Field(1e-8, gt=0.0, description="AdamW epsilon.")
    lr_schedule: Literal["constant", "linear", "cosine"] = Field(
        "linear", description="Learning-rate schedule after warm-up: constant, linear or cosine decay to 0."
    )
    warmup_steps: int = Field(0, ge=0, description="Optimizer steps of linear learning-rate warm-up.")
    max_grad_norm: float = Field(1.0, gt=0.0, description="Clip the gradient's global norm to this.")
    kl_coef: float = Field(0.05, ge=0.0, description="Weight of the KL penalty to the reference; 0 needs no reference.")
    kl_estimator: Literal["k1", "k2", "k3"] = Field("k1", description="Per-token KL estimator: k1, k2 or k3.")
    no_eos_penalty: float | None = Field(
        None, description="Reward given instead of the score to completions that never end; None to score them."
    )
    lora_rank: int = Field(0, ge=0, description="Train a LoRA adapter of this rank (0: full fine-tuning).")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling numerator.")
    mixed_precision: MixedPrecision = Field("auto", description=MIXED_PRECISION_HELP)
    checkpoint_every: int = Field(50, ge=1, description="Write a checkpoint every N steps (and at the end).")
    keep_checkpoints: int = Field(
        2,
        ge=1,
        description="Checkpoints kept on disk while the run goes on; older ones are deleted (and all of them once "
        "it succeeds, unless policy train's --keep-checkpoints keeps the last).",
    )
    sample_every: int = Field(10, ge=1, description="Log a table of sample completions every N steps.")
    max_loss: float = Field(1e4, gt=0.0, description="A loss above this (or not finite) stops the run.")
    reward_batch_size: int = Field(32, ge=1, description="Texts per forward pass of a reward model.")
    tensorboard: bool = Field(True, description="Write TensorBoard logs beside the metrics JSONL.")
    time_limit_minutes: float | None = Field(
        None, gt=0.0, description="Stop after the step that passes this many minutes (then save as usual)."
    )
    kl_budget: float | None = Field(
        None,
        gt=0.0,
        description="Stop after the step at which the mean KL to the reference (nats per completion) over the "
        "last kl_budget_window steps passes this (then save as usual).",
    )
    kl_budget_window: int = Field(5, ge=1, description="Steps averaged for the kl_budget check.")
    micro_batch_size: int = Field(
        4,
        ge=1,
        description="Completions per forward and backward pass of the policy update (of each minibatch, for "
        "PPO), and per forward pass of the sampling-time log-probs; the update's gradients are summed into "
        "one optimizer step, so a smaller value lowers peak memory without changing the update. At or above "
        "the batch size the whole batch goes at once. On the default model, 4 completions of 64 tokens "
        "(the demo's) peaked 0.9 GiB lower than 8 and took as long on a CPU without bf16 units; on one with "
        "AMX, in bf16 with LoRA, 8 made the update 0.78 of 4's time for 0.5 GiB more; on one with AVX-512 "
        "bf16 it took as long as 4 for 0.5 GiB more.",
    )

    @property
    def completions_per_step(self) -> int:
        return self.prompts_per_step * self.completions_per_prompt


class PPOConfig(OnlineConfig):
    """PPO with a value head, GAE, per-token KL penalty in the reward and an adaptive KL controller."""

    completions_per_prompt: int = Field(1, ge=1, description="Completions sampled per prompt.")
    gamma: float = Field(1.0, ge=0.0, le=1.0, description="Discount; 1 for language (the episode is short).")
    no_eos_penalty: float | None = Field(
        -1.0, description="Reward given instead of the score to completions that never end (the EOS trick)."
    )
    lam: float = Field(0.95, ge=0.0, le=1.0, description="GAE lambda.")
    ppo_epochs: int = Field(4, ge=1, description="Passes over each rollout batch.")
    minibatches: int = Field(2, ge=1, description="Minibatches per pass (each one optimizer step).")
    clip_range: float = Field(0.2, gt=0.0, description="Policy ratio clip epsilon.")
    value_clip_range: float = Field(0.2, gt=0.0, description="Value clip around the rollout's values.")
    vf_coef: float = Field(0.1, ge=0.0, description="Weight of the value loss.")
    value_lr_scale: float = Field(
        1.0,
        gt=0.0,
        description="The value head's learning rate is this times learning_rate: a head that starts from zero "
        "needs far larger steps than the fine-tuned network under it.",
    )
    ent_coef: float = Field(0.0, ge=0.0, description="Weight of the entropy bonus.")
    whiten_rewards: bool = Field(True, description="Whiten per-token rewards (no mean shift) before GAE.")
    adaptive_kl: bool = Field(True, description="Adapt the KL coefficient towards kl_target (else fixed kl_coef).")
    kl_target: float = Field(6.0, gt=0.0, description="Target sequence KL in nats for the adaptive controller.")
    kl_horizon: int = Field(10000, ge=1, description="Adaptive controller horizon, in completions.")
    value_model: str | None = Field(
        None,
        description="Initialise the value head from this reward-model folder's score head (same hidden size).",
    )

    @model_validator(mode="after")
    def _check(self) -> PPOConfig:
        if self.completions_per_step % self.minibatches:
            raise ValueError(
                f"prompts_per_step x completions_per_prompt ({self.completions_per_step}) must be divisible by "
                f"minibatches ({self.minibatches}); change one of them"
            )
        return self


class GRPOConfig(OnlineConfig):
    """GRPO: group-normalized advantages, no critic; the KL to the reference is a loss term (k3)."""

    completions_per_prompt: int = Field(4, ge=2, description="Completions per prompt (the group); at least 2.")
    kl_coef: float = Field(0.04, ge=0.0, description="Weight of the KL loss term; 0 skips the reference model.")
    kl_estimator: Literal["k1", "k2", "k3"] = Field("k3", description="Per-token KL estimator: k1, k2 or k3.")
    clip_range: float = Field(0.2, gt=0.0, description="Policy ratio clip epsilon.")
    epochs: int = Field(1, ge=1, description="Optimizer passes over each rollout batch (GRPO's mu).")
    scale_rewards: bool = Field(True, description="Divide by the group's std (GRPO); off with Dr. GRPO.")
    loss_aggregation: Literal["sequence_mean", "token_mean", "constant"] = Field(
        "sequence_mean",
        description="sequence_mean (GRPO), token_mean, or constant (Dr. GRPO: sum / (batch x max_new_tokens)).",
    )
    variant: Literal["grpo", "dr_grpo"] = Field(
        "grpo", description="grpo, or dr_grpo (no std scaling, constant-length loss normalization)."
    )

    @model_validator(mode="after")
    def _apply_variant(self) -> GRPOConfig:
        if self.variant == "dr_grpo":
            # Set through __dict__: validate_assignment would re-run this validator.
            self.__dict__["scale_rewards"] = False
            self.__dict__["loss_aggregation"] = "constant"
        return self


class RLOOConfig(OnlineConfig):
    """RLOO: REINFORCE with the leave-one-out baseline; the sequence KL is subtracted from the reward."""

    completions_per_prompt: int = Field(4, ge=2, description="Completions per prompt; at least 2 for the baseline.")
    clip_range: float = Field(0.2, gt=0.0, description="Policy ratio clip epsilon.")
    epochs: int = Field(1, ge=1, description="Optimizer passes over each rollout batch.")
    normalize_advantages: bool = Field(False, description="Whiten the advantages over the batch.")


class OfflineConfig(_Config):
    """What the algorithms that learn from fixed data (DPO, SFT) share: data order, optimizer, bookkeeping."""

    output_dir: Path = Field(Path("policy-run"), description="Folder for checkpoints, logs and the final policy.")
    seed: int = Field(0, description="Random seed for the data order.")
    epochs: int = Field(1, ge=1, description="Passes over the data.")
    steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (default: all epochs).")
    batch_size: int = Field(8, ge=1, description="Examples per optimizer step on each process.")
    max_length: int = Field(512, ge=2, description="Longest prompt + response in tokens; prompts are cut first.")
    learning_rate: float = Field(5e-7, gt=0.0, description="AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    adam_eps: float = Field(1e-8, gt=0.0, description="AdamW epsilon.")
    lr_schedule: Literal["constant", "linear", "cosine"] = Field("linear", description="Schedule after warm-up.")
    warmup_steps: int = Field(0, ge=0, description="Optimizer steps of linear warm-up.")
    max_grad_norm: float = Field(1.0, gt=0.0, description="Clip the gradient's global norm to this.")
    lora_rank: int = Field(0, ge=0, description="Train a LoRA adapter of this rank (0: full fine-tuning).")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling numerator.")
    mixed_precision: MixedPrecision = Field("auto", description=MIXED_PRECISION_HELP)
    checkpoint_every: int = Field(50, ge=1, description="Write a checkpoint every N steps (and at the end).")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept on disk.")
    max_loss: float = Field(1e4, gt=0.0, description="A loss above this (or not finite) stops the run.")
    tensorboard: bool = Field(True, description="Write TensorBoard logs beside the metrics JSONL.")


class DPOConfig(OfflineConfig):
    """DPO (or IPO) from preference pairs, offline; the reference is the frozen starting policy."""

    batch_size: int = Field(8, ge=1, description="Pairs per optimizer step on each process.")
    beta: float = Field(0.1, gt=0.0, description="Strength of the implicit KL constraint.")
    loss: Literal["sigmoid", "ipo"] = Field("sigmoid", description="sigmoid (DPO) or ipo.")
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5, description="Assumed label noise (cDPO); sigmoid only.")

    @model_validator(mode="after")
    def _check(self) -> DPOConfig:
        if self.loss == "ipo" and self.label_smoothing:
            raise ValueError("label_smoothing applies to the sigmoid loss only; set it to 0 with loss='ipo'")
        return self


class SFTConfig(OfflineConfig):
    """Supervised fine-tuning on demonstrations: the mean log-likelihood of each response's tokens."""

    learning_rate: float = Field(1e-5, gt=0.0, description="AdamW learning rate.")


AnyConfig = PPOConfig | GRPOConfig | RLOOConfig | DPOConfig
CONFIGS: dict[str, type[AnyConfig]] = {"ppo": PPOConfig, "grpo": GRPOConfig, "rloo": RLOOConfig, "dpo": DPOConfig}


def build_config(algorithm: str, values: dict[str, Any]) -> AnyConfig:
    """The algorithm's config from plain values, or an ApprenticeError naming the field and the fix."""
    if algorithm not in CONFIGS:
        raise ApprenticeError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(CONFIGS)}")
    try:
        return CONFIGS[algorithm](**values)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        prefix = f"{algorithm} option {where}: " if where else f"{algorithm} options: "
        raise ApprenticeError(prefix + message) from None
