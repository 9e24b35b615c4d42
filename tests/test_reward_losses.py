"""The reward losses against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from apprentice.reward.losses import bradley_terry_loss, plackett_luce_loss, reward_centering_loss


def softplus(x: float) -> float:
    """-log sigmoid(-x), written out: log(1 + e^x)."""
    return math.log(1.0 + math.exp(x))


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_bradley_terry_is_minus_log_sigmoid_of_the_difference() -> None:
    # -log sigma(1 - 0) = log(1 + e^-1) = 0.3132616875
    assert bradley_terry_loss(t(1.0), t(0.0)).item() == pytest.approx(0.31326168751822286)
    assert bradley_terry_loss(t(0.0), t(0.0)).item() == pytest.approx(math.log(2))


def test_margin_is_subtracted_from_the_difference() -> None:
    # -log sigma(1 - 0.5) = log(1 + e^-0.5) = 0.4740769842
    assert bradley_terry_loss(t(1.0), t(0.0), margins=t(0.5)).item() == pytest.approx(0.4740769841801067)


def test_label_smoothing_mixes_in_the_flipped_label() -> None:
    # 0.9 * log(1 + e^-1) + 0.1 * log(1 + e^1) = 0.9 * 0.31326 + 0.1 * 1.31326
    expected = 0.9 * softplus(-1.0) + 0.1 * softplus(1.0)
    assert expected == pytest.approx(0.41326168751822286)
    assert bradley_terry_loss(t(1.0), t(0.0), label_smoothing=0.1).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="label_smoothing"):
        bradley_terry_loss(t(1.0), t(0.0), label_smoothing=0.5)


def test_a_tie_target_is_minimized_by_equal_rewards() -> None:
    half = t(0.5)
    assert bradley_terry_loss(t(1.0), t(0.0), targets=half).item() == pytest.approx(0.81326168751822286)
    assert bradley_terry_loss(t(0.0), t(0.0), targets=half).item() == pytest.approx(math.log(2))
    assert bradley_terry_loss(t(-1.0), t(0.0), targets=half).item() == pytest.approx(0.81326168751822286)


def test_weights_change_the_loss_as_they_should() -> None:
    chosen, rejected = t(1.0, 0.0), t(0.0, 0.0)  # per-pair losses 0.31326 and log 2
    unweighted = bradley_terry_loss(chosen, rejected).item()
    assert unweighted == pytest.approx((0.31326168751822286 + math.log(2)) / 2)
    # weight 3 on the first pair: (3 * 0.31326 + 1 * 0.69315) / 4 = 0.40823306
    assert bradley_terry_loss(chosen, rejected, weights=t(3.0, 1.0)).item() == pytest.approx(0.4082330600)
    # weight 0 removes a pair; scaling all weights changes nothing
    assert bradley_terry_loss(chosen, rejected, weights=t(0.0, 1.0)).item() == pytest.approx(math.log(2))
    assert bradley_terry_loss(chosen, rejected, weights=t(2.0, 2.0)).item() == pytest.approx(unweighted)
    # and the gradient of a zero-weight pair is zero
    scores = t(1.0, 0.0).requires_grad_()
    bradley_terry_loss(scores, t(0.0, 0.0), weights=t(0.0, 1.0)).backward()
    assert scores.grad is not None and scores.grad[0].item() == 0.0 and scores.grad[1].item() < 0


def test_plackett_luce_of_a_full_ranking() -> None:
    # scores (2, 1, 0) ranked 1, 2, 3: -[(2 - log(e^2 + e^1 + e^0)) + (1 - log(e^1 + e^0)) + (0 - log e^0)]
    expected = -((2 - math.log(math.e**2 + math.e + 1)) + (1 - math.log(math.e + 1)) + 0.0)
    assert expected == pytest.approx(0.7208676, abs=1e-6)
    loss = plackett_luce_loss(t(2.0, 1.0, 0.0).unsqueeze(0), torch.tensor([[1, 2, 3]]))
    assert loss.item() == pytest.approx(expected)
    # the same ranking stated in another position order gives the same likelihood
    shuffled = plackett_luce_loss(t(0.0, 2.0, 1.0).unsqueeze(0), torch.tensor([[3, 1, 2]]))
    assert shuffled.item() == pytest.approx(expected)


def test_plackett_luce_of_two_is_bradley_terry() -> None:
    chosen, rejected = t(0.3, -1.2), t(-0.4, 0.7)
    scores = torch.stack([chosen, rejected], dim=1)
    ranks = torch.tensor([[1, 2], [1, 2]])
    assert plackett_luce_loss(scores, ranks).item() == pytest.approx(bradley_terry_loss(chosen, rejected).item())


def test_plackett_luce_ties_share_a_choice_set() -> None:
    a, b, c = 0.5, -0.2, 1.0
    denominator = math.log(math.exp(a) + math.exp(b) + math.exp(c))
    expected = -((a - denominator) + (b - denominator) + 0.0)
    loss = plackett_luce_loss(t(a, b, c).unsqueeze(0), torch.tensor([[1, 1, 2]]))
    assert loss.item() == pytest.approx(expected)


def test_plackett_luce_padding_and_weights() -> None:
    three = plackett_luce_loss(t(2.0, 1.0, 0.0).unsqueeze(0), torch.tensor([[1, 2, 3]])).item()
    two = plackett_luce_loss(t(0.0, 1.0).unsqueeze(0), torch.tensor([[1, 2]])).item()
    scores = torch.stack([t(2.0, 1.0, 0.0), t(0.0, 1.0, 99.0)])
    ranks = torch.tensor([[1, 2, 3], [1, 2, 0]])  # the second group has two members; the third is padding
    mask = torch.tensor([[True, True, True], [True, True, False]])
    assert plackett_luce_loss(scores, ranks, mask=mask).item() == pytest.approx((three + two) / 2)
    weighted = plackett_luce_loss(scores, ranks, mask=mask, weights=t(1.0, 3.0)).item()
    assert weighted == pytest.approx((three + 3 * two) / 4)


def test_reward_centering_penalizes_the_sum() -> None:
    assert reward_centering_loss(t(1.0, 2.0), t(0.0, -1.0)).item() == pytest.approx(1.0)  # (1^2 + 1^2) / 2
    assert reward_centering_loss(t(1.0), t(1.0)).item() == pytest.approx(4.0)
    assert reward_centering_loss(t(1.0, 0.0), t(1.0, 0.0), weights=t(1.0, 3.0)).item() == pytest.approx(1.0)
