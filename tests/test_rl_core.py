"""The maths of apprentice.rl.core against numbers worked out by hand (the working is in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from apprentice.rl import core


def close(actual: torch.Tensor | float, expected: list[float] | float, tol: float = 1e-5) -> None:
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float32), torch.tensor(expected), atol=tol, rtol=0)


def test_token_logprobs_divides_by_temperature() -> None:
    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # probabilities 1/4, 3/4
    close(core.token_logprobs(logits, torch.tensor([[1]])), [[math.log(0.75)]])
    # At temperature 2 the logits become [0, ln(3)/2]: p(1) = sqrt(3) / (1 + sqrt(3)).
    close(core.token_logprobs(logits, torch.tensor([[1]]), temperature=2.0), [[math.log(3**0.5 / (1 + 3**0.5))]])


def test_entropy() -> None:
    logits = torch.tensor([[[0.0, math.log(3.0)]]])
    close(core.entropy_from_logits(logits), [[-(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]])  # 0.56233


def test_masked_mean_and_var_ignore_padding() -> None:
    values = torch.tensor([[1.0, 3.0], [5.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    close(core.masked_mean(values, mask), 3.0)
    close(core.masked_mean(values, mask, dim=1), [2.0, 5.0])
    close(core.masked_var(values, mask), 4.0)  # ((1-3)^2 + 0 + (5-3)^2) / (3 - 1)
    close(core.masked_var(values, mask, unbiased=False), 8.0 / 3.0)


def test_masked_whiten_with_and_without_mean_shift() -> None:
    values = torch.tensor([1.0, 3.0, 5.0, 7.0])
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])
    # mean 3, unbiased variance 4, std 2: (v - 3) / 2 on the first three, padding stays 0.
    close(core.masked_whiten(values, mask), [-1.0, 0.0, 1.0, 0.0])
    # Without the shift the mean is added back: scaled spread, original centre.
    close(core.masked_whiten(values, mask, shift_mean=False), [2.0, 3.0, 4.0, 0.0])


def test_kl_estimators() -> None:
    logprobs = torch.tensor([math.log(0.5)])
    ref_logprobs = torch.tensor([math.log(0.25)])
    # log r = log(0.25 / 0.5) = -ln 2
    close(core.kl_estimate(logprobs, ref_logprobs, "k1"), [math.log(2)])  # 0.693147
    close(core.kl_estimate(logprobs, ref_logprobs, "k2"), [0.5 * math.log(2) ** 2])  # 0.240227
    close(core.kl_estimate(logprobs, ref_logprobs, "k3"), [0.5 - 1 + math.log(2)])  # 0.193147
    with pytest.raises(ValueError, match="k1, k2 or k3"):
        core.kl_estimate(logprobs, ref_logprobs, "k4")  # type: ignore[arg-type]


def test_gae_by_hand() -> None:
    # gamma 1, lambda 0.5. Row 1, no padding, values [0.5, 0.2, 0.4], reward 1 at the end:
    #   t2: delta = 1 + 0 - 0.4 = 0.6, A = 0.6
    #   t1: delta = 0 + 0.4 - 0.2 = 0.2, A = 0.2 + 0.5 * 0.6 = 0.5
    #   t0: delta = 0 + 0.2 - 0.5 = -0.3, A = -0.3 + 0.5 * 0.5 = -0.05
    # Row 2 ends after two tokens (the 9 is padding and must not be bootstrapped from):
    #   t1: delta = 1 + 0 - 0.2 = 0.8; t0: delta = 0.2 - 0.5 = -0.3, A = -0.3 + 0.5 * 0.8 = 0.1
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.2, 0.4], [0.5, 0.2, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages, returns = core.generalized_advantages(rewards, values, mask, gamma=1.0, lam=0.5)
    close(advantages, [[-0.05, 0.5, 0.6], [0.1, 0.8, 0.0]])
    close(returns, [[0.45, 0.7, 1.0], [0.6, 1.0, 0.0]])


def test_gae_with_discount() -> None:
    # gamma 0.5, lambda 1: A_t is the discounted return minus V_t. Rewards [1, 2], values 0:
    # A1 = 2, A0 = 1 + 0.5 * 2 = 2.
    advantages, _ = core.generalized_advantages(
        torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2), torch.ones(1, 2), gamma=0.5, lam=1.0
    )
    close(advantages, [[2.0, 2.0]])


def test_clipped_policy_loss() -> None:
    # Ratios 1.5, 1.5, 0.5, 0.5 with advantages 2, -2, 2, -2 and clip 0.2:
    #   r=1.5 A=2:  max(-3, -2.4) = -2.4 (clipped)    r=1.5 A=-2: max(3, 2.4) = 3
    #   r=0.5 A=2:  max(-1, -1.6) = -1                r=0.5 A=-2: max(1, 1.6) = 1.6 (clipped)
    old = torch.zeros(4)
    new = torch.log(torch.tensor([1.5, 1.5, 0.5, 0.5]))
    loss, clipped = core.clipped_policy_loss(new, old, torch.tensor([2.0, -2.0, 2.0, -2.0]), clip_range=0.2)
    close(loss, [-2.4, 3.0, -1.0, 1.6])
    close(clipped, [1.0, 0.0, 0.0, 1.0])


def test_clipped_value_loss() -> None:
    # Token 1: V 1.0 from 0.5 clips to 0.7; (1 - 2)^2 = 1 vs (0.7 - 2)^2 = 1.69 -> 1.69.
    # Token 2: V = old = 0, return 1 -> 1. Token 3 is padding. Loss = 0.5 * (1.69 + 1) / 2 = 0.6725.
    loss, clipped = core.clipped_value_loss(
        torch.tensor([[1.0, 0.0, 5.0]]),
        torch.tensor([[0.5, 0.0, 0.0]]),
        torch.tensor([[2.0, 1.0, 0.0]]),
        torch.tensor([[1.0, 1.0, 0.0]]),
        clip_range=0.2,
    )
    close(loss, 0.6725)
    close(clipped, 0.5)


def test_loss_aggregations() -> None:
    token_loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    close(core.aggregate_token_loss(token_loss, mask, "sequence_mean", 4), 3.0)  # (2 + 4) / 2
    close(core.aggregate_token_loss(token_loss, mask, "token_mean", 4), 2.5)  # 10 / 4
    close(core.aggregate_token_loss(token_loss, mask, "constant", 4), 1.25)  # 10 / (2 * 4)


def test_chunk_loss_uses_the_whole_batch_normalizer() -> None:
    # The batch of test_loss_aggregations with a third row: 3 rows, 6 tokens, max_tokens 4.
    #   row 0: tokens 1, 2, 3 (mean 2, sum 6); row 1: token 4 (mean 4, sum 4); row 2: tokens 5, 7 (mean 6, sum 12).
    # The chunk of row 2 alone, under each kind:
    #   sequence_mean: 6 / 3 = 2; token_mean: 12 / 6 = 2; constant: 12 / (3 * 4) = 1.
    chunk_loss = torch.tensor([[5.0, 7.0, 100.0]])
    chunk_mask = torch.tensor([[1.0, 1.0, 0.0]])
    whole = {"batch_rows": 3, "batch_tokens": torch.tensor(6.0)}
    close(core.aggregate_chunk_token_loss(chunk_loss, chunk_mask, "sequence_mean", 4, **whole), 2.0)
    close(core.aggregate_chunk_token_loss(chunk_loss, chunk_mask, "token_mean", 4, **whole), 2.0)
    close(core.aggregate_chunk_token_loss(chunk_loss, chunk_mask, "constant", 4, **whole), 1.0)
    # Rows 0 and 1: sequence_mean (2 + 4) / 3 = 2; token_mean (6 + 4) / 6 = 5/3; constant 10 / 12 = 5/6.
    chunk_loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    chunk_mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    close(core.aggregate_chunk_token_loss(chunk_loss, chunk_mask, "sequence_mean", 4, **whole), 2.0)
    close(core.aggregate_chunk_token_loss(chunk_loss, chunk_mask, "token_mean", 4, **whole), 5.0 / 3.0)
    close(core.aggregate_chunk_token_loss(chunk_loss, chunk_mask, "constant", 4, **whole), 5.0 / 6.0)
    # A batch with no tokens at all has loss 0 (as masked_mean), not NaN.
    empty = {"batch_rows": 1, "batch_tokens": torch.tensor(0.0)}
    close(core.aggregate_chunk_token_loss(chunk_loss[:1], torch.zeros(1, 3), "token_mean", 4, **empty), 0.0)


@pytest.mark.parametrize("kind", ["sequence_mean", "token_mean", "constant"])
def test_chunk_losses_add_up_to_the_batch_aggregate(kind: core.LossAggregation) -> None:
    generator = torch.Generator().manual_seed(0)
    token_loss = torch.randn(7, 5, generator=generator)
    lengths = torch.tensor([5, 1, 3, 2, 5, 4, 1])
    mask = (torch.arange(5).unsqueeze(0) < lengths.unsqueeze(1)).float()
    whole = core.aggregate_token_loss(token_loss, mask, kind, 6)
    for size in (1, 2, 3, 7):
        chunks = [
            core.aggregate_chunk_token_loss(
                token_loss[start : start + size],
                mask[start : start + size],
                kind,
                6,
                batch_rows=7,
                batch_tokens=mask.sum(),
            )
            for start in range(0, 7, size)
        ]
        close(sum(chunks), float(whole), tol=1e-6)


def test_group_advantages_grpo_and_dr_grpo() -> None:
    rewards = torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 6.0])
    # Group 1: mean 2, std 1. Group 2: mean 2, std sqrt((4 + 4 + 16) / 2) = sqrt(12).
    s = 12**0.5
    close(core.group_advantages(rewards, 3, eps=0.0), [-1.0, 0.0, 1.0, -2 / s, -2 / s, 4 / s])
    close(core.group_advantages(rewards, 3, scale=False), [-1.0, 0.0, 1.0, -2.0, -2.0, 4.0])
    # A unanimous group gives zero advantage, not a division by zero.
    close(core.group_advantages(torch.tensor([0.5, 0.5]), 2), [0.0, 0.0])


def test_leave_one_out_advantages() -> None:
    # [1, 2, 3]: baselines (2+3)/2, (1+3)/2, (1+2)/2 -> -1.5, 0, 1.5. [0, 0, 6]: baselines 3, 3, 0.
    close(core.leave_one_out_advantages(torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 6.0]), 3), [-1.5, 0, 1.5, -3, -3, 6])
    with pytest.raises(ValueError, match="at least 2"):
        core.leave_one_out_advantages(torch.tensor([1.0]), 1)


def test_dpo_losses() -> None:
    # h = (-1 - -2) - (-3 - -2) = 2; beta 0.5 -> beta h = 1; -log sigmoid(1) = log(1 + e^-1) = 0.313262.
    args = (torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]))
    loss, chosen_reward, rejected_reward = core.dpo_loss(*args, beta=0.5)
    close(loss, [math.log(1 + math.exp(-1))])
    close(chosen_reward, [0.5])
    close(rejected_reward, [-0.5])
    # cDPO with label smoothing 0.1: 0.9 * log(1 + e^-1) + 0.1 * log(1 + e^1) = 0.413262
    smoothed, _, _ = core.dpo_loss(*args, beta=0.5, label_smoothing=0.1)
    close(smoothed, [0.9 * math.log(1 + math.exp(-1)) + 0.1 * math.log(1 + math.exp(1))])
    # IPO: (h - 1 / (2 beta))^2 = (2 - 1)^2
    ipo, _, _ = core.dpo_loss(*args, beta=0.5, kind="ipo")
    close(ipo, [1.0])


def test_explained_variance() -> None:
    target = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    mask = torch.ones(1, 4)
    assert core.explained_variance(target, target, mask) == pytest.approx(1.0)
    # Predicting the mean explains nothing.
    assert core.explained_variance(torch.full((1, 4), 2.5), target, mask) == pytest.approx(0.0)


def test_no_eos_penalty_replaces_scores_of_unfinished() -> None:
    scores = torch.tensor([0.7, 0.9])
    finished = torch.tensor([True, False])
    close(core.penalize_unfinished(scores, finished, -1.0), [0.7, -1.0])
    close(core.penalize_unfinished(scores, finished, None), [0.7, 0.9])


def test_adaptive_kl_controller() -> None:
    controller = core.AdaptiveKLController(0.15, target=6.0, horizon=10_000)
    # KL 9 -> error clip(9/6 - 1) = 0.2; 256 completions: beta *= 1 + 0.2 * 256 / 10000 = 1.00512
    controller.update(9.0, 256)
    assert controller.value == pytest.approx(0.15 * 1.00512)
    # KL 5.4 -> error -0.1; 1000 completions: beta *= 0.99
    controller.update(5.4, 1000)
    assert controller.value == pytest.approx(0.15 * 1.00512 * 0.99)
    fixed = core.FixedKLController(0.05)
    fixed.update(100.0, 1000)
    assert fixed.value == 0.05


def test_over_kl_budget_averages_the_last_window() -> None:
    assert not core.over_kl_budget([], budget=1.0, window=3)
    assert not core.over_kl_budget([0.5, 1.2], budget=1.0, window=3)  # mean 0.85
    assert core.over_kl_budget([0.5, 1.6], budget=1.0, window=3)  # mean 1.05
    assert not core.over_kl_budget([9.0, 0.9, 1.0, 1.0], budget=1.0, window=3)  # 9.0 left the window
    assert core.over_kl_budget([0.0, 1.0, 1.0, 1.3], budget=1.0, window=3)  # mean 1.1
