"""Seconds per GRPO step: Apprentice's GRPO against TRL's GRPOTrainer, side by side in one process.

Same model (SmolLM2-135M-Instruct, the default policy), same prompts, 2 prompts x 4 completions,
32 new tokens at temperature 1, no reference model (beta 0), one optimizer step per generation,
the same VADER sentiment reward. Each side runs `--warmup` steps that are not timed, then `--steps`
timed ones; a step is generation + scoring + the update. Completion lengths differ between the two
(sampling), so the mean completion length of each side is printed beside its time.

    python benchmarks/policy_step.py                 # CPU
    python benchmarks/policy_step.py --steps 10      # more steps, steadier figures
    python benchmarks/policy_step.py --prompts 8 --new-tokens 64 --kl-coef 0.05 --micro-batch-size 4 \
        --lora-rank 16                               # the demo's step: a LoRA adapter, its reference pass

TRL is a dev dependency (`pip install -e '.[dev]'`).

The demo's LoRA step (the `--lora-rank 16` command above, `--steps 2 --warmup 1`, a slower AVX2 machine, fp32):
Apprentice 49.30 s a step (generate 16.42 s, reference log-probs 9.58 s, update 23.29 s), TRL with the same
peft adapter 89.29 s, ratio 0.55; 0.63 before the adapter's layers were packed for sampling.

Now (`--steps 5`, load average 1.6): Apprentice 10.07 s a step (generate 4.24 s, update 5.82 s), TRL 21.52 s:
ratio 0.47, within the goal of 0.5. Before the shared prompt pass and the faster decoding, on a quieter
day, `--steps 8`: Apprentice 9.18 s (generate 3.83 s, update 5.35 s), TRL 10.83 s, ratio 0.85. This day's
machine ran everything about twice as slowly: the code of before (`--only apprentice --steps 4`, from a
checkout of it) took 18.33 s a step against 10.55 s now, so read ratios from one run, never seconds from
two days. TRL's trainer leaves accelerate's process-wide state at bf16 mixed precision, and an
`Accelerator()` made after it in the same process inherits that: run `--only apprentice` for Apprentice's
own figure.

Where the step's time goes, before and after, one rollout of this benchmark's batch (2 prompts x 4
completions, 53-token prompts, 32-token completions) then torch.profiler over one forward and backward,
the same day, each checkout in turn: generation 7.67 -> 3.70 s; forward and backward 8.35 -> 5.10 s, of
which matrix products (aten::mm) 7.16 s (88% of the CPU time) -> 3.98 s (82%), attention 0.33 -> 0.15 s,
the rest elementwise ops. The update is matrix products, and it got faster by doing fewer of them: the 4
completions of a prompt share one pass over the prompt (`rollout._logits_with_shared_prompts`, tested
against the full pass's log-probs and gradients), so it runs 2 x 53 + 8 x 31 tokens instead of 8 x 85.
Generation got faster by the oneDNN kernels, the prompt's pass once for its 4 rows and the sampler
(`decoding.py`). What is left is dense float32 products at about 70 GFLOP/s, the rate this CPU reaches
(bf16 has no hardware path here: cpu_bf16.py).

The earlier 10% slowdown that came with the micro-batched update was not found before these changes
made it moot; the profile below is from that time.

Where the update's time goes (torch.profiler over one update of this benchmark's batch, 8 completions of
32 tokens after 42-token prompts, micro_batch_size 8, on the shared 2-core CPU under a load average of 4 to
14, so read shares, not seconds): with the unfused AdamW, of 45.6 s of CPU time, matrix products (aten::mm,
forward and backward) 35%, `Optimizer.step` (AdamW as a Python loop of about ten elementwise ops over each
of the 272 parameter tensors: mul_, lerp_, sqrt, addcdiv_, addcmul_, add_...) 23%, the rest elementwise
ops of the forward and backward (RMSNorm, SiLU, rotary), gradient clipping and the log-softmax. Phase
timings of the same update at load 11-14 (seconds of one update, two runs): forward 31.6 and 38.1, backward
70.0 and 52.8, clipping 5.9 and 6.6, AdamW 28.3 and 28.3. The optimizer is now one fused kernel per tensor
(`torch.optim.AdamW(fused=True)`, session.fused_adam_supported): one AdamW step over the default model's
135M parameters took 101-111 s as the loop and 18.6-26.5 s fused, alternating in one process at a load
average of 26 (4.7x; at the 23% share above, about a fifth off the update). The step's ratio to TRL has not
been re-measured on a quiet machine since; from the shares it should land near 0.9, not the 0.5 sought.
tests/test_rl_update.py checks the loss,
the clipped gradients and the parameters after the step against the unfused maths. The micro-batched update
does the same arithmetic as the whole-batch one it replaced (no old-policy pass with one epoch, one forward
and backward of the 8 completions, padded to the longest completion of the batch); the cause of the
10% slowdown that came with it is still not identified (not profiled side by side).

Memory of Apprentice's update against its micro-batch size (`micro_batch_size`, completions per
forward/backward; the update is the same), one process per setting since peak RSS is per process:

    for size in 32 8; do /usr/bin/time -v python benchmarks/policy_step.py --only apprentice --prompts 8 \
        --new-tokens 48 --kl-coef 0.04 --warmup 0 --steps 1 --micro-batch-size $size; done

On the 2-core CPU, quiet but for these runs (2 threads; SmolLM2-135M-Instruct, 8 prompts x 4 completions,
every completion 48 tokens at temperature 1, the reference model loaded for the KL; 2026-11-28), maximum
RSS and seconds of the update ("train" phase) of the step, runs in the order 32, 8, 8, 32, 16, 4, 32, 8:

    micro_batch_size 32 (the whole batch, as before): 8.22, 7.49, 8.19 GiB; 22.8, 22.8, 22.5 s
    micro_batch_size 16:                               6.24 GiB;             18.9 s
    micro_batch_size  8 (the default):                 4.20, 4.15, 4.24 GiB; 33.6 (a noisy first run), 19.9, 17.8 s
    micro_batch_size  4:                               3.45 GiB;             18.3 s

Smaller micro-batches were no slower here. Of the 3.45 GiB at size 4, about 2.7 GB are float32 copies of the
135M parameters that any size needs: policy, reference, gradient and Adam's two moments.

Since 2026-12-02 the sampling-time log-prob passes (old policy, reference) go in the same micro-batches.
Same command and machine, runs in the order 32, 8, 4, 8: 8.31, 4.10, 3.40, 4.09 GiB; the "logprobs" phase
3.88 s whole, 4.16 and 4.15 s at 8, 4.36 s at 4 (about 1% of the step). The peak barely moves here,
because it is in the update; the change matters where the whole batch's logits (B x T x vocabulary, 0.3 GB
for these 32 x 49 x 49,152) outgrow a micro-batch's update, with longer completions or larger batches.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from apprentice.demo import bundled_prompts_path
from apprentice.importing import read_import_file
from apprentice.models import resolve_model
from apprentice.precision import uses_bf16
from apprentice.process_memory import large_blocks_in_heap
from apprentice.rl.rewards import vader_sentiment


def device_of_this_process() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def trl_step_times(
    model_path: str, prompts: list[str], args: argparse.Namespace, out: Path
) -> tuple[list[float], float]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    times: list[float] = []
    lengths: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *_: Any, **__: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            times.append(time.perf_counter() - self.started)

        def on_log(
            self, _args: Any, _state: Any, _control: Any, logs: dict[str, float] | None = None, **__: Any
        ) -> None:
            if logs and "completions/mean_length" in logs:
                lengths.append(logs["completions/mean_length"])

    def reward(completions: list[Any], **_: Any) -> list[float]:
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        return vader_sentiment([], texts)

    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True, dtype=torch.float32)
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": text}]} for text in prompts])
    config = GRPOConfig(
        output_dir=str(out / "trl"),
        per_device_train_batch_size=args.prompts * args.completions,
        num_generations=args.completions,
        max_completion_length=args.new_tokens,
        temperature=1.0,
        beta=args.kl_coef,
        learning_rate=1e-6,
        max_steps=args.warmup + args.steps,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        bf16=uses_bf16(args.mixed_precision, device_of_this_process()),
        seed=args.seed,
        disable_dropout=True,
    )
    peft_config = None
    if args.lora_rank:
        from peft import LoraConfig

        # the adapter Apprentice trains: every linear layer, alpha 16, no dropout
        peft_config = LoraConfig(r=args.lora_rank, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear")
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.add_callback(StepTimer())
    trainer.train()
    mean_length = statistics.mean(lengths[args.warmup :]) if len(lengths) > args.warmup else float("nan")
    return times[args.warmup :], mean_length


def apprentice_step_times(
    model_path: str, prompts: list[str], args: argparse.Namespace, out: Path
) -> tuple[list[float], float]:
    from apprentice.rl.config import GRPOConfig
    from apprentice.rl.grpo import train_grpo
    from apprentice.rl.metrics import read_metrics
    from apprentice.rl.rewards import CallableReward

    config = GRPOConfig(
        output_dir=out / "apprentice",
        steps=args.warmup + args.steps,
        prompts_per_step=args.prompts,
        completions_per_prompt=args.completions,
        max_new_tokens=args.new_tokens,
        temperature=1.0,
        kl_coef=args.kl_coef,
        learning_rate=1e-6,
        checkpoint_every=10_000,
        tensorboard=False,
        seed=args.seed,
        micro_batch_size=args.micro_batch_size,
        mixed_precision=args.mixed_precision,
        lora_rank=args.lora_rank,
    )
    messages = [[{"role": "user", "content": text}] for text in prompts]
    train_grpo(config, model_path, messages, CallableReward(vader_sentiment, "vader"), show_progress=False)
    rows = read_metrics(config.output_dir)[args.warmup :]
    phases = ("time/generate", "time/score", "time/logprobs", "time/train")
    shown = ", ".join(
        f"{phase.removeprefix('time/')} {statistics.mean(row.get(phase, 0.0) for row in rows):.2f}" for phase in phases
    )
    print(f"apprentice seconds per phase (micro_batch_size {args.micro_batch_size}): {shown}")
    return [sum(row.get(phase, 0.0) for phase in phases) for row in rows], statistics.mean(r["length"] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--prompts", type=int, default=2, help="prompts per step")
    parser.add_argument("--completions", type=int, default=4, help="completions per prompt")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["trl", "apprentice"], default=None)
    parser.add_argument("--kl-coef", type=float, default=0.0, help="KL weight (0: no reference model), both sides")
    parser.add_argument(
        "--micro-batch-size", type=int, default=8, help="Apprentice: completions per forward/backward of the update"
    )
    parser.add_argument(
        "--lora-rank",
        type=int,
        default=0,
        help="both sides: train a LoRA adapter of this rank on every linear layer (0: the whole model); with "
        "--kl-coef the reference is the adapter switched off on both",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=["auto", "no", "bf16"],
        default="auto",
        help="both sides: bf16 products with float32 weights (TRL's bf16=True), or float32; auto: bf16 where "
        "the hardware has fast bf16 (apprentice.precision)",
    )
    parser.add_argument(
        "--heap-for-both",
        action="store_true",
        help="give TRL's side the allocator setting our training runs make (process_memory."
        "large_blocks_in_heap) while it runs; otherwise TRL runs on glibc's defaults, as its users run it",
    )
    args = parser.parse_args()
    model_path = resolve_model(args.model)
    prompts = [record.text for record in read_import_file(bundled_prompts_path()).prompts][:64]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    shape = f"{args.prompts} prompts x {args.completions} completions, {args.new_tokens} new tokens"
    shape += f", LoRA rank {args.lora_rank}" if args.lora_rank else ", the whole model"
    print(f"model {model_path}; {shape}")
    bf16 = uses_bf16(args.mixed_precision, device_of_this_process())
    print(f"device {device}; {args.warmup} warm-up + {args.steps} timed steps per side; bf16 {bf16}")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for side, measure in (("trl", trl_step_times), ("apprentice", apprentice_step_times)):
            if args.only and side != args.only:
                continue
            # TRL's side under the allocator setting our training runs enter while they step, when asked
            same_heap = args.heap_for_both and side == "trl"
            with large_blocks_in_heap() if same_heap else contextlib.nullcontext():
                times, length = measure(model_path, prompts, args, Path(folder))
            results[side] = {"seconds_per_step": statistics.mean(times), "min": min(times), "mean_length": length}
            seconds = statistics.mean(times)
            print(f"{side:>10}: {seconds:6.2f} s/step (min {min(times):.2f}), mean completion {length:.1f} tokens")
    if len(results) == 2:
        ratio = results["apprentice"]["seconds_per_step"] / results["trl"]["seconds_per_step"]
        print(f"ratio apprentice / trl: {ratio:.2f} (goal <= 0.5)")
        results["ratio"] = {"apprentice_over_trl": ratio}
    # The process's peak resident memory so far (Linux reports KiB): what /usr/bin/time -v calls maximum RSS.
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS of this process {peak_gib:.2f} GiB")
    results["process"] = {"peak_rss_gib": peak_gib}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
