"""The faster no-grad paths compute what the plain ones do: packed linears, the in-place KV cache, the sampler."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import DynamicCache
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from apprentice.cpu_inference import in_place_cache, packed_linears, packed_linears_supported
from apprentice.decoding import (
    DRAW_BLOCK,
    NUCLEUS_SHORTLIST,
    Sampling,
    draw_in_blocks,
    next_token_distribution,
    sample_next_tokens,
)
from apprentice.models import load_policy
from apprentice.rl.session import with_adapter


def test_packed_linears_give_the_same_logits_and_leave_the_model_as_it_was(tiny_model: Path) -> None:
    model, _ = load_policy(str(tiny_model))
    assert packed_linears_supported(model)
    input_ids = torch.randint(0, model.config.vocab_size, (3, 7), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        plain = model(input_ids=input_ids).logits
        with packed_linears(model):
            assert all("forward" in vars(m) for m in model.modules() if isinstance(m, torch.nn.Linear))
            with packed_linears(model):  # nested: a no-op, the outer block still restores
                packed = model(input_ids=input_ids).logits
            assert all("forward" in vars(m) for m in model.modules() if isinstance(m, torch.nn.Linear))
    torch.testing.assert_close(packed, plain, rtol=1e-4, atol=1e-4)
    assert not any("forward" in vars(m) for m in model.modules())


def test_a_lora_layer_packs_its_merged_weight_and_switched_off_gives_the_base(tiny_model: Path) -> None:
    from peft import LoraConfig

    model, _ = load_policy(str(tiny_model))
    policy = with_adapter(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear"))
    for name, parameter in policy.named_parameters():
        if "lora_B" in name:  # B starts at zero: give the adapter something to add
            torch.nn.init.normal_(parameter, std=0.05, generator=torch.Generator().manual_seed(1))
    before = {name: parameter.clone() for name, parameter in policy.named_parameters()}
    input_ids = torch.randint(0, model.config.vocab_size, (3, 7), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        adapted = policy(input_ids=input_ids).logits
        with policy.disable_adapter():
            base = policy(input_ids=input_ids).logits
        with packed_linears(policy):
            packed_lora = [m for m in policy.modules() if "forward" in vars(m) and hasattr(m, "lora_A")]
            assert packed_lora and not any("forward" in vars(m) for layer in packed_lora for m in layer.lora_A.values())
            packed = policy(input_ids=input_ids).logits
            with policy.disable_adapter():  # the reference pass of a LoRA run, inside the block
                packed_base = policy(input_ids=input_ids).logits
    assert not torch.allclose(adapted, base, atol=1e-3)  # the adapter does change the logits
    torch.testing.assert_close(packed, adapted, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(packed_base, base, rtol=1e-4, atol=1e-4)
    assert all(torch.equal(parameter, before[name]) for name, parameter in policy.named_parameters())
    assert not any("forward" in vars(m) for m in policy.modules())


def test_packed_linears_are_removed_when_the_block_fails(tiny_model: Path) -> None:
    model, _ = load_policy(str(tiny_model))
    with pytest.raises(RuntimeError), packed_linears(model):
        raise RuntimeError("inside")
    assert not any("forward" in vars(m) for m in model.modules())


def test_packed_linears_leave_a_bfloat16_model_alone(tiny_model: Path) -> None:
    model, _ = load_policy(str(tiny_model))
    model.to(torch.bfloat16)
    assert not packed_linears_supported(model)
    with packed_linears(model):
        assert not any("forward" in vars(m) for m in model.modules())


def greedy_steps(model: torch.nn.Module, cache: DynamicCache, input_ids: torch.Tensor, steps: int) -> list:
    """Greedy tokens with the given cache, dropping row 1 after the second step; the logits of each step."""
    logits = []
    with torch.inference_mode():
        step_input = input_ids
        for step in range(steps):
            output = model(input_ids=step_input, cache=cache, use_cache=True)
            logits.append(output.logits[:, -1])
            step_input = output.logits[:, -1:].argmax(dim=-1)
            if step == 1:
                keep = torch.tensor([0, 2])
                cache.batch_select_indices(keep)
                step_input = step_input[keep]
    return logits


def test_in_place_cache_matches_the_dynamic_cache_past_its_room_and_after_rows_leave(tiny_model: Path) -> None:
    model, _ = load_policy(str(tiny_model))
    input_ids = torch.randint(0, model.config.vocab_size, (3, 5), generator=torch.Generator().manual_seed(1))
    expected = greedy_steps(model, DynamicCache(config=model.config), input_ids, steps=9)
    ours = greedy_steps(model, in_place_cache(model, room=2), input_ids, steps=9)  # 8 new tokens, room for 2
    for got, want in zip(ours, expected, strict=True):
        torch.testing.assert_close(got, want)


def warper_probabilities(scores: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """The next-token probabilities `generate` samples from: its own warpers, then a softmax."""
    warpers = LogitsProcessorList()
    if sampling.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k > 0:
        warpers.append(TopKLogitsWarper(top_k=sampling.top_k, min_tokens_to_keep=1))
    if sampling.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=sampling.top_p, min_tokens_to_keep=1))
    return torch.softmax(warpers(torch.zeros(1, dtype=torch.long), scores.clone()), dim=-1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(1.0, 0, 1.0), (0.7, 0, 0.9), (1.0, 0, 0.95), (1.3, 20, 1.0), (0.8, 50, 0.8), (1.0, 0, 0.3)],
)
def test_next_token_distribution_is_generates(temperature: float, top_k: int, top_p: float) -> None:
    generator = torch.Generator().manual_seed(4)
    peaked = torch.randn(3, 1000, generator=generator) * 4  # nucleus within the shortlist
    flat = torch.randn(2, 1000, generator=generator) * 0.1  # nucleus larger than the shortlist: full sort
    sampling = Sampling(max_new_tokens=1, temperature=temperature, top_k=top_k, top_p=top_p)
    for scores in (peaked, flat):
        ids, probabilities = next_token_distribution(scores, sampling)
        dense = torch.zeros_like(scores).scatter_(1, ids, probabilities)
        torch.testing.assert_close(dense, warper_probabilities(scores, sampling), rtol=1e-5, atol=1e-6)
    flat_ids, _ = next_token_distribution(flat, Sampling(max_new_tokens=1, top_p=0.95))
    assert flat_ids.shape[1] > NUCLEUS_SHORTLIST


def test_sampled_tokens_follow_the_distribution() -> None:
    scores = torch.tensor([[2.0, 1.0, 0.0, -1.0, -9.0]]).expand(40_000, 5)
    sampling = Sampling(max_new_tokens=1, temperature=1.0, top_p=0.9)
    torch.manual_seed(0)
    tokens = sample_next_tokens(scores, sampling)
    frequencies = torch.bincount(tokens, minlength=5).float() / tokens.numel()
    expected = warper_probabilities(scores[:1], sampling)[0]
    torch.testing.assert_close(frequencies, expected, rtol=0, atol=0.01)
    assert frequencies[3:].sum() == 0  # outside the nucleus


def test_a_draw_in_blocks_follows_the_one_stage_distribution() -> None:
    # 5 blocks and a part-block; the mass is spread unevenly over blocks and within them, and some
    # columns (and the whole third block) have probability 0
    width = 5 * DRAW_BLOCK + 37
    weights = torch.rand(width, generator=torch.Generator().manual_seed(3)) ** 4
    weights[2 * DRAW_BLOCK : 3 * DRAW_BLOCK] = 0.0
    weights[::7] = 0.0
    weights[-1] = 2.0  # in the part-block
    expected = weights / weights.sum()
    torch.manual_seed(0)
    draws = draw_in_blocks((weights * 3).expand(200_000, width))  # unnormalized, as multinomial takes them
    frequencies = torch.bincount(draws, minlength=width).float() / draws.numel()
    assert frequencies[expected == 0].sum() == 0
    assert draws.max() < width
    assert 0.5 * (frequencies - expected).abs().sum() < 0.03  # total variation: sampling noise alone
    torch.testing.assert_close(frequencies[-1], expected[-1], rtol=0.05, atol=0)


def test_sampling_over_the_whole_vocabulary_follows_the_distribution() -> None:
    scores = torch.randn(1, 3 * DRAW_BLOCK, generator=torch.Generator().manual_seed(5)) * 2
    sampling = Sampling(max_new_tokens=1, temperature=0.8)  # no top-p, no top-k: every token a candidate
    torch.manual_seed(1)
    tokens = sample_next_tokens(scores.expand(100_000, -1), sampling)
    frequencies = torch.bincount(tokens, minlength=scores.shape[1]).float() / tokens.numel()
    expected = warper_probabilities(scores, sampling)[0]
    assert 0.5 * (frequencies - expected).abs().sum() < 0.03
