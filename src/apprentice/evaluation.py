"""Did the policy really improve? Scores of a policy's answers to held-out prompts.

For each policy: sampled answers to the held-out prompts, their reward-model score (the proxy), their
gold-oracle score when the annotators are simulated, their length, and the policy's KL divergence
from the base policy, estimated on its own samples as the mean over sequences of
sum_t log pi(y_t | ...) - log pi_base(y_t | ...) (both at the sampling temperature). Win rates compare
two policies' answers prompt by prompt, ties counting half, with a bootstrap interval over prompts (the
answers to one prompt share it, so they are not independent samples).
Tracking proxy and gold against KL shows over-optimization (Gao, Schulman and Hilton 2022): the
proxy keeps rising while the gold score peaks and falls.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from apprentice.files import write_jsonl_atomically
from apprentice.precision import MixedPrecision, bf16_autocast, uses_bf16
from apprentice.rates import cluster_bootstrap_mean, per_prompt_means, wilson_interval
from apprentice.store.records import Message

Scorer = Callable[[Sequence[list[Message]], Sequence[str]], list[float]]


@dataclass(frozen=True)
class PolicySamples:
    """One policy's answers to the held-out prompts (completions_per_prompt per prompt, grouped by prompt)."""

    policy: str
    prompts: list[list[Message]]
    completions: list[str]
    lengths: list[int]  # tokens
    kl_from_base: float

    def answer_prompts(self) -> list[str]:
        """The prompt of each answer as a key that groups a prompt's answers (its messages are unhashable)."""
        return [json.dumps(messages, sort_keys=True) for messages in self.prompts]


@dataclass(frozen=True)
class PolicyScores:
    policy: str
    reward_mean: float | None
    gold_mean: float | None
    length_mean: float
    kl_from_base: float
    rewards: list[float]
    golds: list[float]


@dataclass(frozen=True)
class WinRate:
    wins: float  # ties count half
    comparisons: int
    rate: float
    low: float
    high: float
    prompts: int  # the prompts the comparisons were drawn from


@dataclass(frozen=True)
class MeanGain:
    """A mean difference between two policies' paired scores, with its 95% interval over prompts."""

    mean: float
    low: float
    high: float
    prompts: int


def sample_policy(
    policy_path: str,
    base_path: str,
    prompts: Sequence[list[Message]],
    *,
    completions_per_prompt: int = 2,
    max_new_tokens: int = 48,
    temperature: float = 0.7,
    seed: int = 0,
    batch_size: int = 8,
    mixed_precision: MixedPrecision = "no",
) -> PolicySamples:
    """Sample answers from the policy and estimate its KL from the base on those samples.

    The base is loaded only once the policy has answered everything and is gone, so one model's weights
    are held at a time. Both models compute with the same `mixed_precision`."""
    from apprentice.models import load_policy
    from apprentice.process_memory import release_freed_memory
    from apprentice.rl.rollout import Rollout, forward_completions, sample_rollout

    model, tokenizer = load_policy(policy_path)
    bf16 = uses_bf16(mixed_precision, model.device)
    same_as_base = Path(policy_path).resolve() == Path(base_path).resolve() if Path(policy_path).exists() else False
    needs_kl = not same_as_base and policy_path != base_path
    rollouts: list[Rollout] = []
    own_logprobs: list[torch.Tensor] = []
    torch.manual_seed(seed)
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            rollout = sample_rollout(
                model,
                tokenizer,
                list(prompts[start : start + batch_size]),
                completions_per_prompt=completions_per_prompt,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                bf16=bf16,
            )
            rollouts.append(rollout)
            if needs_kl:
                with bf16_autocast(model.device, bf16):
                    own_logprobs.append(forward_completions(model, rollout, temperature).logprobs)
            release_freed_memory()  # each batch's logits and caches, before the next batch (process_memory)
        del model
        kl_per_sequence: list[float] = []  # stays empty for the base itself: kl_from_base is then 0
        if needs_kl:
            base, _ = load_policy(base_path)
            for rollout, own in zip(rollouts, own_logprobs, strict=True):
                with bf16_autocast(base.device, bf16):
                    reference = forward_completions(base, rollout, temperature).logprobs
                kl_per_sequence += ((own - reference) * rollout.completion_mask).sum(dim=1).tolist()
    completions = [text for rollout in rollouts for text in rollout.completion_texts]
    lengths = [int(length) for rollout in rollouts for length in rollout.completion_lengths.tolist()]
    repeated = [list(prompt) for prompt in prompts for _ in range(completions_per_prompt)]
    return PolicySamples(
        policy=policy_path,
        prompts=repeated,
        completions=completions,
        lengths=lengths,
        kl_from_base=float(statistics.fmean(kl_per_sequence)) if kl_per_sequence else 0.0,
    )


def score_samples(samples: PolicySamples, *, reward: Scorer | None, gold: Scorer | None) -> PolicyScores:
    rewards = reward(samples.prompts, samples.completions) if reward is not None else []
    golds = gold(samples.prompts, samples.completions) if gold is not None else []
    return PolicyScores(
        policy=samples.policy,
        reward_mean=float(statistics.fmean(rewards)) if rewards else None,
        gold_mean=float(statistics.fmean(golds)) if golds else None,
        length_mean=float(statistics.fmean(samples.lengths)) if samples.lengths else 0.0,
        kl_from_base=samples.kl_from_base,
        rewards=[float(value) for value in rewards],
        golds=[float(value) for value in golds],
    )


def _check_paired(challenger: Sequence[float], incumbent: Sequence[float]) -> None:
    if len(challenger) != len(incumbent):
        raise ValueError(f"paired scores needed, got {len(challenger)} and {len(incumbent)}")
    if not challenger:
        raise ValueError("no answers to compare")


def win_outcomes(challenger: Sequence[float], incumbent: Sequence[float]) -> list[float]:
    """1 where the challenger's paired score is higher, 0 where lower, 0.5 for a tie."""
    return [1.0 if new > old else 0.5 if new == old else 0.0 for new, old in zip(challenger, incumbent, strict=True)]


def win_rate(challenger: Sequence[float], incumbent: Sequence[float], prompts: Sequence[Hashable]) -> WinRate:
    """How often the challenger's answer scores higher than the incumbent's (ties half), with a 95% interval.

    The i-th answers of both sides are paired and answer the prompt `prompts[i]`. The rate is the mean over
    prompts of each prompt's win share: when every prompt has as many answers (as the loop's and `apprentice
    eval`'s samples do) it is the share over answers, wins / comparisons. The interval is a bootstrap over
    prompts, since a prompt's answers are not independent samples.
    """
    _check_paired(challenger, incumbent)
    outcomes = win_outcomes(challenger, incumbent)
    shares = per_prompt_means(outcomes, prompts)
    rate, low, high = cluster_bootstrap_mean(shares)
    return WinRate(wins=sum(outcomes), comparisons=len(outcomes), rate=rate, low=low, high=high, prompts=len(shares))


def mean_gain(challenger: Sequence[float], incumbent: Sequence[float], prompts: Sequence[Hashable]) -> MeanGain:
    """Mean of the challenger's score less the incumbent's, paired answer by answer, as `win_rate` pairs them:
    the mean over prompts of each prompt's mean difference, with a 95% bootstrap interval over prompts."""
    _check_paired(challenger, incumbent)
    differences = [new - old for new, old in zip(challenger, incumbent, strict=True)]
    gains = per_prompt_means(differences, prompts)
    mean, low, high = cluster_bootstrap_mean(gains)
    return MeanGain(mean=mean, low=low, high=high, prompts=len(gains))


def gold_scorer(oracle: Callable[[Sequence[str], Sequence[str]], list[float]]) -> Scorer:
    """An oracle on texts, as a scorer of (messages, completion) pairs."""

    def score(prompts: Sequence[list[Message]], completions: Sequence[str]) -> list[float]:
        return oracle([prompt[-1]["content"] for prompt in prompts], completions)

    return score


def save_samples(path: Path, samples: PolicySamples, scores: PolicyScores) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, (prompt, completion) in enumerate(zip(samples.prompts, samples.completions, strict=True)):
        rows.append(
            {
                "prompt": prompt[-1]["content"],
                "completion": completion,
                "reward": scores.rewards[index] if scores.rewards else None,
                "gold": scores.golds[index] if scores.golds else None,
            }
        )
    write_jsonl_atomically(path, rows)


def save_policy_samples(path: Path, samples: PolicySamples) -> None:
    """The samples themselves (not their scores, which change with each round's reward model), for reuse."""
    from apprentice.files import write_text_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(asdict(samples)) + "\n")


def load_policy_samples(path: Path) -> PolicySamples | None:
    """Samples saved by `save_policy_samples`; None when there are none (or they are unreadable)."""
    try:
        return PolicySamples(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def reward_gold_accuracy(scored: Sequence[PolicyScores], completions_per_prompt: int) -> WinRate | None:
    """How often the reward model orders two held-out answers to the same prompt as the gold oracle does.

    Every pair of answers to one prompt across the given policies' samples (ties in gold left out) is one
    comparison; the share is what the reward model got right, with a 95% Wilson interval. Pairs share
    prompts, so the interval is somewhat narrower than an interval over prompts would be.
    """
    if not scored or any(not scores.golds or not scores.rewards for scores in scored):
        return None
    per_prompt = len(scored[0].golds) // completions_per_prompt
    right = total = 0
    for prompt in range(per_prompt):
        answers = [
            (scores.rewards[index], scores.golds[index])
            for scores in scored
            for index in range(prompt * completions_per_prompt, (prompt + 1) * completions_per_prompt)
        ]
        for first in range(len(answers)):
            for second in range(first + 1, len(answers)):
                gold_margin = answers[first][1] - answers[second][1]
                if gold_margin == 0:
                    continue
                total += 1
                right += (answers[first][0] - answers[second][0]) * gold_margin > 0
    if total == 0:
        return None
    low, high = wilson_interval(right, total)
    return WinRate(wins=right, comparisons=total, rate=right / total, low=low, high=high, prompts=per_prompt)


def load_samples(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def summary(scores: PolicyScores) -> dict[str, Any]:
    return {key: value for key, value in asdict(scores).items() if key not in ("rewards", "golds")}
