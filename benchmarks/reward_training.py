"""Reward-training throughput: our trainer against TRL's RewardTrainer, side by side.

Same backbone (all-MiniLM-L6-v2 by default), same pairs (HH-RLHF harmless-base, tokenized once by
our encoder at --max-length so both trainers see identical token ids), same batch size, one epoch,
same learning rate, float32 in both (TRL would default to bf16 autocast, slow on most CPUs),
dropout off in both (TRL's default). Each trainer runs --repeats times, alternating, in this one
process (same threads); the figure is training pairs per second of the training loop: TRL's own
`train_runtime`, and our loop's time (which includes writing its end-of-epoch checkpoint, while
TRL saves nothing here).

    python benchmarks/reward_training.py                 # 96 pairs, batch 8, max length 256
    python benchmarks/reward_training.py --pairs 256 --repeats 3

Needs trl==1.16.0 (a benchmark-only dependency).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from apprentice.importing import read_import_file
from apprentice.models import resolve_model
from apprentice.reward.data import pairs_from_records, subsample
from apprentice.reward.model import RewardModel
from apprentice.reward.train import RewardTrainingConfig, train_reward_model
from shared_data import HH_RLHF_HARMLESS

print = functools.partial(print, flush=True)  # progress lines must show up when piped to a file
DATA = HH_RLHF_HARMLESS


def run_ours(data: Any, args: argparse.Namespace, folder: Path) -> float:
    config = RewardTrainingConfig(
        model=args.backbone,
        max_length=args.max_length,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        epochs=1,
        checkpoint_every=1_000_000,
        normalization_samples=2,
    )
    result = train_reward_model(data, config, folder, resume=False, show_progress=False)
    return len(data.pairs) / result.train_seconds


def run_trl(rows: list[dict[str, list[int]]], args: argparse.Namespace, folder: Path) -> float:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    location = resolve_model(args.backbone)
    tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(location, num_labels=1, local_files_only=True)
    config = RewardConfig(
        output_dir=str(folder),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=1,
        learning_rate=args.learning_rate,
        max_length=args.max_length,
        save_strategy="no",
        report_to=[],
        logging_steps=10,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=True,
        bf16=False,  # TRL defaults to bf16 autocast; ours trains in float32, so compare like with like
    )
    trainer = RewardTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    output = trainer.train()
    return len(rows) / float(output.metrics["train_runtime"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = subsample(pairs_from_records(read_import_file(args.data).pairs), limit=args.pairs, seed=0)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.backbone), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    reward_model = RewardModel(None, tokenizer, max_length=args.max_length)
    rows = [
        {
            "chosen_ids": reward_model.encode(pair.prompt, pair.chosen).input_ids,
            "rejected_ids": reward_model.encode(pair.prompt, pair.rejected).input_ids,
        }
        for pair in data.pairs
    ]
    tokens = sum(len(row["chosen_ids"]) + len(row["rejected_ids"]) for row in rows)
    shape = f"batch {args.batch_size}, max length {args.max_length}"
    print(f"{len(rows)} pairs, {tokens / len(rows):.0f} tokens per pair, {shape}")
    ours: list[float] = []
    trl: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            started = time.perf_counter()
            ours.append(run_ours(data, args, Path(scratch) / f"ours-{repeat}"))
            print(f"ours  run {repeat + 1}: {ours[-1]:.2f} pairs/s ({time.perf_counter() - started:.0f} s with setup)")
            started = time.perf_counter()
            trl.append(run_trl(rows, args, Path(scratch) / f"trl-{repeat}"))
            print(f"TRL   run {repeat + 1}: {trl[-1]:.2f} pairs/s ({time.perf_counter() - started:.0f} s with setup)")
    summary = {
        "backbone": args.backbone,
        "pairs": len(rows),
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "threads": torch.get_num_threads(),
        "ours_pairs_per_second": ours,
        "trl_pairs_per_second": trl,
        "ratio_of_medians": statistics.median(ours) / statistics.median(trl),
    }
    print(json.dumps(summary, indent=2))
    print(
        f"\nours {statistics.median(ours):.2f} vs TRL RewardTrainer {statistics.median(trl):.2f} pairs/s "
        f"(median of {args.repeats}): {summary['ratio_of_medians']:.2f}x"
    )


if __name__ == "__main__":
    main()
