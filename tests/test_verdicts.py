"""Each answer rule once: exports, reward data, the quality checks, the dashboard and the simulator read alike."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from apprentice.preferences import preference_pairs
from apprentice.quality.agreement import raw_agreement
from apprentice.reward.data import DerivationOptions, derive_preferences
from apprentice.simulate import measured_pair_agreement
from apprentice.store import JudgedComparison
from apprentice.studio.answers import percent_agreement
from apprentice.verdicts import ordered_positions, outcome, pair_winner, preferred_positions, raw_agreement_share


def judged(judgment_id: int, kind: str, answer: dict[str, Any], responses: list[str]) -> JudgedComparison:
    return JudgedComparison(
        judgment_id=judgment_id,
        comparison_id=judgment_id,
        kind=kind,
        prompt_messages=[{"role": "user", "content": f"prompt {judgment_id}"}],
        responses=responses,
        answer=answer,
        annotator="ann",
        annotator_id=1,
        weight=1.0,
        source="studio",
    )


def test_a_ranking_with_a_tie_states_its_strict_pairs_and_the_tie_once() -> None:
    ranks = {"ranks": [2, 1, 2]}
    assert ordered_positions("ranking", ranks) == [(1, 0, False), (0, 2, True), (1, 2, False)]
    assert preferred_positions("ranking", ranks) == [(1, 0), (1, 2)]
    assert preferred_positions("pair", {"winner": 1, "tie": False, "both_bad": False}) == [(1, 0)]
    assert ordered_positions("pair", {"winner": None, "tie": True, "both_bad": False}) == [(0, 1, True)]
    assert preferred_positions("pair", {"winner": None, "tie": False, "both_bad": True}) == []
    assert preferred_positions("rating", {"score": 5}) == []
    assert pair_winner({"winner": 0, "tie": True}) is None  # an inconsistent answer states no winner


def test_exports_and_reward_training_take_the_same_pairs_from_the_same_answers() -> None:
    answers = [
        judged(1, "pair", {"winner": 1, "tie": False, "both_bad": False}, ["a", "b"]),
        judged(2, "pair", {"winner": None, "tie": True, "both_bad": False}, ["c", "d"]),
        judged(3, "pair", {"winner": None, "tie": False, "both_bad": True}, ["e", "f"]),
        judged(4, "ranking", {"ranks": [3, 1, 2]}, ["x", "y", "z"]),
    ]
    exported = {(pair.chosen, pair.rejected) for pair in preference_pairs(answers)}
    trained = {(pair.chosen, pair.rejected) for pair in derive_preferences(answers, DerivationOptions()).pairs}
    assert exported == trained == {("b", "a"), ("y", "x"), ("z", "x"), ("y", "z")}


def test_raw_agreement_is_one_figure_for_the_dashboard_the_quality_report_and_the_simulator() -> None:
    by_item = [["A", "A", "B"], ["tie", "tie"], ["B"]]
    assert raw_agreement_share(by_item) == percent_agreement(by_item) == (0.5, 4)
    assert raw_agreement([{f"a{i}": value for i, value in enumerate(item)} for item in by_item]) == 0.5
    # The simulator's figure reads a pair's verdict as the dashboard does: a tie and "both bad" disagree.
    rows = [
        SimpleNamespace(kind="pair", annotator="s1", comparison_id=1, answer={"winner": 0}),
        SimpleNamespace(kind="pair", annotator="s2", comparison_id=1, answer={"winner": 0}),
        SimpleNamespace(kind="pair", annotator="s1", comparison_id=2, answer={"winner": None, "tie": True}),
        SimpleNamespace(kind="pair", annotator="s2", comparison_id=2, answer={"winner": None, "both_bad": True}),
    ]
    assert outcome("pair", rows[2].answer) != outcome("pair", rows[3].answer)
    assert measured_pair_agreement(rows, {"s1", "s2"}) == (0.5, 2)
