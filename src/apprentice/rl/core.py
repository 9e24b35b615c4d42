"""The tensor maths of policy optimization, as small pure functions with unit tests.

Shapes: `(B, T)` is a batch of B completions of T tokens (right-padded after the prompt), with a
`mask` of the same shape that is 1 on real completion tokens and 0 on padding. Sequence-level
quantities are `(B,)`; group quantities reshape `(B,)` to `(B / G, G)` with the G completions of a
prompt next to each other.

We write these ourselves rather than import TRL's: TRL keeps them inside its trainers (and deleted
PPO in 2026), so they cannot be imported as a stable, tested library; each one here is a few lines
checked against hand-computed numbers in tests/test_rl_core.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

KLEstimator = Literal["k1", "k2", "k3"]


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probability of each chosen token, `(B, T, V), (B, T) -> (B, T)`.

    The logits are divided by the sampling temperature first: the tokens were sampled from the
    tempered distribution, so that is the distribution whose ratios and KL we must measure
    (without it the measured KL rises far too fast; Huang et al., "N implementation details").
    """
    if temperature != 1.0:
        logits = logits / temperature
    # log_softmax in float32: bfloat16 logits lose the small differences that ratios depend on.
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return torch.gather(logprobs, dim=-1, index=tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of each position's (tempered) next-token distribution, `(B, T, V) -> (B, T)`."""
    if temperature != 1.0:
        logits = logits / temperature
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return -(logprobs.exp() * logprobs).sum(dim=-1)


def masked_sum(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    masked = values * mask
    return masked.sum() if dim is None else masked.sum(dim=dim)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean over the positions where `mask` is 1 (all of them, or along `dim`); 0 where none are."""
    total = mask.sum() if dim is None else mask.sum(dim=dim)
    return masked_sum(values, mask, dim) / total.clamp(min=1)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance over the masked positions; `unbiased` applies Bessel's correction n / (n - 1)."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        count = mask.sum()
        if count < 2:
            raise ValueError("the unbiased variance needs at least two unmasked values")
        variance = variance * count / (count - 1)
    return variance


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Scale the masked values to unit variance, and to zero mean when `shift_mean`.

    PPO whitens rewards without the mean shift (adding a constant to every reward would change
    what GAE's bootstrapping sees) and advantages with it.
    """
    mean = masked_mean(values, mask)
    variance = masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(variance + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: KLEstimator = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from samples of the policy (Schulman's k1, k2, k3).

    With log r = ref_logprob - logprob: k1 = -log r (unbiased, can be negative), k2 = (log r)^2 / 2
    (low variance, biased), k3 = (r - 1) - log r (unbiased, never negative).
    """
    log_ratio = ref_logprobs - logprobs
    if kind == "k1":
        return -log_ratio
    if kind == "k2":
        return 0.5 * log_ratio**2
    if kind == "k3":
        return torch.exp(log_ratio) - 1 - log_ratio
    raise ValueError(f"unknown KL estimator {kind!r}; use k1, k2 or k3")


def generalized_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE (Schulman et al. 2016) over right-padded completions: `(B, T)` each -> advantages, returns.

    delta_t = r_t + gamma * V_{t+1} - V_t, A_t = delta_t + gamma * lam * A_{t+1}; the value after the
    last real token is 0 (the episode ends), so padding never leaks into the estimate.
    """
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantage = delta + gamma * lam * next_advantage
        # On padding keep carrying nothing: the step after the end contributes no value or advantage.
        advantages[:, t] = advantage * mask[:, t]
        next_advantage = advantages[:, t]
        next_value = values[:, t]
    returns = advantages + values
    return advantages, returns


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_range: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate per token (to minimize), and whether each token was clipped.

    loss_t = max(-A_t * ratio_t, -A_t * clip(ratio_t, 1 - eps, 1 + eps)), ratio = pi / pi_old.
    `advantages` may be `(B, T)` or `(B, 1)` (one advantage per sequence, as in GRPO and RLOO).
    """
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return torch.maximum(unclipped, clipped), (clipped > unclipped).float()


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip_range: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped value loss, 0.5 * mean(max((V - R)^2, (V_clipped - R)^2)), and the clipped fraction."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    unclipped_loss = (values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_loss, clipped_loss), mask)
    return loss, masked_mean((clipped_loss > unclipped_loss).float(), mask)


LossAggregation = Literal["sequence_mean", "token_mean", "constant"]


def aggregate_token_loss(
    token_loss: torch.Tensor, mask: torch.Tensor, kind: LossAggregation, max_tokens: int
) -> torch.Tensor:
    """Reduce `(B, T)` per-token losses to one number.

    sequence_mean: mean over each sequence's tokens, then over sequences (GRPO as published; long
    answers get less weight per token). token_mean: mean over all tokens of the batch. constant: sum
    divided by B * max_tokens (Dr. GRPO), so no per-sequence length normalization biases length.
    """
    return aggregate_chunk_token_loss(
        token_loss, mask, kind, max_tokens, batch_rows=token_loss.shape[0], batch_tokens=mask.sum()
    )


def aggregate_chunk_token_loss(
    token_loss: torch.Tensor,
    mask: torch.Tensor,
    kind: LossAggregation,
    max_tokens: int,
    *,
    batch_rows: int,
    batch_tokens: torch.Tensor | float,
) -> torch.Tensor:
    """Some rows' share of `aggregate_token_loss` over a whole batch of `batch_rows` rows and `batch_tokens` mask.

    Each kind's normalizer is the whole batch's, so the shares of the chunks of a batch add up to the
    batch's aggregate and their gradients to its gradient (micro-batching then changes memory, not the
    update). sequence_mean: the chunk's per-row masked means summed, over batch_rows. token_mean: the
    chunk's masked sum over batch_tokens. constant: the chunk's masked sum over batch_rows * max_tokens.
    """
    if kind == "sequence_mean":
        return masked_mean(token_loss, mask, dim=1).sum() / batch_rows
    if kind == "token_mean":
        # Clamped as masked_mean clamps: a batch without tokens has loss 0, not NaN.
        return masked_sum(token_loss, mask) / torch.as_tensor(batch_tokens, dtype=token_loss.dtype).clamp(min=1)
    if kind == "constant":
        return masked_sum(token_loss, mask) / (batch_rows * max_tokens)
    raise ValueError(f"unknown loss aggregation {kind!r}")


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """GRPO: each reward minus its group's mean, divided by the group's (unbiased) std when `scale`.

    `scale=False` is Dr. GRPO, which drops the std division (it over-weights near-unanimous groups).
    """
    grouped = rewards.view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


def leave_one_out_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO: each reward minus the mean reward of the other k - 1 completions of its prompt."""
    if group_size < 2:
        raise ValueError("the leave-one-out baseline needs at least 2 completions per prompt")
    grouped = rewards.view(-1, group_size)
    others_mean = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)
    return (grouped - others_mean).reshape(-1)


def dpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    kind: Literal["sigmoid", "ipo"] = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO loss and the implicit rewards of chosen and rejected, all `(B,)`.

    h = (log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)).
    sigmoid (Rafailov et al. 2023): -log sigmoid(beta h), with label smoothing eps (cDPO):
    -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h).
    ipo (Azar et al. 2023): (h - 1 / (2 beta))^2; pass length-averaged log-probs, as the paper does.
    """
    chosen_margin = chosen_logps - ref_chosen_logps
    rejected_margin = rejected_logps - ref_rejected_logps
    h = chosen_margin - rejected_margin
    if kind == "sigmoid":
        loss = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    elif kind == "ipo":
        loss = (h - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"unknown DPO loss {kind!r}; use sigmoid or ipo")
    return loss, beta * chosen_margin.detach(), beta * rejected_margin.detach()


def explained_variance(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(target - predicted) / Var(target) over the masked positions: 1 is perfect, <= 0 useless."""
    target_variance = masked_var(target, mask, unbiased=False)
    if target_variance <= 0:
        return float("nan")
    return float(1 - masked_var(target - predicted, mask, unbiased=False) / target_variance)


def penalize_unfinished(scores: torch.Tensor, finished: torch.Tensor, penalty: float | None) -> torch.Tensor:
    """The "EOS trick": a completion that never ended gets a fixed `penalty` instead of its score."""
    if penalty is None:
        return scores
    return torch.where(finished, scores, torch.full_like(scores, penalty))


class AdaptiveKLController:
    """OpenAI's adaptive KL coefficient (Ziegler et al. 2019): nudge beta so the KL tracks a target.

    e = clip(KL / target - 1, -0.2, 0.2); beta <- beta * (1 + e * n / horizon), n completions per update.
    """

    def __init__(self, value: float, target: float, horizon: int) -> None:
        self.value = value
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, completions: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * completions / self.horizon

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = state["value"]


class FixedKLController(AdaptiveKLController):
    """A constant KL coefficient, with the same interface as the adaptive one."""

    def __init__(self, value: float) -> None:
        super().__init__(value, target=1.0, horizon=1)

    def update(self, current_kl: float, completions: int) -> None:
        return None


def over_kl_budget(kl_history: Sequence[float], budget: float, window: int) -> bool:
    """Whether the mean of the last `window` per-step KLs (all of them while fewer) passes `budget`.

    Past some KL to the reference a learned reward stops tracking the true one (Gao, Schulman and Hilton
    2022), so a run may be given a KL budget; averaging a few steps keeps one noisy rollout from ending it.
    """
    recent = list(kl_history)[-window:]
    return bool(recent) and sum(recent) / len(recent) > budget
