"""Which arithmetic the policy's forward passes use: float32, or bf16 where the hardware multiplies it fast.

Weights, gradients and optimizer state stay float32 in every case ("mixed precision"): only the matrix
products of a forward pass (and so of its backward) run in bf16, through `torch.autocast` when training
and through bf16 copies of the linear weights when decoding on the CPU (`cpu_inference.packed_linears`, and for
a Llama model `packed_llama`, whose attention and KV cache are then bf16 too, as under autocast).

`auto` picks bf16 only where it is measured to be faster: a CUDA device that supports it, or a CPU with
bf16 instructions that oneDNN uses (Intel AMX tiles, or AVX-512 bf16 as on AMD's Zen 4). On the 2-core test
machines, the policy's forward and backward (benchmarks/cpu_bf16.py) took 0.51 of float32's time on an
Intel Xeon with AMX and 0.62 on an AMD EPYC with AVX-512 bf16, and decoding ran 1.6 and 1.16 times as fast.
On a CPU without bf16 units the same autocast was 25 times slower than float32, so `auto` stays float32
there.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # settings import this module, and must not load torch
    import torch

MixedPrecision = Literal["auto", "no", "bf16"]


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 matrix products are known to beat float32 on this device."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return _cpu_has_bf16_units() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def _cpu_has_bf16_units() -> bool:
    import torch

    # Private helpers of torch.cpu (present in 2.x): AMX tiles, or AVX-512's bf16 dot products.
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def uses_bf16(setting: MixedPrecision, device: torch.device) -> bool:
    """The setting resolved for a device: `bf16` always, `no` never, `auto` where `fast_bf16` says so."""
    if setting == "auto":
        return fast_bf16(device)
    return setting == "bf16"


def bf16_autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast on `device` when enabled; otherwise a block that changes nothing."""
    if not enabled:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16)


MIXED_PRECISION_HELP = (
    "Arithmetic of the policy's forward and backward passes: 'bf16' (bfloat16 matrix products under "
    "autocast, float32 weights and optimizer state), 'no' (float32 throughout), or 'auto': bf16 on a GPU "
    "that supports it or a CPU with bf16 units (Intel AMX, AVX-512 bf16), float32 elsewhere. On 2-core test "
    "machines bf16 took the update to 0.5-0.75 of float32's time; its log-probs differ from float32's by "
    "about 0.05 nats a token."
)
