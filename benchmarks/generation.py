"""Tokens per second of Apprentice's candidate generation against a plain `model.generate` loop.

Both sides use the same model, prompts, chat template and sampling settings (K candidates per prompt
via num_return_sequences, temperature, top-p, max new tokens) and count new tokens the same way (up
to and including EOS). They run alternately in this one process, several rounds, so that the
machine's noise falls on both; the ratio is what to read.

    .venv/bin/python benchmarks/generation.py --prompts 24 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from apprentice.demo import bundled_prompts_path
from apprentice.generation import PromptToAnswer, _completion_length, generate_candidates
from apprentice.importing import read_import_file
from apprentice.models import load_policy
from apprentice.rl.rollout import stop_token_ids
from apprentice.settings import GenerationSection


def plain_loop(
    model: object, tokenizer: object, prompts: list[PromptToAnswer], settings: GenerationSection
) -> tuple[int, float]:
    """What a user writes without Apprentice: one prompt at a time, K samples each."""
    stop_ids = set(stop_token_ids(model, tokenizer))
    new_tokens = 0
    started = time.perf_counter()
    with torch.inference_mode():
        for prompt in prompts:
            inputs = tokenizer.apply_chat_template(  # type: ignore[attr-defined]
                prompt.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            torch.manual_seed(settings.seed + prompt.prompt_id)
            output = model.generate(  # type: ignore[attr-defined]
                **inputs,
                do_sample=True,
                temperature=settings.temperature,
                top_p=settings.top_p,
                max_new_tokens=settings.max_new_tokens,
                num_return_sequences=settings.candidates,
                pad_token_id=tokenizer.pad_token_id,  # type: ignore[attr-defined]
            )
            for row in output[:, inputs["input_ids"].shape[1] :].tolist():
                new_tokens += _completion_length(row, stop_ids)[0]
    return new_tokens, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    model, tokenizer = load_policy(args.model)
    records = read_import_file(bundled_prompts_path()).prompts[: args.prompts]
    prompts = [PromptToAnswer(index + 1, record.messages) for index, record in enumerate(records)]
    settings = GenerationSection(
        candidates=args.candidates, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=0
    )
    ours: list[float] = []
    plain: list[float] = []
    for round_index in range(args.rounds):
        result = generate_candidates(model, tokenizer, prompts, settings, show_progress=False)
        ours.append(result.tokens_per_second)
        tokens, seconds = plain_loop(model, tokenizer, prompts, settings)
        plain.append(tokens / seconds)
        print(f"round {round_index + 1}: apprentice {ours[-1]:.1f} tok/s, plain loop {plain[-1]:.1f} tok/s")
    summary = {
        "model": args.model,
        "prompts": len(prompts),
        "candidates": args.candidates,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "apprentice_tokens_per_second": round(sum(ours) / len(ours), 2),
        "plain_loop_tokens_per_second": round(sum(plain) / len(plain), 2),
    }
    summary["speedup"] = round(summary["apprentice_tokens_per_second"] / summary["plain_loop_tokens_per_second"], 2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
