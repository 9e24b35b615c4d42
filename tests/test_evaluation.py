"""Held-out evaluation maths: the reward model's accuracy against gold, and samples saved for reuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from apprentice.evaluation import (
    PolicySamples,
    PolicyScores,
    load_policy_samples,
    reward_gold_accuracy,
    save_policy_samples,
)


def _scores(rewards: list[float], golds: list[float]) -> PolicyScores:
    return PolicyScores("p", None, None, 0.0, 0.0, rewards, golds)


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
