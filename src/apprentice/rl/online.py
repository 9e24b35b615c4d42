"""The first half of every online step (PPO, GRPO, RLOO): sample, score, and log-probs for the update."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from apprentice.rl.config import OnlineConfig
from apprentice.rl.core import (
    KLEstimator,
    LossAggregation,
    aggregate_chunk_token_loss,
    clipped_policy_loss,
    kl_estimate,
    masked_mean,
    masked_sum,
    penalize_unfinished,
)
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
            bf16=run.bf16,
        )
    with run.phase("score"):
        scores = reward(rollout.prompts, rollout.completion_texts).to(run.device)
        rewards = penalize_unfinished(scores, rollout.finished, config.no_eos_penalty)
    old_logprobs = old_values = ref_logprobs = None
    # The same micro-batches as the update, so these passes' logits are never the peak of memory either.
    parts = [rollout.select(rows) for rows in micro_batches(len(rollout.prompts), config.micro_batch_size)]
    with run.phase("logprobs"), torch.no_grad(), run.autocast():
        if need_old_logprobs:
            old = [forward_completions(run.model, part, config.temperature) for part in parts]
            old_logprobs = torch.cat([result.logprobs for result in old])
            if old[0].values is not None:
                old_values = torch.cat([result.values for result in old if result.values is not None])
        if need_reference:
            ref_logprobs = torch.cat(
                [reference_logprobs(run.reference, run.policy, part, config.temperature) for part in parts]
            )
    return ScoredRollout(rollout, scores, rewards, old_logprobs, ref_logprobs, old_values)


def micro_batches(rows: int, size: int) -> list[list[int]]:
    """Consecutive row indices in runs of at most `size` (the last run takes the remainder)."""
    return [list(range(start, min(start + size, rows))) for start in range(0, rows, size)]


def clipped_surrogate_update(
    run: TrainingRun,
    batch: ScoredRollout,
    advantages: torch.Tensor,
    *,
    temperature: float,
    clip_range: float,
    aggregation: LossAggregation,
    max_tokens: int,
    micro_batch_size: int,
    kl_coef: float = 0.0,
    kl_estimator: KLEstimator = "k3",
) -> dict[str, float]:
    """One optimizer step of the clipped surrogate with one advantage per completion (GRPO, RLOO).

    The batch goes through the model `micro_batch_size` completions at a time, each micro-batch's loss
    normalized by the whole batch (aggregate_chunk_token_loss) and backpropagated at once, so only one
    micro-batch's activations and logits are alive; the summed gradient is the whole batch's, applied in
    one step. `kl_coef` > 0 adds the per-token KL to the reference to the loss (GRPO). Without old
    log-probs the sampling policy is the current one (one epoch): the ratio is 1, and the current
    log-probs become the batch's old ones. Returns the whole batch's loss, clip fraction, entropy and
    gradient norm.
    """
    mask = batch.rollout.completion_mask  # (B, T)
    batch_rows, batch_tokens = mask.shape[0], mask.sum()
    chunks = micro_batches(batch_rows, micro_batch_size)
    # Whole-batch metrics as sums over micro-batches: the loss shares add up; masked means are token sums.
    loss_sum = clipped_sum = entropy_sum = torch.zeros((), device=mask.device)
    sampled: list[torch.Tensor] = []
    for number, rows in enumerate(chunks):
        with run.micro_batch(last=number == len(chunks) - 1):
            chunk_mask = mask[rows]
            with run.autocast():
                current = forward_completions(run.model, batch.rollout.select(rows), temperature, with_entropy=True)
            assert current.entropy is not None
            logprobs = current.logprobs
            old_logprobs = logprobs.detach() if batch.old_logprobs is None else batch.old_logprobs[rows]
            token_loss, clipped = clipped_policy_loss(logprobs, old_logprobs, advantages[rows].unsqueeze(1), clip_range)
            if kl_coef > 0 and batch.ref_logprobs is not None:
                token_loss = token_loss + kl_coef * kl_estimate(logprobs, batch.ref_logprobs[rows], kl_estimator)
            loss = aggregate_chunk_token_loss(
                token_loss, chunk_mask, aggregation, max_tokens, batch_rows=batch_rows, batch_tokens=batch_tokens
            )
            run.backward(loss)
        loss_sum = loss_sum + loss.detach()
        clipped_sum = clipped_sum + masked_sum(clipped, chunk_mask)
        entropy_sum = entropy_sum + masked_sum(current.entropy, chunk_mask)
        if batch.old_logprobs is None:
            sampled.append(logprobs.detach())
    grad_norm = run.step_optimizer()
    if batch.old_logprobs is None:
        batch.old_logprobs = torch.cat(sampled)
    tokens = batch_tokens.clamp(min=1)
    return {
        "loss": float(loss_sum),
        "clip_fraction": float(clipped_sum / tokens),
        "entropy": float(entropy_sum / tokens),
        "grad_norm": grad_norm,
    }


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
