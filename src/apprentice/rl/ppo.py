"""PPO for language models, as InstructGPT trained it, with the details that make it work.

Each detail is named where it happens (Huang et al., "The N implementation details of RLHF with PPO"):
- a scalar value head on the policy's last hidden state, initialized to zero (or from a reward
  model's score head, `value_model`), trained with a clipped value loss;
- logits divided by the sampling temperature before any log-prob (rollout.forward_completions);
- dropout off (session.disable_dropout) and the reference model frozen;
- per-token reward = -beta * KL(policy || reference) at every token, plus the score on the last
  token; a completion that never reached EOS gets `no_eos_penalty` instead of its score;
- beta from an adaptive KL controller (or fixed);
- rewards whitened without the mean shift, advantages from GAE (gamma 1, lambda 0.95), then whitened;
- several epochs over shuffled minibatches, each a clipped-surrogate step with gradient clipping
  and a learning-rate schedule (a minibatch's gradient summed over micro-batches, to bound memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from apprentice.errors import ApprenticeError
from apprentice.rl.config import PPOConfig
from apprentice.rl.core import (
    AdaptiveKLController,
    FixedKLController,
    clipped_policy_loss,
    clipped_value_loss,
    explained_variance,
    generalized_advantages,
    kl_estimate,
    masked_mean,
    masked_whiten,
)
from apprentice.rl.online import collect_rollout, micro_batches, rollout_metrics, sample_table
from apprentice.rl.rewards import RewardSource, move_reward_models
from apprentice.rl.rollout import forward_completions
from apprentice.rl.session import TrainingRun, TrainResult
from apprentice.store.records import Message


class PolicyWithValueHead(nn.Module):
    """The causal LM plus a linear value head on its last hidden state; one module, so DDP syncs both."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.policy = policy
        hidden_size = policy.config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden_size, 1)
        # Zero init: the first value estimates are 0 and the first advantages are the whitened rewards.
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, *, logits_to_keep: int = 0, **kwargs: Any) -> Any:
        output = self.policy(**kwargs, logits_to_keep=logits_to_keep, output_hidden_states=True)
        hidden = output.hidden_states[-1]
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        output["values"] = self.value_head(hidden).squeeze(-1).float()  # (B, kept positions)
        output["hidden_states"] = None  # all layers' states are not needed past this point
        return output

    def init_value_head_from(self, folder: str) -> None:
        """Copy the score head of a reward model with the same hidden size (InstructGPT's critic init)."""
        from transformers import AutoModelForSequenceClassification

        reward_model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
        heads = [
            module
            for name, module in reward_model.named_modules()
            if isinstance(module, nn.Linear)
            and module.out_features == 1
            and name.split(".")[-1] in ("score", "classifier")
        ]
        if not heads or heads[-1].in_features != self.value_head.in_features:
            raise ApprenticeError(
                f"value_model {folder}: no score head of hidden size {self.value_head.in_features}; "
                "use a reward model built on the policy's architecture, or leave value_model unset"
            )
        with torch.no_grad():
            self.value_head.weight.copy_(heads[-1].weight)
            if heads[-1].bias is not None:
                self.value_head.bias.copy_(heads[-1].bias)


def last_token_rewards(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`(B,)` scores placed on each completion's last real token, `(B, T)`."""
    last = (mask.sum(dim=1).long() - 1).clamp(min=0)
    placed = torch.zeros_like(mask)
    placed[torch.arange(mask.shape[0], device=mask.device), last] = scores.to(mask.dtype)
    return placed


def train_ppo(
    config: PPOConfig,
    policy_name: str,
    prompts: Sequence[list[Message]],
    reward: RewardSource,
    *,
    resume: bool = False,
    show_progress: bool = True,
) -> TrainResult:
    def wrap(policy: Any) -> PolicyWithValueHead:
        model = PolicyWithValueHead(policy)
        if config.value_model:
            model.init_value_head_from(config.value_model)
        return model

    run = TrainingRun(
        config,
        policy_name,
        total_steps=config.steps,
        updates_per_step=config.ppo_epochs * config.minibatches,
        need_reference=True,
        wrap_policy=wrap,
        resume=resume,
        show_progress=show_progress,
    )
    move_reward_models(reward, run.device)
    kl_controller = (
        AdaptiveKLController(config.kl_coef, config.kl_target, config.kl_horizon)
        if config.adaptive_kl
        else FixedKLController(config.kl_coef)
    )
    if "kl_controller" in run.training_state:
        kl_controller.load_state_dict(run.training_state["kl_controller"])
    metrics: dict[str, float] = {}
    for _step in run.steps():
        batch = collect_rollout(run, config, prompts, reward, need_old_logprobs=True, need_reference=True)
        assert batch.old_logprobs is not None and batch.ref_logprobs is not None and batch.old_values is not None
        b_mask = batch.rollout.completion_mask  # (B, T)
        b_old_logprobs, b_old_values = batch.old_logprobs, batch.old_values * b_mask

        # Rewards: the KL penalty on every token, the score on the last one.
        b_kl = kl_estimate(b_old_logprobs, batch.ref_logprobs, config.kl_estimator)  # (B, T)
        b_rewards = (-kl_controller.value * b_kl + last_token_rewards(batch.rewards, b_mask)) * b_mask
        if config.whiten_rewards:
            b_rewards = masked_whiten(b_rewards, b_mask, shift_mean=False)

        # Advantages: GAE over the value head's estimates, then whitened.
        b_advantages, b_returns = generalized_advantages(b_rewards, b_old_values, b_mask, config.gamma, config.lam)
        b_advantages = masked_whiten(b_advantages, b_mask)

        # Several epochs over shuffled minibatches, each one optimizer step. A minibatch goes through the model
        # micro_batch_size completions at a time: each micro-batch's token means are scaled by its share of the
        # minibatch's tokens, so the shares add up to the minibatch's loss (and gradient) and to its statistics.
        size = b_mask.shape[0] // config.minibatches
        stats: dict[str, list[float]] = {"pg_loss": [], "vf_loss": [], "clip_fraction": [], "vf_clip_fraction": []}
        stats |= {"entropy": [], "loss": [], "grad_norm": [], "approx_kl": []}
        with run.phase("train"):
            for _epoch in range(config.ppo_epochs):
                order = torch.randperm(b_mask.shape[0])
                for start in range(0, b_mask.shape[0], size):
                    minibatch = order[start : start + size].to(b_mask.device)
                    minibatch_tokens = b_mask[minibatch].sum().clamp(min=1)
                    chunks = micro_batches(len(minibatch), config.micro_batch_size)
                    sums = {key: torch.zeros((), device=b_mask.device) for key in stats if key != "grad_norm"}
                    for number, positions in enumerate(chunks):
                        with run.micro_batch(last=number == len(chunks) - 1):
                            mb = minibatch[positions]
                            mb_mask = b_mask[mb]
                            share = mb_mask.sum() / minibatch_tokens
                            with run.autocast():
                                current = forward_completions(
                                    run.model,
                                    batch.rollout.select(mb.cpu()),
                                    config.temperature,
                                    with_entropy=True,
                                    entropy_gradient=config.ent_coef > 0,
                                )
                            assert current.values is not None and current.entropy is not None
                            pg_token_loss, clipped = clipped_policy_loss(
                                current.logprobs, b_old_logprobs[mb], b_advantages[mb], config.clip_range
                            )
                            pg_loss = masked_mean(pg_token_loss, mb_mask) * share
                            vf_loss, vf_clipped = clipped_value_loss(
                                current.values, b_old_values[mb], b_returns[mb], mb_mask, config.value_clip_range
                            )
                            vf_loss = vf_loss * share
                            entropy = masked_mean(current.entropy, mb_mask) * share
                            loss = pg_loss - config.ent_coef * entropy + config.vf_coef * vf_loss
                            run.backward(loss)
                        log_ratio = (current.logprobs.detach() - b_old_logprobs[mb]) * mb_mask
                        sums["pg_loss"] += pg_loss.detach()
                        sums["vf_loss"] += vf_loss.detach()
                        sums["clip_fraction"] += masked_mean(clipped, mb_mask) * share
                        sums["vf_clip_fraction"] += vf_clipped * share
                        sums["entropy"] += entropy.detach()
                        sums["loss"] += loss.detach()
                        sums["approx_kl"] += masked_mean(0.5 * log_ratio**2, mb_mask) * share
                    stats["grad_norm"].append(run.step_optimizer())
                    for key, value in sums.items():
                        stats[key].append(float(value))

        sequence_kl = float((kl_estimate(b_old_logprobs, batch.ref_logprobs, "k1") * b_mask).sum(dim=1).mean())
        kl_controller.update(
            float(run.accelerator.reduce(torch.tensor([sequence_kl], device=run.device), reduction="mean")),
            b_mask.shape[0] * run.accelerator.num_processes,
        )
        run.training_state["kl_controller"] = kl_controller.state_dict()
        seconds = sum(run.timings.values())
        step_metrics = rollout_metrics(batch, seconds) | {key: sum(v) / len(v) for key, v in stats.items()}
        step_metrics |= {
            "kl_coef": kl_controller.value,
            "explained_variance": explained_variance(b_old_values, b_returns, b_mask),
            "value_mean": float(masked_mean(b_old_values, b_mask)),
        }
        metrics = run.end_step(step_metrics, samples=sample_table(batch), sample_every=config.sample_every)
    return TrainResult(run.finish(), metrics, run)
