"""Does bf16 autocast speed up the policy's forward and backward on this CPU? Only where it has bf16 units.

The update of every policy algorithm is one forward and one backward of the default policy
(SmolLM2-135M-Instruct) over a batch of sequences. Same model, same random batch (8 sequences of 74
tokens: the size of `policy_step.py`'s batch, 42-token prompts and 32-token completions), float32 against
`torch.autocast("cpu", dtype=torch.bfloat16)`, alternating in one process:

    python benchmarks/cpu_bf16.py --repeats 3

On a 2-core Intel Xeon with AMX tiles (amx_bf16 in /proc/cpuinfo; PyTorch reports `CPU capability usage:
AVX512`), at a load average of about 1: forward and backward float32 2.34 s, bf16 autocast 1.19 s (ratio
0.51); forward alone 0.52 and 0.26 s (0.49). A 512 x 576 x 1536 product ran at 0.31 TFLOP/s in float32
and 2.7 in bf16. This is why `mixed_precision = "auto"` (apprentice.precision) picks bf16 on such a CPU.

On a 2-core AMD EPYC (Zen 4: avx512_bf16 but no AMX in /proc/cpuinfo), at a load average of about 1.3:
forward and backward float32 4.98 s, bf16 autocast 3.07 s (0.62); forward alone 1.49 and 0.72 s (0.48).
`auto` picks bf16 there too.

On the 2-core machine of earlier measurements, whose CPU flags showed AVX2 and FMA but no AVX-512 and no
bf16 instructions (`torch.ops.mkldnn._is_mkldnn_bf16_supported()` False), bf16 products fell back to a
slow path: seconds of one forward and backward, float32 6.76, 5.74, 5.13, 6.26; bf16 autocast 152.7, 151.3,
about 25 times slower; one 2880 x 576 x 1536 product took 74 ms in float32 and 4.1 s in bf16. There
`auto` stays float32.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import AutoModelForCausalLM

from apprentice.models import resolve_model


def forward_backward_seconds(model: torch.nn.Module, input_ids: torch.Tensor, *, bf16: bool) -> float:
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=input_ids).logits
        loss = logits.float().log_softmax(-1).mean()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def forward_seconds(model: torch.nn.Module, input_ids: torch.Tensor, *, bf16: bool) -> float:
    started = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model(input_ids=input_ids)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=74)
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds of each setting")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(args.model), dtype=torch.float32)
    input_ids = torch.randint(0, model.config.vocab_size, (args.batch, args.tokens))
    times: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.repeats):
        for bf16 in (False, True):
            model.train()
            times.setdefault(("forward+backward", bf16), []).append(
                forward_backward_seconds(model, input_ids, bf16=bf16)
            )
            model.eval()
            times.setdefault(("forward", bf16), []).append(forward_seconds(model, input_ids, bf16=bf16))
    print(f"threads {torch.get_num_threads()}, batch {args.batch} x {args.tokens} tokens")
    for phase in ("forward+backward", "forward"):
        float32, bf16 = statistics.median(times[(phase, False)]), statistics.median(times[(phase, True)])
        print(f"{phase}: float32 {float32:.2f} s, bf16 autocast {bf16:.2f} s, ratio bf16/float32 {bf16 / float32:.2f}")


if __name__ == "__main__":
    main()
