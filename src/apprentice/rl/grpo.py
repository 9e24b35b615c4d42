"""GRPO (Shao et al. 2024, DeepSeekMath), and Dr. GRPO (Liu et al. 2025) by option.

Per step: sample G completions for each prompt, score them, and give every token of a completion the
completion's group-normalized advantage (r - mean of the group) / std of the group. No critic. The
KL to the frozen reference is a loss term (k3 estimator), not part of the reward. The update is
PPO's clipped surrogate; with one epoch per rollout the ratio is 1 and this is plain policy gradient.
Dr. GRPO drops the std division and normalizes the loss by a constant instead of each length.
"""

from __future__ import annotations

from collections.abc import Sequence

from apprentice.rl.config import GRPOConfig
from apprentice.rl.core import group_advantages
from apprentice.rl.online import clipped_surrogate_update, collect_rollout, rollout_metrics, sample_table
from apprentice.rl.rewards import RewardSource, move_reward_models
from apprentice.rl.session import TrainingRun, TrainResult
from apprentice.store.records import Message


def train_grpo(
    config: GRPOConfig,
    policy_name: str,
    prompts: Sequence[list[Message]],
    reward: RewardSource,
    *,
    resume: bool = False,
    show_progress: bool = True,
) -> TrainResult:
    use_reference = config.kl_coef > 0
    run = TrainingRun(
        config,
        policy_name,
        total_steps=config.steps,
        updates_per_step=config.epochs,
        need_reference=use_reference,
        resume=resume,
        show_progress=show_progress,
    )
    move_reward_models(reward, run.device)
    metrics: dict[str, float] = {}
    for _step in run.steps():
        batch = collect_rollout(
            run, config, prompts, reward, need_old_logprobs=config.epochs > 1, need_reference=use_reference
        )
        advantages = group_advantages(batch.rewards, config.completions_per_prompt, scale=config.scale_rewards)  # (B,)
        with run.phase("train"):
            for _epoch in range(config.epochs):
                update = clipped_surrogate_update(
                    run,
                    batch,
                    advantages,
                    temperature=config.temperature,
                    clip_range=config.clip_range,
                    aggregation=config.loss_aggregation,
                    max_tokens=config.max_new_tokens,
                    micro_batch_size=config.micro_batch_size,
                    kl_coef=config.kl_coef,
                    kl_estimator=config.kl_estimator,
                )
        seconds = sum(run.timings.values())
        step_metrics = rollout_metrics(batch, seconds) | update | {"advantage_abs": float(advantages.abs().mean())}
        metrics = run.end_step(step_metrics, samples=sample_table(batch), sample_every=config.sample_every)
    return TrainResult(run.finish(), metrics, run)
