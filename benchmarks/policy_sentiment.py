"""GRPO and PPO on the real default model against a sentiment reward (VADER's compound score, in [-1, 1]).

The bundled prompts are split: the last `--held-out` are never trained on. Before and after training
the script samples one completion per held-out prompt (same temperature as training, fixed seed) and
reports the mean compound score, and the KL from the starting policy in nats per completion (k1 summed
over the completion's tokens, on the trained policy's own samples). Training stops after `--minutes`.
The goal from the issue: the held-out mean rises by >= 0.3 with KL < 10 nats within 20 minutes.

    python benchmarks/policy_sentiment.py --algo grpo --minutes 20
    python benchmarks/policy_sentiment.py --algo ppo --minutes 20

The training curve (reward, KL per step) is in RUN/metrics.jsonl; a summary every tenth of the run is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from apprentice.demo import bundled_prompts_path
from apprentice.importing import read_import_file
from apprentice.models import load_policy, resolve_model
from apprentice.rl.config import GRPOConfig, PPOConfig
from apprentice.rl.core import kl_estimate, masked_sum
from apprentice.rl.metrics import read_metrics
from apprentice.rl.rewards import CallableReward, vader_sentiment
from apprentice.rl.rollout import forward_completions, sample_rollout


@torch.no_grad()
def evaluate(
    policy: Any, reference: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], args: argparse.Namespace
) -> dict[str, float]:
    torch.manual_seed(12345)
    scores, kls, lengths = [], [], []
    for start in range(0, len(prompts), 16):
        rollout = sample_rollout(
            policy,
            tokenizer,
            prompts[start : start + 16],
            completions_per_prompt=1,
            max_new_tokens=args.new_tokens,
            temperature=args.temperature,
        )
        scores += vader_sentiment([], rollout.completion_texts)
        logprobs = forward_completions(policy, rollout, args.temperature).logprobs
        ref_logprobs = forward_completions(reference, rollout, args.temperature).logprobs
        kl = masked_sum(kl_estimate(logprobs, ref_logprobs, "k1"), rollout.completion_mask, dim=1)
        kls += kl.tolist()
        lengths += rollout.completion_lengths.tolist()
    return {"reward": statistics.mean(scores), "kl": statistics.mean(kls), "length": statistics.mean(lengths)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["grpo", "ppo"], required=True)
    parser.add_argument("--model", default="default")
    parser.add_argument("--minutes", type=float, default=20.0, help="training time budget")
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--held-out", type=int, default=48)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--kl-coef", type=float, default=None)
    parser.add_argument("--gae-lambda", type=float, default=1.0, help="PPO: GAE lambda")
    parser.add_argument("--value-lr-scale", type=float, default=1.0, help="PPO: value head's learning-rate factor")
    parser.add_argument("--kl-target", type=float, default=6.0, help="PPO: adaptive KL target in nats (0: fixed)")
    parser.add_argument(
        "--kl-budget", type=float, default=None, help="stop once the mean KL of the last 5 steps passes this (nats)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    model_path = resolve_model(args.model)
    records = read_import_file(bundled_prompts_path()).prompts
    train_prompts = [record.messages for record in records[: -args.held_out]]
    held_out = [record.messages for record in records[-args.held_out :]]
    out = args.out or Path("runs") / f"bench-sentiment-{args.algo}"
    common: dict[str, Any] = {
        "output_dir": out,
        "steps": args.max_steps,
        "max_new_tokens": args.new_tokens,
        "temperature": args.temperature,
        "time_limit_minutes": args.minutes,
        "checkpoint_every": 10_000,
        "lr_schedule": "constant",
        "seed": args.seed,
        "sample_every": 10,
        "kl_budget": args.kl_budget,
    }
    config: GRPOConfig | PPOConfig
    if args.algo == "grpo":
        config = GRPOConfig(
            **common,
            prompts_per_step=4,
            completions_per_prompt=4,
            learning_rate=args.learning_rate or 5e-6,
            kl_coef=0.02 if args.kl_coef is None else args.kl_coef,
        )
    else:
        config = PPOConfig(
            **common,
            prompts_per_step=16,
            minibatches=2,
            ppo_epochs=2,
            learning_rate=args.learning_rate or 5e-6,
            kl_coef=0.05 if args.kl_coef is None else args.kl_coef,
            # InstructGPT's adaptive controller, steering the sequence KL towards the target; the horizon is
            # scaled to this short run (about 20 completions' worth of steps per 1% change at full error).
            # A critic learned from scratch is near useless in a 20-minute run; with lambda 1 the advantage is
            # the (whitened) return minus the value, so the end-of-text score still reaches every token.
            lam=args.gae_lambda,
            value_lr_scale=args.value_lr_scale,
            adaptive_kl=bool(args.kl_target),
            kl_target=args.kl_target or 6.0,
            kl_horizon=20 * 16,
            no_eos_penalty=None,  # 32 tokens end most answers mid-sentence; score them anyway
        )
    reference, tokenizer = load_policy(model_path)
    print(f"{args.algo} on {model_path}; {len(train_prompts)} training and {len(held_out)} held-out prompts")
    before = evaluate(reference, reference, tokenizer, held_out, args)
    print(f"before: held-out reward {before['reward']:.3f}, length {before['length']:.1f}")

    started = time.monotonic()
    reward = CallableReward(vader_sentiment, "vader")
    if isinstance(config, GRPOConfig):
        from apprentice.rl.grpo import train_grpo

        result = train_grpo(config, model_path, train_prompts, reward)
    else:
        from apprentice.rl.ppo import train_ppo

        result = train_ppo(config, model_path, train_prompts, reward)
    minutes = (time.monotonic() - started) / 60
    trained, _ = load_policy(str(result.policy_path))
    after = evaluate(trained, reference, tokenizer, held_out, args)
    rows = read_metrics(out)
    print(f"trained {len(rows)} steps in {minutes:.1f} min (including model loading)")
    print("training curve (step: reward, kl):")
    for row in [*rows[:: max(1, len(rows) // 10)], rows[-1]]:
        print(f"  {row['step']:4d}: {row['reward']:.3f}, {row.get('kl', float('nan')):.2f}")
    gain = after["reward"] - before["reward"]
    verdict = "met" if gain >= 0.3 and after["kl"] < 10 else "not met"
    print(
        f"after: held-out reward {after['reward']:.3f} ({gain:+.3f}), KL {after['kl']:.2f} nats, "
        f"length {after['length']:.1f}; goal: gain >= 0.3 with KL < 10 -> {verdict}"
    )
    summary = {"algo": args.algo, "before": before, "after": after, "steps": len(rows), "minutes": minutes}
    (out / "sentiment_result.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
