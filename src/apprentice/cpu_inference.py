"""Faster no-grad forward passes on the CPU: oneDNN's prepacked linears and a KV cache written in place.

Decoding a few rows at a time is where the CPU build of PyTorch leaves most of the machine idle; both
fixes change how the same arithmetic is done, not what is computed. Measured on the 2-core CPU, fp32,
the default policy (SmolLM2-135M), one decoding step after a 40-token prompt:

- `F.linear` goes to MKL's sgemm, which for the 1-32 rows of a decoding step neither streams the weights
  at the memory's bandwidth nor computes at the cores' rate: a step of 8 rows took 188 ms, and 92 ms with
  each weight reordered once for oneDNN (`mkldnn._reorder_linear_weight`) and applied with oneDNN's
  `_linear_pointwise`, the kernels that `torch.compile`'s CPU freezing uses (32 rows: 285 and 185 ms).
  Reordering the whole model takes about 0.25 s, once per decoding call. The logits agree with MKL's to
  float rounding (within 1e-4).
- `DynamicCache` grows every layer's keys and values with `torch.cat`, copying the whole cache at each
  step (a quarter of a 32-row step once the linears are fast); `InPlaceLayer` writes each step's keys
  into room reserved for the whole completion.

With `bf16`, the reordered copies are bfloat16 and each linear's input is cast to bfloat16 and its output
back to float32 (the rest of the model stays float32): on a CPU with AMX, oneDNN then runs the products on
its bf16 tiles, and decoding took 0.63 of float32's time; with AVX-512 bf16 instead (AMD EPYC), 0.86
(`precision` says when this is chosen).

A LoRA policy's layers (peft's, one plain adapter) are packed as one linear each, with the base weight plus
the adapter's product: the demo's 32 completions of 64 tokens from a rank-16 adapter were sampled in 16.4-17.5
s against 19.7-21.4 s through peft's three products a layer. oneDNN packs bf16 weights only on CPUs with
AVX-512 (or AVX-NE-CONVERT); on an AVX2 one `bf16` leaves the linears unpacked, to autocast.

`torch.compile` would find the first by itself, but compiling the model on two cores costs minutes each
time the policy's weights change; these two need no compiler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, TypeGuard

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

if TYPE_CHECKING:
    from peft.tuners.lora import Linear as LoraLinear


def packed_linears_supported(model: torch.nn.Module, *, bf16: bool = False) -> bool:
    """Whether oneDNN's prepacked linears apply: float32 weights on the CPU, a build with oneDNN's ops, and
    for `bf16` a CPU whose instructions oneDNN's bf16 packing needs."""
    parameter = next(model.parameters(), None)
    return (
        parameter is not None
        and parameter.device.type == "cpu"
        and parameter.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and (not bf16 or bf16_packing_supported())
    )


@cache
def bf16_packing_supported() -> bool:
    """oneDNN packs bf16 weights only on CPUs with AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT; elsewhere (AVX2)
    the reorder raises, and the caller keeps PyTorch's own linears under autocast."""
    try:
        torch.ops.mkldnn._reorder_linear_weight(torch.zeros(2, 2, dtype=torch.bfloat16))
    except RuntimeError:
        return False
    return True


@contextmanager
def packed_linears(model: torch.nn.Module, *, bf16: bool = False) -> Iterator[None]:
    """Within the block, every `nn.Linear` of the model runs oneDNN's kernel on a reordered copy of its weight.

    For no-grad passes only (the oneDNN op has no backward). The copies are taken at entry, so the weights
    must not change inside the block; they are dropped at exit. With `bf16` the products run in bfloat16.
    Does nothing where unsupported, or when the model is already inside such a block.
    """
    adapted = [module for module in model.modules() if _plain_lora_linear(module)]
    inside_adapted = {id(inner) for module in adapted for inner in module.modules() if inner is not module}
    linears = [
        module for module in model.modules() if isinstance(module, torch.nn.Linear) and id(module) not in inside_adapted
    ]
    patched: list[torch.nn.Module] = [*adapted, *linears]
    if not packed_linears_supported(model, bf16=bf16) or any("forward" in vars(module) for module in patched):
        yield
        return
    try:
        for layer in adapted:
            layer.forward = _packed_lora_forward(layer, bf16)  # type: ignore[method-assign]
        for linear in linears:
            linear.forward = PackedLinear(linear.weight, linear.bias, compute_dtype(bf16))  # type: ignore[method-assign,assignment]
        yield
    finally:
        for module in patched:
            vars(module).pop("forward", None)


def _plain_lora_linear(module: torch.nn.Module) -> TypeGuard[LoraLinear]:
    """A peft LoRA layer on an `nn.Linear` with one plain adapter (no DoRA or other variant, no dropout),
    not merged: its output is one linear map, the base weight plus the adapter's B A times its scaling."""
    from peft.tuners.lora import Linear

    if not isinstance(module, Linear) or not isinstance(module.base_layer, torch.nn.Linear):
        return False
    adapters = module.active_adapters
    return (
        len(adapters) == 1
        and adapters[0] in module.lora_A
        and adapters[0] not in module.lora_variant
        and isinstance(module.lora_dropout[adapters[0]], torch.nn.Identity)
        and not module.merged
    )


def computes_one_linear_map(module: torch.nn.Module) -> bool:
    """Whether `effective_weight` has a weight for this module, without computing it."""
    return isinstance(module, torch.nn.Linear) or _plain_lora_linear(module)


def effective_weight(module: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """The weight and bias of the one linear map a layer computes: an `nn.Linear`'s own, a plain LoRA layer's
    base weight plus its adapter's product (the base's alone while adapters are switched off); None for
    any other module."""
    if isinstance(module, torch.nn.Linear):
        return module.weight, module.bias
    if not _plain_lora_linear(module):
        return None
    base = module.base_layer
    assert isinstance(base, torch.nn.Linear)
    if module.disable_adapters:
        return base.weight, base.bias
    with torch.no_grad():
        delta = module.get_delta_weight(module.active_adapters[0]).to(base.weight.dtype)
    return base.weight + delta, base.bias


def _packed_lora_forward(module: LoraLinear, bf16: bool) -> Callable[..., torch.Tensor]:
    """One packed product with the merged weight instead of the base's and the adapter's two: a decoding step
    of a LoRA policy then costs what the plain model's does. The model's own weights are not touched (no
    merge and unmerge, whose rounding would drift them). Switching the adapter off inside the block falls
    back to peft's own forward, which the reference pass does."""
    merged = effective_weight(module)
    assert merged is not None
    packed = PackedLinear(*merged, compute_dtype(bf16))
    unpacked = type(module).forward.__get__(module)

    def forward(inputs: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        if module.disable_adapters or args or kwargs:
            return unpacked(inputs, *args, **kwargs)
        return packed(inputs)

    return forward


class PackedLinear:
    """A linear map on a weight reordered once for oneDNN, computed in `compute` precision: float32 inputs
    give float32 outputs."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, compute: torch.dtype) -> None:
        self.compute = compute
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().to(compute))
        self.bias = None if bias is None else bias.detach().to(compute)
        self.out_features = weight.shape[0]

    def __call__(self, inputs: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
        """The product in `compute` precision, returned in `out_dtype` (by default the inputs')."""
        rows = inputs.reshape(-1, inputs.shape[-1]).to(self.compute)
        outputs = torch.ops.mkldnn._linear_pointwise(rows, self.packed, self.bias, "none", [], "")
        return outputs.to(out_dtype or inputs.dtype).reshape(*inputs.shape[:-1], self.out_features)


def compute_dtype(bf16: bool) -> torch.dtype:
    return torch.bfloat16 if bf16 else torch.float32


class InPlaceLayer(DynamicLayer):
    """A `DynamicLayer` that reserves room for `room` more tokens after the first update and writes into it.

    `keys` and `values` are views of the filled part, as `DynamicLayer`'s tensors would be; past the room
    it doubles the buffer, so it never fails, it only copies again.
    """

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room
        self.length = 0
        self.key_buffer = torch.empty(0)
        self.value_buffer = torch.empty(0)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.key_buffer = self._reserve(key_states, key_states.shape[-2] + self.room)
            self.value_buffer = self._reserve(value_states, value_states.shape[-2] + self.room)
        new_length = self.length + key_states.shape[-2]
        if new_length > self.key_buffer.shape[-2]:
            self.key_buffer = self._grown(self.key_buffer, new_length)
            self.value_buffer = self._grown(self.value_buffer, new_length)
        self.key_buffer[:, :, self.length : new_length] = key_states
        self.value_buffer[:, :, self.length : new_length] = value_states
        self.length = new_length
        return self._expose()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.length > 0:
            self.key_buffer = self.key_buffer[indices]
            self.value_buffer = self.value_buffer[indices]
            self._expose()

    def _expose(self) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self.key_buffer[:, :, : self.length], self.value_buffer[:, :, : self.length]
        self.keys, self.values = keys, values
        return keys, values

    @staticmethod
    def _reserve(states: torch.Tensor, length: int) -> torch.Tensor:
        batch, heads, _, width = states.shape
        return states.new_empty((batch, heads, length, width))

    def _grown(self, buffer: torch.Tensor, needed: int) -> torch.Tensor:
        grown = self._reserve(buffer, max(needed, 2 * buffer.shape[-2]))
        grown[:, :, : self.length] = buffer[:, :, : self.length]
        return grown


def in_place_cache(model: PreTrainedModel, room: int) -> DynamicCache:
    """The model's `DynamicCache` with each full-attention layer replaced by an `InPlaceLayer` of `room`.

    Sliding-window and other special layers keep their own kind.
    """
    cache = DynamicCache(config=model.config)
    cache.layers = [InPlaceLayer(room) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
