"""The loop's reward accuracy by cross-validation over prompts: every pair scored by heads that never saw
its prompt."""

from __future__ import annotations

import torch

from apprentice.reward.data import RewardPair
from apprentice.reward.ensemble import fit_heads, out_of_fold_evaluation


def _pair(prompt: str, index: int, target: float = 1.0) -> RewardPair:
    return RewardPair([{"role": "user", "content": prompt}], f"chosen {index}", f"rejected {index}", target=target)


def test_each_prompt_is_scored_by_the_heads_of_the_other() -> None:
    # One feature. Prompt "a"'s people prefer the higher value, prompt "b"'s the lower: heads fitted on either
    # prompt alone order the other's pairs backwards, so by hand the out-of-fold accuracy is 0, on all 6 pairs.
    pairs = [_pair("a", i) for i in range(3)] + [_pair("b", i) for i in range(3, 6)]
    chosen = torch.tensor([[1.0], [2.0], [3.0], [-1.0], [-2.0], [-3.0]])
    rejected = torch.zeros(6, 1)
    evaluation = out_of_fold_evaluation(chosen, rejected, pairs, folds=2, heads=1, l2=1e-3, steps=50)
    assert evaluation["accuracy"] == 0.0 and evaluation["pairs"] == 6
    assert evaluation["method"] == "cross-validation over prompts, 2 folds"
    over_prompts = evaluation["accuracy_over_prompts"]
    assert (over_prompts["rate"], over_prompts["low"], over_prompts["high"]) == (0.0, 0.0, 0.0)
    assert (over_prompts["n"], over_prompts["prompts"]) == (6, 2)
    # When both prompts' people agree, each fold's heads order the other's pairs right: accuracy 1.
    agreeing = out_of_fold_evaluation(chosen.abs(), rejected, pairs, folds=2, heads=1, l2=1e-3, steps=50)
    assert agreeing["accuracy"] == 1.0


def test_what_a_head_memorizes_of_a_prompt_does_not_count() -> None:
    # Each prompt has a feature of its own that its labels follow: heads fitted on every pair order them all
    # right, but nothing carries over to a prompt they did not see.
    generator = torch.Generator().manual_seed(0)
    prompts, per_prompt = 10, 6
    pairs = [_pair(f"prompt {p}", p * per_prompt + i) for p in range(prompts) for i in range(per_prompt)]
    own = torch.eye(prompts).repeat_interleave(per_prompt, dim=0)
    noise = 0.1 * torch.randn(len(pairs), 4, generator=generator)
    chosen, rejected = torch.cat([own, noise], dim=1), torch.cat([-own, -noise], dim=1)
    fitted = fit_heads(chosen, rejected, pairs, heads=3, l2=1e-2, steps=100)
    in_sample = sum(float((chosen[i] - rejected[i]) @ torch.stack(fitted).mean(0)) > 0 for i in range(len(pairs)))
    assert in_sample == len(pairs)
    evaluation = out_of_fold_evaluation(chosen, rejected, pairs, folds=5, heads=3, l2=1e-2, steps=100)
    assert evaluation["pairs"] == len(pairs) and evaluation["accuracy"] < 0.75


def test_ties_train_but_are_not_scored_and_one_prompt_gives_nothing() -> None:
    pairs = [_pair("a", 0), _pair("a", 1, target=0.5), _pair("b", 2), _pair("c", 3)]
    chosen, rejected = torch.ones(4, 2), torch.zeros(4, 2)
    evaluation = out_of_fold_evaluation(chosen, rejected, pairs, folds=5, heads=2, l2=1e-2, steps=20)
    assert evaluation["pairs"] == 3 and evaluation["method"] == "cross-validation over prompts, 3 folds"
    assert out_of_fold_evaluation(chosen[:2], rejected[:2], pairs[:2], folds=5, heads=2, l2=1e-2, steps=20) == {}
