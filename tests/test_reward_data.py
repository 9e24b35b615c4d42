"""Preference data from judgments: pairs, ties, rankings, ratings, weights, agreement, the prompt split."""

from __future__ import annotations

from typing import Any

import pytest

from apprentice.errors import ApprenticeError
from apprentice.preferences import preference_pairs
from apprentice.reward.data import (
    DerivationOptions,
    PreferenceData,
    RewardPair,
    bootstrap_sample,
    derive_preferences,
    prompt_folds,
    prompt_key,
    split_by_prompt,
)
from apprentice.store import JudgedComparison
from apprentice.store.records import PreferencePairRecord, PromptRecord

_next_id = iter(range(1, 10_000))


def judged(
    kind: str,
    responses: list[str],
    answer: dict[str, Any],
    *,
    prompt: str = "p",
    comparison_id: int = 1,
    weight: float = 1.0,
    annotator_id: int = 1,
) -> JudgedComparison:
    return JudgedComparison(
        judgment_id=next(_next_id),
        comparison_id=comparison_id,
        kind=kind,
        prompt_messages=[{"role": "user", "content": prompt}],
        responses=responses,
        answer=answer,
        annotator=f"a{annotator_id}",
        annotator_id=annotator_id,
        weight=weight,
        source="studio",
    )


def as_tuples(data: PreferenceData) -> list[tuple[str, str, float, float]]:
    return [(pair.chosen, pair.rejected, pair.target, pair.margin) for pair in data.pairs]


def test_pairs_ties_and_both_bad() -> None:
    judgments = [
        judged("pair", ["x", "y"], {"winner": 1, "tie": False, "both_bad": False}),
        judged("pair", ["u", "v"], {"winner": None, "tie": True, "both_bad": False}, comparison_id=2),
        judged("pair", ["s", "t"], {"winner": None, "tie": False, "both_bad": True}, comparison_id=3),
    ]
    dropped = derive_preferences(judgments)
    assert as_tuples(dropped) == [("y", "x", 1.0, 0.0)]
    assert dropped.dropped == {"tie": 1, "both bad": 1}
    halves = derive_preferences(judgments, DerivationOptions(ties="half"))
    assert as_tuples(halves) == [("y", "x", 1.0, 0.0), ("u", "v", 0.5, 0.0)]
    assert halves.dropped == {"both bad": 1}


def test_rankings_give_all_implied_pairs_or_one_group() -> None:
    ranking = judged("ranking", ["a", "b", "c"], {"ranks": [2, 1, 3]})
    assert sorted(as_tuples(derive_preferences([ranking]))) == [
        ("a", "c", 1.0, 0.0),
        ("b", "a", 1.0, 0.0),
        ("b", "c", 1.0, 0.0),
    ]
    with_tie = judged("ranking", ["a", "b", "c"], {"ranks": [1, 1, 2]})
    assert sorted(as_tuples(derive_preferences([with_tie]))) == [("a", "c", 1.0, 0.0), ("b", "c", 1.0, 0.0)]
    assert ("a", "b", 0.5, 0.0) in as_tuples(derive_preferences([with_tie], DerivationOptions(ties="half")))
    grouped = derive_preferences([ranking], DerivationOptions(rankings="plackett-luce"))
    assert grouped.pairs == []
    assert [(group.responses, group.ranks) for group in grouped.groups] == [(["a", "b", "c"], [2, 1, 3])]


def test_strict_wins_match_the_export() -> None:
    judgments = [
        judged("pair", ["x", "y"], {"winner": 0, "tie": False, "both_bad": False}),
        judged("ranking", ["a", "b", "c"], {"ranks": [3, 1, 2]}, comparison_id=2),
        judged("pair", ["u", "v"], {"winner": None, "tie": True, "both_bad": False}, comparison_id=3),
    ]
    ours = sorted((pair.chosen, pair.rejected, pair.judgment_ids[0]) for pair in derive_preferences(judgments).pairs)
    export = sorted((pair.chosen, pair.rejected, pair.judgment_id) for pair in preference_pairs(judgments))
    assert ours == export


def test_ratings_become_pairs_with_the_score_difference_as_margin() -> None:
    judgments = [
        judged("rating", ["good"], {"score": 6}, comparison_id=1),
        judged("rating", ["good"], {"score": 7}, comparison_id=1, annotator_id=2),  # mean 6.5
        judged("rating", ["fine"], {"score": 5}, comparison_id=2),
        judged("rating", ["poor"], {"score": 2}, comparison_id=3),
        judged("rating", ["other prompt"], {"score": 1}, comparison_id=4, prompt="q"),  # alone: no pair
    ]
    data = derive_preferences(judgments)
    assert sorted(as_tuples(data)) == [
        ("fine", "poor", 1.0, 3.0),
        ("good", "fine", 1.0, 1.5),
        ("good", "poor", 1.0, 4.5),
    ]
    # a minimum gap drops pairs whose mean scores are too close
    assert len(derive_preferences(judgments, DerivationOptions(rating_min_gap=2.0)).pairs) == 2


def test_weights_come_from_the_judgment_or_the_hook() -> None:
    first = judged("pair", ["x", "y"], {"winner": 0}, weight=0.5)
    second = judged("pair", ["u", "v"], {"winner": 1}, comparison_id=2)
    assert [pair.weight for pair in derive_preferences([first, second]).pairs] == [0.5, 1.0]
    hooked = derive_preferences([first, second], weights={second.judgment_id: 3.0})
    assert [pair.weight for pair in hooked.pairs] == [0.5, 3.0]
    with pytest.raises(ApprenticeError, match="negative weight"):
        derive_preferences([first], weights={first.judgment_id: -1.0})


def test_agreement_counts_the_judgments_of_the_same_comparison() -> None:
    votes = [
        judged("pair", ["x", "y"], {"winner": 0}, annotator_id=1),
        judged("pair", ["x", "y"], {"winner": 0}, annotator_id=2),
        judged("pair", ["x", "y"], {"winner": 1}, annotator_id=3),
        judged("pair", ["u", "v"], {"winner": 0}, comparison_id=2),
    ]
    data = derive_preferences(votes)
    assert [(pair.chosen, pair.agreement) for pair in data.pairs] == [
        ("x", pytest.approx(2 / 3)),
        ("x", pytest.approx(2 / 3)),
        ("y", pytest.approx(1 / 3)),
        ("u", None),
    ]


def test_split_never_shares_a_prompt() -> None:
    pairs = [RewardPair([{"role": "user", "content": f"prompt {i % 37}"}], f"c{i}", f"r{i}") for i in range(200)]
    data = PreferenceData(pairs=pairs)
    train, validation = split_by_prompt(data, validation_share=0.2, seed=3)
    assert len(train.pairs) + len(validation.pairs) == 200
    assert train.prompts.isdisjoint(validation.prompts)
    assert len(validation.prompts) == round(0.2 * 37)
    again_train, _ = split_by_prompt(data, validation_share=0.2, seed=3)
    assert again_train.pairs == train.pairs  # deterministic for a seed
    _, other_validation = split_by_prompt(data, validation_share=0.2, seed=4)
    assert other_validation.prompts != validation.prompts
    two = PreferenceData(pairs=pairs[:2])
    small_train, small_validation = split_by_prompt(two, validation_share=0.01)
    assert len(small_train.prompts) == 1 and len(small_validation.prompts) == 1
    with pytest.raises(ApprenticeError, match="validation share"):
        split_by_prompt(data, validation_share=1.0)


def test_folds_keep_a_prompt_together_and_differ_by_one_prompt_at_most() -> None:
    prompts = [[{"role": "user", "content": f"prompt {i % 7}"}] for i in range(40)]
    folds = prompt_folds(prompts, 3, seed=2)
    by_prompt: dict[str, set[int]] = {}
    for prompt, fold in zip(prompts, folds, strict=True):
        by_prompt.setdefault(prompt[0]["content"], set()).add(fold)
    assert all(len(seen) == 1 for seen in by_prompt.values())  # a prompt's examples share one fold
    prompts_per_fold = sorted(sum(1 for seen in by_prompt.values() if fold in seen) for fold in range(3))
    assert prompts_per_fold == [2, 2, 3]  # 7 prompts dealt into 3 folds
    assert prompt_folds(prompts, 3, seed=2) == folds and prompt_folds(prompts, 3, seed=3) != folds
    with pytest.raises(ApprenticeError, match="at least 2 folds"):
        prompt_folds(prompts, 1)


def test_bootstrap_resamples_with_replacement() -> None:
    pairs = [RewardPair([{"role": "user", "content": "p"}], f"c{i}", "r") for i in range(50)]
    sample = bootstrap_sample(PreferenceData(pairs=pairs), seed=1)
    assert len(sample.pairs) == 50
    assert len({pair.chosen for pair in sample.pairs}) < 50  # some drawn twice, so some left out
    assert {pair.chosen for pair in sample.pairs} <= {pair.chosen for pair in pairs}


def test_pairs_from_the_store(store: Any) -> None:
    prompt = PromptRecord(messages=[{"role": "user", "content": "hi"}])
    records = [PreferencePairRecord(prompt, "hello there", "go away"), PreferencePairRecord(prompt, "hey", "no")]
    store.import_prompts([], records, source="test.jsonl")
    data = derive_preferences(store.judged_comparisons())
    assert sorted((pair.chosen, pair.rejected) for pair in data.pairs) == [("hello there", "go away"), ("hey", "no")]
    assert {prompt_key(pair.prompt) for pair in data.pairs} == {prompt_key(prompt.messages)}
