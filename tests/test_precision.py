"""Mixed precision: how the setting resolves, and that each bf16 path computes in bf16 and stays close to float32.

The rest of the suite runs float32 (conftest's `float32_unless_asked`); these tests ask for bf16 by name,
which runs on any CPU (slowly where it has no bf16 units).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from apprentice import cpu_inference, precision
from apprentice.cpu_inference import bf16_packing_supported, packed_linears, packed_linears_supported
from apprentice.decoding import Sampling, decode
from apprentice.evaluation import sample_policy
from apprentice.models import load_policy
from apprentice.rl.config import build_config
from apprentice.rl.grpo import train_grpo
from apprentice.rl.rewards import CallableReward
from rl_toy import PROMPTS, letter_fraction

CPU = torch.device("cpu")
GRPO_OPTIONS = {
    "steps": 2,
    "prompts_per_step": 4,
    "max_new_tokens": 8,
    "temperature": 1.0,
    "learning_rate": 2e-2,
    "tensorboard": False,
    "kl_coef": 0.01,
}


def test_the_setting_resolves_by_name_and_auto_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    assert precision.uses_bf16("bf16", CPU) and not precision.uses_bf16("no", CPU)
    assert not precision.uses_bf16("auto", CPU)  # conftest: no fast bf16 in tests
    monkeypatch.setattr(precision, "fast_bf16", lambda device: True)
    assert precision.uses_bf16("auto", CPU) and not precision.uses_bf16("no", CPU)


def test_fast_bf16_is_false_on_a_device_it_does_not_know(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the module's own function, not conftest's stand-in
    assert precision.fast_bf16(torch.device("meta")) is False
    assert isinstance(precision.fast_bf16(CPU), bool)


def test_the_autocast_block_multiplies_in_bf16_only_when_enabled() -> None:
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with precision.bf16_autocast(CPU, True):
        assert (a @ b).dtype == torch.bfloat16
    with precision.bf16_autocast(CPU, False):
        assert (a @ b).dtype == torch.float32


def test_bf16_packed_linears_keep_float32_outputs_close_to_float32(tiny_model: Path) -> None:
    """Where oneDNN packs bf16 weights (AVX-512, AMX); elsewhere the block must leave the model as it is."""
    model, _ = load_policy(str(tiny_model))
    input_ids = torch.randint(0, model.config.vocab_size, (3, 7), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        plain = model(input_ids=input_ids).logits
        with packed_linears(model, bf16=True):
            patched = any("forward" in vars(module) for module in model.modules())
            packed = model(input_ids=input_ids).logits
    assert patched == bf16_packing_supported()
    assert packed.dtype == torch.float32
    if patched:
        assert not torch.equal(packed, plain)  # bf16 products round differently
        torch.testing.assert_close(packed, plain, rtol=0.05, atol=0.05)
    else:
        assert torch.equal(packed, plain)
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())
    assert not any("forward" in vars(module) for module in model.modules())


def test_without_bf16_packing_the_block_leaves_the_model_alone_and_bf16_decoding_runs(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An AVX2 CPU: oneDNN cannot pack bf16 weights, so `mixed_precision = "bf16"` decodes under autocast."""
    monkeypatch.setattr(cpu_inference, "bf16_packing_supported", lambda: False)
    model, _ = load_policy(str(tiny_model))
    assert packed_linears_supported(model) and not packed_linears_supported(model, bf16=True)
    with packed_linears(model, bf16=True):
        assert not any("forward" in vars(module) for module in model.modules())
    prompts = torch.randint(3, model.config.vocab_size, (2, 5), generator=torch.Generator().manual_seed(1))
    completions = decode(
        model, prompts, torch.ones_like(prompts), Sampling(4, temperature=1.0), stop_ids=[], pad_id=0, bf16=True
    )
    assert completions.shape == (2, 4)


def test_bf16_decoding_gives_completions_of_the_vocabulary(tiny_model: Path) -> None:
    model, _tokenizer = load_policy(str(tiny_model))
    prompts = torch.randint(3, model.config.vocab_size, (4, 5), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(prompts)
    torch.manual_seed(0)
    completions = decode(model, prompts, mask, Sampling(6, temperature=1.0), stop_ids=[], pad_id=0, bf16=True)
    assert completions.shape == (4, 6)
    assert int(completions.min()) >= 0 and int(completions.max()) < model.config.vocab_size


def test_a_grpo_step_in_bf16_trains_float32_weights(tiny_model: Path, tmp_path: Path) -> None:
    config = build_config("grpo", GRPO_OPTIONS | {"output_dir": tmp_path / "run", "mixed_precision": "bf16"})
    result = train_grpo(config, str(tiny_model), PROMPTS, CallableReward(letter_fraction, "toy"), show_progress=False)
    assert result.run.bf16
    assert math.isfinite(result.metrics["loss"]) and math.isfinite(result.metrics["kl"])
    assert all(parameter.dtype == torch.float32 for parameter in result.run.unwrapped.parameters())
    with result.run.autocast():
        assert (torch.randn(2, 2) @ torch.randn(2, 2)).dtype == torch.bfloat16
    trained, _ = load_policy(str(result.policy_path))
    assert all(parameter.dtype == torch.float32 for parameter in trained.parameters())


def test_a_lora_run_in_bf16_keeps_its_frozen_linears_in_bf16_and_saves_float32_base_plus_adapter(
    tiny_model: Path, tmp_path: Path
) -> None:
    values = {"lora_rank": 4, "learning_rate": 5e-2, "steps": 2, "mixed_precision": "bf16"}
    config = build_config("grpo", GRPO_OPTIONS | {"output_dir": tmp_path / "run"} | values)
    result = train_grpo(config, str(tiny_model), PROMPTS, CallableReward(letter_fraction, "toy"), show_progress=False)
    layer = result.run.policy.base_model.model.model.layers[0].self_attn.q_proj
    assert layer.get_base_layer().weight.dtype == torch.bfloat16
    assert layer.lora_A["default"].weight.dtype == torch.float32
    assert result.run.policy.get_output_embeddings().weight.dtype == torch.float32
    base, _ = load_policy(str(tiny_model))
    merged, _ = load_policy(str(result.policy_path))
    with torch.no_grad():
        delta = layer.get_delta_weight("default").float()
        expected = base.model.layers[0].self_attn.q_proj.weight + delta
        saved = merged.model.layers[0].self_attn.q_proj.weight
    assert delta.abs().max() > 0
    torch.testing.assert_close(saved, expected)  # the float32 start plus the adapter, not a bf16 rounding
    assert not torch.equal(saved, expected.bfloat16().float())


def test_evaluation_samples_and_measures_kl_in_bf16(tiny_model: Path) -> None:
    samples = sample_policy(str(tiny_model), str(tiny_model), [list(m) for m in PROMPTS[:3]], mixed_precision="bf16")
    assert len(samples.completions) == 6
    assert samples.kl_from_base == 0.0  # the base against itself
