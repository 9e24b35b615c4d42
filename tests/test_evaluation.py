"""Held-out evaluation maths: win rates and gains over prompts, the reward model's accuracy against gold, and
samples saved for reuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from apprentice.evaluation import (
    PolicySamples,
    PolicyScores,
    load_policy_samples,
    mean_gain,
    reward_gold_accuracy,
    save_policy_samples,
    win_rate,
)
from apprentice.rates import wilson_interval


def _scores(rewards: list[float], golds: list[float]) -> PolicyScores:
    return PolicyScores("p", None, None, 0.0, 0.0, rewards, golds)


def test_win_rate_averages_each_prompts_share_by_hand() -> None:
    # Prompt a: a win and a loss (share 0.5); b: a tie and a win (0.75); c: two losses (0).
    new = [0.9, 0.2, 0.3, 0.3, 0.0, 0.1]
    old = [0.1, 0.5, 0.3, 0.1, 0.4, 0.2]
    rate = win_rate(new, old, ["a", "a", "b", "b", "c", "c"])
    assert (rate.wins, rate.comparisons, rate.prompts) == (2.5, 6, 3)
    assert rate.rate == pytest.approx(1.25 / 3) and rate.rate == pytest.approx(rate.wins / rate.comparisons)
    # Resampling three prompts: all three c (mean 0) or all three b (mean 0.75) come 1/27 = 3.7% of the time
    # each, more than the 2.5% tails, so the interval runs from the lowest share to the highest.
    assert (rate.low, rate.high) == (0.0, 0.75)


def test_win_rate_interval_collapses_when_every_prompt_has_the_same_share() -> None:
    rate = win_rate([1.0, 0.0] * 3, [0.5] * 6, [0, 0, 1, 1, 2, 2])
    assert (rate.rate, rate.low, rate.high, rate.prompts) == (0.5, 0.5, 0.5, 3)


def test_win_rate_over_prompts_is_wider_than_wilson_over_answers_when_prompts_disagree() -> None:
    # Prompt a wins both its answers, b loses both: the bootstrap means are 0, 0.5 and 1 with probabilities
    # 1/4, 1/2 and 1/4, so the 95% interval is (0, 1); Wilson on 2 wins of 4 answers claims about 0.15-0.85.
    rate = win_rate([1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], ["a", "a", "b", "b"])
    assert (rate.rate, rate.low, rate.high) == (0.5, 0.0, 1.0)
    wilson_low, wilson_high = wilson_interval(rate.wins, rate.comparisons)
    assert rate.low < wilson_low and wilson_high < rate.high


def test_win_rate_and_gain_refuse_unpaired_or_ungrouped_answers() -> None:
    with pytest.raises(ValueError, match="paired"):
        win_rate([1.0], [1.0, 2.0], ["a", "a"])
    with pytest.raises(ValueError, match="one prompt per value"):
        win_rate([1.0, 2.0], [1.0, 2.0], ["a"])
    with pytest.raises(ValueError, match="no answers"):
        mean_gain([], [], [])


def test_mean_gain_averages_each_prompts_difference_by_hand() -> None:
    # Prompt a: gains +0.2 and -0.2 (mean 0); b: 0 and +0.4 (mean 0.2). Two prompts: interval (0, 0.2).
    gain = mean_gain([0.6, 0.2, 0.5, 0.5], [0.4, 0.4, 0.5, 0.1], ["a", "a", "b", "b"])
    assert (gain.mean, gain.low, gain.high, gain.prompts) == pytest.approx((0.1, 0.0, 0.2, 2))


def test_answers_to_one_prompt_share_its_key() -> None:
    hello, bye = [{"role": "user", "content": "hello"}], [{"role": "user", "content": "bye"}]
    samples = PolicySamples("folder", [hello, hello, bye, bye], ["a", "b", "c", "d"], [1, 1, 1, 1], 0.0)
    keys = samples.answer_prompts()
    assert keys[0] == keys[1] != keys[2] == keys[3]


def test_reward_gold_accuracy_counts_every_pair_of_answers_to_a_prompt_by_hand() -> None:
    # One prompt, two policies, two answers each: four answers, six pairs; one gold tie is left out.
    base = _scores(rewards=[0.1, 0.5], golds=[1.0, 2.0])
    new = _scores(rewards=[0.9, 0.2], golds=[3.0, 2.0])
    # Pairs (reward margin, gold margin): (-0.4,-1) right, (-0.8,-2) right, (-0.1,-1) right,
    # (-0.4,-1) right, (0.3, 0) tie: left out, (0.7, 1) right -> 5 of 5.
    accuracy = reward_gold_accuracy([base, new], completions_per_prompt=2)
    assert accuracy is not None and (accuracy.wins, accuracy.comparisons) == (5, 5)
    flipped = reward_gold_accuracy([_scores([0.5, 0.1], [1.0, 2.0])], completions_per_prompt=2)
    assert flipped is not None and flipped.rate == 0.0 and flipped.comparisons == 1
    assert reward_gold_accuracy([_scores([0.1], [])], completions_per_prompt=1) is None


def test_policy_samples_round_trip(tmp_path: Path) -> None:
    samples = PolicySamples("folder", [[{"role": "user", "content": "hi"}]], ["hello"], [2], 0.25)
    save_policy_samples(tmp_path / "s.json", samples)
    assert load_policy_samples(tmp_path / "s.json") == samples
    assert load_policy_samples(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    assert load_policy_samples(tmp_path / "bad.json") is None
    assert samples.kl_from_base == pytest.approx(0.25)
