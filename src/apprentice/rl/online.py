"""The first half of every online step (PPO, GRPO, RLOO): sample, score, and log-probs for the update."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from apprentice.rl.config import OnlineConfig
from apprentice.rl.core import kl_estimate, masked_mean, masked_sum, penalize_unfinished
from apprentice.rl.rewards import RewardSource, prompt_text
from apprentice.rl.rollout import Rollout, forward_completions, reference_logprobs, sample_rollout
from apprentice.rl.session import TrainingRun
from apprentice.store.records import Message


@dataclass
class ScoredRollout:
    rollout: Rollout
    scores: torch.Tensor  # (B,) what the reward source said
    rewards: torch.Tensor  # (B,) after the no-EOS penalty
    old_logprobs: torch.Tensor | None  # (B, T) under the sampling policy, when the update needs them
    ref_logprobs: torch.Tensor | None  # (B, T) under the frozen reference, when the KL is used
    old_values: torch.Tensor | None = None  # (B, T) value-head estimates at sampling time (PPO)


def collect_rollout(
    run: TrainingRun,
    config: OnlineConfig,
    prompts: Sequence[list[Message]],
    reward: RewardSource,
    *,
    need_old_logprobs: bool,
    need_reference: bool,
) -> ScoredRollout:
    batch = [prompts[index] for index in run.batch_indices(len(prompts), config.prompts_per_step, run.step)]
    with run.phase("generate"):
        rollout = sample_rollout(
            run.policy,
            run.tokenizer,
            batch,
            completions_per_prompt=config.completions_per_prompt,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            top_k=config.top_k,
            max_prompt_tokens=config.max_prompt_tokens,
        )
    with run.phase("score"):
        scores = reward(rollout.prompts, rollout.completion_texts).to(run.device)
        rewards = penalize_unfinished(scores, rollout.finished, config.no_eos_penalty)
    old_logprobs = old_values = ref_logprobs = None
    with run.phase("logprobs"), torch.no_grad():
        if need_old_logprobs:
            old = forward_completions(run.model, rollout, config.temperature)
            old_logprobs, old_values = old.logprobs, old.values
        if need_reference:
            ref_logprobs = reference_logprobs(run.reference, run.policy, rollout, config.temperature)
    return ScoredRollout(rollout, scores, rewards, old_logprobs, ref_logprobs, old_values)


def rollout_metrics(batch: ScoredRollout, seconds: float) -> dict[str, float]:
    mask = batch.rollout.completion_mask
    tokens = float(mask.sum())
    metrics = {
        "reward": float(batch.scores.mean()),
        "reward_std": float(batch.scores.std()) if batch.scores.numel() > 1 else 0.0,
        "reward_after_penalty": float(batch.rewards.mean()),
        "length": float(batch.rollout.completion_lengths.mean()),
        "finished": float(batch.rollout.finished.float().mean()),
        "tokens_per_second": tokens / seconds if seconds > 0 else 0.0,
    }
    if batch.ref_logprobs is not None and batch.old_logprobs is not None:
        # Sequence KL in nats (k1 summed over tokens): what the "KL < N nats" budgets refer to.
        kl = kl_estimate(batch.old_logprobs, batch.ref_logprobs, "k1")
        metrics["kl"] = float(masked_sum(kl, mask, dim=1).mean())
        metrics["kl_per_token"] = float(masked_mean(kl, mask))
    return metrics


def sample_table(batch: ScoredRollout, rows: int = 4) -> tuple[list[str], list[str], list[float]]:
    count = min(rows, len(batch.rollout.completion_texts))
    return (
        [prompt_text(messages) for messages in batch.rollout.prompts[:count]],
        batch.rollout.completion_texts[:count],
        batch.scores[:count].tolist(),
    )
