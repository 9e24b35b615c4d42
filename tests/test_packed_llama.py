"""`PackedLlama` computes the model's forward: over left-padded prompts, step by step on its cache, with a
LoRA adapter on and off, in float32 and with bf16 products; other models keep transformers' forward."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig
from transformers import DynamicCache

from apprentice.cpu_inference import bf16_packing_supported, in_place_cache
from apprentice.models import load_policy
from apprentice.packed_llama import PackedLlama, decoding_model, packed_llama_supported
from apprentice.rl.session import with_adapter
from apprentice.tokens import position_ids
from conftest import randomize_weights


def prompt_and_steps(forward: object, cache: DynamicCache, vocab: int, steps: int = 3) -> list[torch.Tensor]:
    """Logits of a left-padded prompt pass (all positions), then of `steps` one-token steps on the cache."""
    generator = torch.Generator().manual_seed(2)
    input_ids = torch.randint(3, vocab, (3, 6), generator=generator)
    mask = torch.ones_like(input_ids)
    mask[1, :2] = 0  # left padding of different lengths
    mask[2, :4] = 0
    logits = []
    with torch.inference_mode():
        output = forward(  # type: ignore[operator]
            input_ids=input_ids, attention_mask=mask, position_ids=position_ids(mask), cache=cache, use_cache=True
        )
        logits.append(output.logits.masked_fill(~mask.bool()[..., None], 0.0))  # padding positions: unused
        for _ in range(steps):
            step_input = torch.randint(3, vocab, (3, 1), generator=generator)
            mask = torch.cat([mask, mask.new_ones((3, 1))], dim=1)
            output = forward(  # type: ignore[operator]
                input_ids=step_input,
                attention_mask=mask,
                position_ids=mask.sum(dim=1, keepdim=True) - 1,
                cache=cache,
                use_cache=True,
            )
            logits.append(output.logits)
    return logits


def assert_all_close(got: list[torch.Tensor], want: list[torch.Tensor], **tolerance: float) -> None:
    for ours, theirs in zip(got, want, strict=True):
        torch.testing.assert_close(ours, theirs, **tolerance)  # type: ignore[arg-type]


def test_packed_llama_gives_the_models_logits_over_padded_prompts_and_steps(tiny_model: Path) -> None:
    model, _ = load_policy(str(tiny_model))
    model = randomize_weights(model)
    assert packed_llama_supported(model)
    vocab = model.config.vocab_size
    expected = prompt_and_steps(model, DynamicCache(config=model.config), vocab)
    ours = prompt_and_steps(PackedLlama(model), in_place_cache(model, room=2), vocab)
    assert_all_close(ours, expected, rtol=1e-4, atol=1e-4)
    assert ours[0].abs().amax() > 1.0  # logits large enough that a wrong mask or rotation would show


def test_packed_llama_packs_a_lora_adapters_merged_weight_and_its_base_when_switched_off(tiny_model: Path) -> None:
    model, _ = load_policy(str(tiny_model))
    policy = with_adapter(
        randomize_weights(model), LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear")
    )
    for name, parameter in policy.named_parameters():
        if "lora_B" in name:  # B starts at zero: give the adapter something to add
            torch.nn.init.normal_(parameter, std=0.2, generator=torch.Generator().manual_seed(1))
    assert packed_llama_supported(policy)
    vocab = model.config.vocab_size
    adapted = prompt_and_steps(policy, DynamicCache(config=model.config), vocab)
    with policy.disable_adapter():
        base = prompt_and_steps(policy, DynamicCache(config=model.config), vocab)
        packed_base = prompt_and_steps(PackedLlama(policy), in_place_cache(model, room=8), vocab)
    packed = prompt_and_steps(PackedLlama(policy), in_place_cache(model, room=8), vocab)
    assert not torch.allclose(adapted[-1], base[-1], atol=1e-2)  # the adapter does change the logits
    assert_all_close(packed, adapted, rtol=1e-4, atol=1e-4)
    assert_all_close(packed_base, base, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not bf16_packing_supported(), reason="oneDNN packs bf16 weights only on AVX-512 or newer CPUs")
def test_bf16_products_are_close_to_the_model_under_autocast_and_cache_in_bf16(tiny_model: Path) -> None:
    model, _ = load_policy(str(tiny_model))
    model = randomize_weights(model)
    assert packed_llama_supported(model, bf16=True)
    vocab = model.config.vocab_size
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = prompt_and_steps(model, DynamicCache(config=model.config), vocab)
    exact = prompt_and_steps(model, DynamicCache(config=model.config), vocab)
    cache = in_place_cache(model, room=8)
    ours = prompt_and_steps(PackedLlama(model, bf16=True), cache, vocab)
    assert cache.layers[0].keys.dtype == torch.bfloat16
    for got, autocast, float32 in zip(ours, expected, exact, strict=True):
        scale = float32.abs().amax()
        # bf16 rounding of the products: within a few percent of the logits' scale, as autocast is
        assert (got - float32.float()).abs().amax() < 0.05 * scale
        assert (got - autocast.float()).abs().amax() < 0.05 * scale


def test_other_models_keep_transformers_forward(tiny_model: Path) -> None:
    model, _ = load_policy(str(tiny_model))
    model.to(torch.bfloat16)  # bf16 weights: nothing to pack
    assert not packed_llama_supported(model)
    with decoding_model(model) as forward:
        assert forward is model
    float_model, _ = load_policy(str(tiny_model))
    with decoding_model(float_model) as packed, decoding_model(packed) as again:
        assert isinstance(packed, PackedLlama) and again is packed  # packed once, reused as it is
