"""The reward-model losses, as pure functions of scores: Bradley-Terry, Plackett-Luce, reward centering.

Every loss takes per-example weights (the hook for annotator reliability) and returns the weighted
mean, sum(w * loss) / sum(w), so a weight of 2 counts a judgment twice and the scale of the weights
does not change the learning rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _weighted_mean(losses: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return losses.mean()
    weights = weights.to(losses.dtype)
    return (losses * weights).sum() / weights.sum().clamp_min(torch.finfo(losses.dtype).tiny)


def bradley_terry_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    *,
    margins: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """-[p log sigma(r_c - r_r - m) + (1 - p) log sigma(-(r_c - r_r - m))], weighted mean over pairs.

    `targets` p is the probability that `chosen` wins: 1 for a plain preference, 0.5 for a tie kept
    as a half-win. Label smoothing eps moves every target toward 0.5: p' = p (1 - eps) + (1 - p) eps,
    which bounds the loss of a pair whose label was flipped by a careless annotator.
    The margin m (Llama 2) asks a clearly preferred response to win by more.
    """
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    difference = chosen_rewards - rejected_rewards  # (B,)
    if margins is not None:
        difference = difference - margins.to(difference.dtype)
    target = torch.ones_like(difference) if targets is None else targets.to(difference.dtype)
    target = target * (1.0 - label_smoothing) + (1.0 - target) * label_smoothing
    losses = -(target * F.logsigmoid(difference) + (1.0 - target) * F.logsigmoid(-difference))
    return _weighted_mean(losses, weights)


def plackett_luce_loss(
    scores: torch.Tensor,
    ranks: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Negative log-likelihood of rankings under Plackett-Luce, weighted mean over groups.

    scores, ranks: (G, K); rank 1 is best. A ranking is a sequence of choices: the best of all, then
    the best of the rest, ...: -sum_i [s_i - log sum_{j: rank_j >= rank_i} exp s_j]. Equal ranks
    (ties) share one choice set (Breslow's approximation), so a tie is neither a win nor a loss.
    `mask` (G, K) marks real members when groups of different sizes are padded to K.
    With K = 2 and no ties this is exactly the Bradley-Terry loss.
    """
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    mask = mask.bool()
    # choice_set[g, i, j]: j is still in the running when i is chosen.
    choice_set = (ranks.unsqueeze(1) >= ranks.unsqueeze(2)) & mask.unsqueeze(1) & mask.unsqueeze(2)  # (G, K, K)
    expanded = scores.unsqueeze(1).expand(-1, scores.shape[1], -1)  # (G, K, K): [g, i, j] = s_j
    log_denominator = torch.logsumexp(expanded.masked_fill(~choice_set, float("-inf")), dim=-1)  # (G, K)
    log_choice = (scores - log_denominator).masked_fill(~mask, 0.0)
    return _weighted_mean(-log_choice.sum(dim=-1), weights)


def reward_centering_loss(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, *, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """(r_c + r_r)^2, weighted mean: pulls the rewards toward zero mean (Eisenstein et al. 2023, as in TRL).

    The Bradley-Terry loss only sees differences, so the reward's offset drifts freely; this term
    pins it, which keeps rewards of different runs and ensemble members comparable.
    """
    return _weighted_mean((chosen_rewards + rejected_rewards) ** 2, weights)
