"""RLOO (Ahmadian et al. 2024, "Back to Basics"): REINFORCE with a leave-one-out baseline.

Per step: sample k completions per prompt; each completion's reward is its score minus beta times
its sequence KL to the frozen reference (k1 summed over tokens); its advantage is that reward minus
the mean reward of the other k - 1 completions of the same prompt, an unbiased baseline with no
critic. The update is the clipped surrogate over the completion's tokens (with one epoch per
rollout the ratio is 1, which is REINFORCE).
"""

from __future__ import annotations

from collections.abc import Sequence

from apprentice.rl.config import RLOOConfig
from apprentice.rl.core import kl_estimate, leave_one_out_advantages, masked_sum
from apprentice.rl.online import clipped_surrogate_update, collect_rollout, rollout_metrics, sample_table
from apprentice.rl.rewards import RewardSource, move_reward_models
from apprentice.rl.session import TrainingRun, TrainResult
from apprentice.store.records import Message


def train_rloo(
    config: RLOOConfig,
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
        batch = collect_rollout(run, config, prompts, reward, need_old_logprobs=True, need_reference=use_reference)
        assert batch.old_logprobs is not None
        mask = batch.rollout.completion_mask  # (B, T)
        rewards = batch.rewards  # (B,)
        if batch.ref_logprobs is not None:
            sequence_kl = masked_sum(kl_estimate(batch.old_logprobs, batch.ref_logprobs, config.kl_estimator), mask, 1)
            rewards = rewards - config.kl_coef * sequence_kl
        advantages = leave_one_out_advantages(rewards, config.completions_per_prompt)  # (B,)
        if config.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        with run.phase("train"):
            for _epoch in range(config.epochs):
                # The sequence KL is already in the reward: no KL term in the loss.
                update = clipped_surrogate_update(
                    run,
                    batch,
                    advantages,
                    temperature=config.temperature,
                    clip_range=config.clip_range,
                    aggregation="sequence_mean",
                    max_tokens=config.max_new_tokens,
                    micro_batch_size=config.micro_batch_size,
                )
        seconds = sum(run.timings.values())
        step_metrics = rollout_metrics(batch, seconds) | update | {"reward_with_kl": float(rewards.mean())}
        metrics = run.end_step(step_metrics, samples=sample_table(batch), sample_every=config.sample_every)
    return TrainResult(run.finish(), metrics, run)
