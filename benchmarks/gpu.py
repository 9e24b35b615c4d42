"""The GPU path, measured: generation tokens/s (ours against `generate`) and a GRPO step (ours against TRL).

On one CUDA device, for two models: the default policy (SmolLM2-135M-Instruct) and a 0.5B-shaped Llama
with random weights (Qwen2.5-0.5B's widths: hidden 896, 24 layers, 14 heads, 2 key-value heads, MLP
4864; the default model's tokenizer and vocabulary):

- generation: bfloat16 weights, the bundled prompts as batches of 1, 8 and 64 rows, 64 new tokens at
  temperature 1; `decoding.decode` against `model.generate` on the same inputs and seed, tokens counted up
  to and including the stop token (a random model seldom stops, so its rows run to the limit);
- a GRPO step: benchmarks/policy_step.py's two sides (2 prompts x 4 completions, 32 new tokens, float32,
  no reference), 1 warm-up and 3 timed steps each.

It prints one table. Without CUDA it says so and exits with status 2; the project never needs a GPU.

    .venv/bin/python benchmarks/gpu.py
    .venv/bin/python benchmarks/gpu.py --skip-grpo      # generation only
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apprentice.decoding import Sampling, decode
from apprentice.demo import bundled_prompts_path
from apprentice.generation import _completion_length
from apprentice.importing import read_import_file
from apprentice.models import resolve_model
from apprentice.tokens import encode_prompts, left_pad, pad_token_id, stop_token_ids

BATCHES = (1, 8, 64)
NEW_TOKENS = 64


def random_half_billion(tokenizer_folder: str, out: Path) -> str:
    """A 0.5B-shaped Llama with random weights and the default model's tokenizer, saved as a model folder."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder, local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    folder = out / "random-0.5b"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def generation_rates(folder: str, prompts: list[list[dict[str, str]]]) -> dict[int, tuple[float, float]]:
    """Tokens/s of (ours, generate) at each batch size, bfloat16 on the GPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.bfloat16).cuda().eval()
    pad_id = pad_token_id(tokenizer)
    stop_ids = stop_token_ids(model, tokenizer)
    encoded = encode_prompts(tokenizer, prompts, max_prompt_tokens=256)
    sampling = Sampling(NEW_TOKENS, temperature=1.0)
    rates: dict[int, tuple[float, float]] = {}

    def count(completions: torch.Tensor) -> int:
        return sum(_completion_length(row, set(stop_ids))[0] for row in completions.tolist())

    def ours(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return decode(model, input_ids, mask, sampling, stop_ids=stop_ids, pad_id=pad_id)

    def theirs(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        output = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            top_k=None,
            max_new_tokens=NEW_TOKENS,
            pad_token_id=pad_id,
            eos_token_id=stop_ids,
        )
        return output[:, input_ids.shape[1] :]

    for size in BATCHES:
        rows = [encoded[index % len(encoded)] for index in range(size)]
        input_ids, mask = left_pad(rows, pad_id)
        input_ids, mask = input_ids.cuda(), mask.cuda()
        measured: dict[str, list[float]] = {"ours": [], "generate": []}
        with torch.inference_mode():
            for side in (ours, theirs):  # warm-up: kernels, allocator
                side(input_ids, mask)
            for round_index in range(3):
                for name, side in (("ours", ours), ("generate", theirs)):
                    torch.manual_seed(round_index)
                    torch.cuda.synchronize()
                    started = time.perf_counter()
                    completions = side(input_ids, mask)
                    torch.cuda.synchronize()
                    measured[name].append(count(completions) / (time.perf_counter() - started))
        rates[size] = (sum(measured["ours"]) / 3, sum(measured["generate"]) / 3)
    torch.cuda.empty_cache()
    return rates


def grpo_seconds(folder: str, prompts: list[str], out: Path) -> tuple[float, float]:
    """Seconds per GRPO step of (ours, TRL), policy_step.py's settings."""
    import statistics

    from policy_step import apprentice_step_times, trl_step_times

    args = argparse.Namespace(
        prompts=2, completions=4, new_tokens=32, steps=3, warmup=1, seed=0, kl_coef=0.0, micro_batch_size=8
    )
    ours, _ = apprentice_step_times(folder, prompts, args, out / "ours")
    theirs, _ = trl_step_times(folder, prompts, args, out / "trl")
    torch.cuda.empty_cache()
    return statistics.mean(ours), statistics.mean(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-grpo", action="store_true", help="generation only")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py measures the CUDA path and this machine has no CUDA device; nothing run.")
        sys.exit(2)
    default = resolve_model("default")
    texts = [record.text for record in read_import_file(bundled_prompts_path()).prompts][:64]
    messages = [[{"role": "user", "content": text}] for text in texts]
    table: list[tuple[str, str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        models = {"SmolLM2-135M-Instruct": default, "random 0.5B (Llama shape)": random_half_billion(default, out)}
        for label, folder in models.items():
            for size, (ours, theirs) in generation_rates(folder, messages).items():
                table.append(
                    (
                        label,
                        f"generate bf16, batch {size}",
                        f"{ours:.0f} tok/s",
                        f"{theirs:.0f} tok/s",
                        f"{ours / theirs:.2f}x",
                    )
                )
                print(table[-1], flush=True)
            if not args.skip_grpo:
                (out / label.split()[0]).mkdir(exist_ok=True)
                ours_s, trl_s = grpo_seconds(folder, texts, out / label.split()[0])
                table.append(
                    (label, "GRPO step fp32, 2x4x32", f"{ours_s:.2f} s", f"{trl_s:.2f} s", f"{ours_s / trl_s:.2f}")
                )
                print(table[-1], flush=True)
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}")
    headers = ("model", "measure", "ours", "baseline", "ratio")
    widths = [max(len(line[column]) for line in [headers, *table]) for column in range(len(headers))]
    for line in [headers, tuple("-" * width for width in widths), *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


if __name__ == "__main__":
    main()
