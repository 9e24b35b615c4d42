"""Tokens per second of Apprentice's candidate generation against Hugging Face `generate`, batched the same way.

Both sides get the same model, prompts, chat template, batches (prompts sorted by length, left-padded,
`--batch-size` prompts x K candidates per forward), sampling settings (temperature, top-p, max new tokens,
no top-k), seeds and stop tokens, and count new tokens the same way (up to and including the stop token).
The baseline is `model.generate(..., num_return_sequences=K)` on each batch; ours is
`generation.generate_candidates`, which runs `decoding.decode` (each prompt's pass once for its K rows,
oneDNN's prepacked linears, a KV cache written in place, top-p on a shortlist, finished rows leave the
batch). They run alternately in this one process, several rounds, so that the machine's noise falls on
both; the ratio is what to read. `--dtype bfloat16` runs both sides on bfloat16 weights; `--dtype mixed`
runs ours as the loop does with `mixed_precision` resolved to bf16 (float32 weights, bf16 products through
bf16 copies of the linear weights) against `generate` on a bf16 copy of the model, its fastest on a CPU
with bf16 units.

    .venv/bin/python benchmarks/generation.py --prompts 24 --rounds 2
    .venv/bin/python benchmarks/generation.py --prompts 24 --rounds 2 --dtype mixed

Figures are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from typing import Any

import torch

from apprentice.demo import bundled_prompts_path
from apprentice.generation import PromptToAnswer, _completion_length, generate_candidates
from apprentice.importing import read_import_file
from apprentice.models import load_policy
from apprentice.settings import GenerationSection
from apprentice.tokens import encode_prompts, left_pad, pad_token_id, stop_token_ids


def hf_generate_batched(
    model: Any, tokenizer: Any, prompts: list[PromptToAnswer], settings: GenerationSection
) -> tuple[int, float]:
    """The same batches as generate_candidates, each one `model.generate` call: what a careful user writes."""
    encoded = encode_prompts(tokenizer, [prompt.messages for prompt in prompts], max_prompt_tokens=1 << 30)
    order = sorted(range(len(prompts)), key=lambda index: (-len(encoded[index]), prompts[index].prompt_id))
    pad_id = pad_token_id(tokenizer)
    stop_ids = set(stop_token_ids(model, tokenizer))
    new_tokens = 0
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(order), settings.batch_size):
            indices = order[start : start + settings.batch_size]
            input_ids, attention_mask = left_pad([encoded[index] for index in indices], pad_id)
            torch.manual_seed(settings.seed * 1_000_003 + prompts[indices[0]].prompt_id)
            output = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                do_sample=True,
                temperature=settings.temperature,
                top_p=settings.top_p,
                top_k=None,
                max_new_tokens=settings.max_new_tokens,
                num_return_sequences=settings.candidates,
                pad_token_id=pad_id,
                eos_token_id=sorted(stop_ids),
            )
            for row in output[:, input_ids.shape[1] :].tolist():
                new_tokens += _completion_length(row, stop_ids)[0]
    return new_tokens, time.perf_counter() - started


def compare(
    model: Any,
    tokenizer: Any,
    prompts: list[PromptToAnswer],
    settings: GenerationSection,
    rounds: int,
    *,
    baseline_model: Any = None,
    bf16: bool = False,
) -> dict[str, float]:
    """Mean tokens/s of each side over `rounds` alternating rounds, and the ratio ours / generate.

    `generate` runs on `baseline_model` when given (a bf16 copy, against our `bf16` products)."""
    ours: list[float] = []
    baseline: list[float] = []
    for round_index in range(rounds):
        result = generate_candidates(model, tokenizer, prompts, settings, show_progress=False, bf16=bf16)
        ours.append(result.tokens_per_second)
        tokens, seconds = hf_generate_batched(baseline_model or model, tokenizer, prompts, settings)
        baseline.append(tokens / seconds)
        print(f"round {round_index + 1}: apprentice {ours[-1]:.1f} tok/s, generate {baseline[-1]:.1f} tok/s")
    mean_ours, mean_baseline = sum(ours) / len(ours), sum(baseline) / len(baseline)
    return {
        "apprentice_tokens_per_second": round(mean_ours, 2),
        "generate_tokens_per_second": round(mean_baseline, 2),
        "speedup": round(mean_ours / mean_baseline, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per batch (x candidates rows)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16", "mixed"],
        default="float32",
        help="mixed: ours on float32 weights with bf16 products (mixed_precision 'bf16'), generate on a bf16 copy",
    )
    args = parser.parse_args()

    model, tokenizer = load_policy(args.model)
    baseline_model = None
    if args.dtype == "mixed":
        baseline_model = copy.deepcopy(model).to(torch.bfloat16)
    else:
        model.to(getattr(torch, args.dtype))
    records = read_import_file(bundled_prompts_path()).prompts[: args.prompts]
    prompts = [PromptToAnswer(index + 1, record.messages) for index, record in enumerate(records)]
    settings = GenerationSection(
        candidates=args.candidates, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=0
    )
    summary: dict[str, Any] = {
        "model": args.model,
        "dtype": args.dtype,
        "prompts": len(prompts),
        "candidates": args.candidates,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
    }
    summary |= compare(
        model, tokenizer, prompts, settings, args.rounds, baseline_model=baseline_model, bf16=args.dtype == "mixed"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
