"""The GRPO update against the maths it replaced: the same loss, gradients and AdamW step on a tiny model.

The reference below is the update as it was written before the micro-batched, fused-optimizer path,
frozen here: one forward of the whole batch, log_softmax and gather, the clipped surrogate with the KL
term, aggregate_token_loss, backward, gradient clipping and an unfused AdamW step.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from apprentice.rl.config import GRPOConfig
from apprentice.rl.core import aggregate_token_loss, clipped_policy_loss, group_advantages, kl_estimate
from apprentice.rl.online import ScoredRollout, clipped_surrogate_update
from apprentice.rl.rollout import reference_logprobs, sample_rollout
from apprentice.rl.session import TrainingRun
from apprentice.tokens import position_ids

PROMPTS = [
    [{"role": "user", "content": "write a poem about the sun"}],
    [{"role": "user", "content": "hi"}],
    [{"role": "user", "content": "explain why the moon"}],
]
GROUP = 4


def frozen_update_maths(
    model: torch.nn.Module, batch: ScoredRollout, advantages: torch.Tensor, config: GRPOConfig
) -> float:
    rollout = batch.rollout
    width = rollout.completion_ids.shape[1]
    logits = model(
        input_ids=rollout.input_ids,
        attention_mask=rollout.attention_mask,
        position_ids=position_ids(rollout.attention_mask),
        logits_to_keep=width + 1,
        use_cache=False,
    ).logits[:, :-1]
    logprobs = torch.log_softmax(logits.float() / config.temperature, dim=-1)
    logprobs = logprobs.gather(-1, rollout.completion_ids.unsqueeze(-1)).squeeze(-1)
    token_loss, _ = clipped_policy_loss(logprobs, logprobs.detach(), advantages.unsqueeze(1), config.clip_range)
    assert batch.ref_logprobs is not None
    token_loss = token_loss + config.kl_coef * kl_estimate(logprobs, batch.ref_logprobs, config.kl_estimator)
    loss = aggregate_token_loss(token_loss, rollout.completion_mask, config.loss_aggregation, config.max_new_tokens)
    loss.backward()
    return float(loss.detach())


@pytest.mark.parametrize("micro_batch_size", [12, 5])
@pytest.mark.parametrize("aggregation", ["sequence_mean", "token_mean"])
def test_grpo_update_matches_the_frozen_maths(
    micro_batch_size: int, aggregation: str, tiny_model: Path, tmp_path: Path
) -> None:
    config = GRPOConfig(
        output_dir=tmp_path / "run",
        steps=1,
        prompts_per_step=len(PROMPTS),
        completions_per_prompt=GROUP,
        max_new_tokens=8,
        temperature=0.7,
        kl_coef=0.05,
        learning_rate=0.5,
        adam_eps=1e-3,
        max_grad_norm=0.05,  # small enough to clip: the clipping is compared too
        lr_schedule="constant",
        loss_aggregation=aggregation,
        micro_batch_size=micro_batch_size,
        tensorboard=False,
    )
    run = TrainingRun(
        config, str(tiny_model), total_steps=1, updates_per_step=1, need_reference=True, show_progress=False
    )
    run.step = 1
    assert run.optimizer.optimizer.defaults["fused"]  # one fused AdamW kernel, not a loop of elementwise ops
    torch.manual_seed(0)
    assert run.reference is not None
    with torch.no_grad():  # a reference away from the policy, so that the KL term is not zero
        for parameter in run.reference.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    rollout = sample_rollout(
        run.policy, run.tokenizer, PROMPTS, completions_per_prompt=GROUP, max_new_tokens=8, temperature=0.7
    )
    rewards = torch.linspace(-1.0, 1.0, len(rollout.prompts))
    ref = reference_logprobs(run.reference, run.policy, rollout, 0.7)
    batch = ScoredRollout(rollout, rewards, rewards, None, ref)
    advantages = group_advantages(rewards, GROUP)

    # The reference runs on a copy of the policy, with the unfused optimizer the update used before.
    # The same attention kernel as the policy's: a model built from a bare config may pick another one.
    copy = type(run.policy)._from_config(run.policy.config, attn_implementation=run.policy.config._attn_implementation)
    copy.load_state_dict(run.policy.state_dict())
    copy.eval()
    expected_loss = frozen_update_maths(copy, batch, advantages, config)
    grad_norm = torch.nn.utils.clip_grad_norm_(list(copy.parameters()), config.max_grad_norm)
    expected_gradients = {name: p.grad.detach().clone() for name, p in copy.named_parameters() if p.grad is not None}
    torch.optim.AdamW(
        copy.parameters(), lr=config.learning_rate, eps=config.adam_eps, weight_decay=0.0, foreach=False, fused=False
    ).step()

    gradients: dict[str, torch.Tensor] = {}
    real_step = run.optimizer.step

    def step_recording_gradients(*args: object, **kwargs: object) -> object:
        gradients.update({name: p.grad.detach().clone() for name, p in run.policy.named_parameters()})
        return real_step(*args, **kwargs)

    run.optimizer.step = step_recording_gradients  # type: ignore[method-assign]
    update = clipped_surrogate_update(
        run,
        batch,
        advantages,
        temperature=0.7,
        clip_range=config.clip_range,
        aggregation=config.loss_aggregation,
        max_tokens=config.max_new_tokens,
        micro_batch_size=micro_batch_size,
        kl_coef=config.kl_coef,
        kl_estimator=config.kl_estimator,
    )
    assert abs(expected_loss) > 1e-4
    assert update["loss"] == pytest.approx(expected_loss, rel=1e-5, abs=1e-7)  # float32 summation order
    assert update["grad_norm"] == pytest.approx(float(grad_norm), rel=1e-5)
    assert float(grad_norm) > config.max_grad_norm  # the clipping did act
    for name, expected in expected_gradients.items():
        torch.testing.assert_close(gradients[name], expected, atol=1e-7, rtol=1e-5)
    for name, value in run.policy.state_dict().items():
        torch.testing.assert_close(value, copy.state_dict()[name], atol=1e-6, rtol=1e-5)
