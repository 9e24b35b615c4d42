"""Display answers to canonical positions, gold scoring and live agreement, against hand-worked cases."""

from __future__ import annotations

import pytest

from apprentice.studio.answers import (
    AnswerError,
    canonical_answer,
    matches_gold,
    median,
    outcome,
    percent_agreement,
)


def test_pair_choice_maps_through_the_order_shown() -> None:
    # Shown as [canonical 1, canonical 0]: "A" (the first shown) is canonical position 1.
    assert canonical_answer("pair", {"choice": "A"}, [1, 0]) == {"winner": 1, "tie": False, "both_bad": False}
    assert canonical_answer("pair", {"choice": "B"}, [1, 0]) == {"winner": 0, "tie": False, "both_bad": False}
    assert canonical_answer("pair", {"choice": "tie"}, [0, 1]) == {"winner": None, "tie": True, "both_bad": False}
    assert canonical_answer("pair", {"choice": "both_bad"}, [0, 1]) == {"winner": None, "tie": False, "both_bad": True}


def test_ranking_ranks_are_moved_to_canonical_positions_and_keep_ties() -> None:
    # Shown: canonical 2, 0, 1 ranked 1, 2, 2 -> canonical 0 has rank 2, 1 has rank 2, 2 has rank 1.
    assert canonical_answer("ranking", {"ranks": [1, 2, 2]}, [2, 0, 1]) == {"ranks": [2, 2, 1]}


def test_rating_keeps_score_and_known_criteria() -> None:
    answer = canonical_answer("rating", {"score": 6, "criteria": {"honest": 7}}, [0])
    assert answer == {"score": 6, "criteria": {"honest": 7}}


@pytest.mark.parametrize(
    ("kind", "display", "order", "message"),
    [
        ("pair", {"choice": "C"}, [0, 1], "choice must be one of"),
        ("pair", {}, [0, 1], "choice must be one of"),
        ("ranking", {"ranks": [1, 2]}, [0, 1, 2], "one rank for each of the 3"),
        ("ranking", {"ranks": [1, 2, 4]}, [0, 1, 2], "from 1 to 3"),
        ("rating", {"score": 8}, [0], "score must be a whole number from 1 to 7"),
        ("rating", {"score": True}, [0], "score must be"),
        ("rating", {"score": 3, "criteria": {"funny": 3}}, [0], "unknown criteria funny"),
        ("essay", {}, [0], "unknown task kind"),
    ],
)
def test_malformed_answers_say_what_is_wrong(kind: str, display: dict, order: list[int], message: str) -> None:
    with pytest.raises(AnswerError, match=message):
        canonical_answer(kind, display, order)


def test_gold_scoring() -> None:
    gold_pair = {"winner": 0, "tie": False, "both_bad": False}
    assert matches_gold("pair", {"winner": 0, "tie": False, "both_bad": False}, gold_pair)
    assert not matches_gold("pair", {"winner": None, "tie": True, "both_bad": False}, gold_pair)
    assert matches_gold("ranking", {"ranks": [1, 3, 2]}, {"ranks": [1, 2, 3]})  # same best response
    assert not matches_gold("ranking", {"ranks": [1, 1, 2]}, {"ranks": [1, 2, 3]})  # a tie at the top is not
    assert matches_gold("rating", {"score": 4}, {"score": 5})  # one step off is right
    assert not matches_gold("rating", {"score": 3}, {"score": 5})


def test_outcome_of_each_kind() -> None:
    assert outcome("pair", {"winner": 1, "tie": False, "both_bad": False}) == 1
    assert outcome("pair", {"winner": None, "tie": False, "both_bad": True}) == "both_bad"
    assert outcome("ranking", {"ranks": [2, 1, 1]}) == (1, 2)
    assert outcome("rating", {"score": 5}) == 5


def test_percent_agreement_by_hand() -> None:
    # Item 1: A, A, B -> pairs (A,A) yes, (A,B) no, (A,B) no: 1 of 3. Item 2: tie, tie: 1 of 1. Item 3: alone.
    share, pairs = percent_agreement([["A", "A", "B"], ["tie", "tie"], ["B"]])
    assert pairs == 4 and share == pytest.approx(2 / 4)
    assert percent_agreement([["A"], []]) == (None, 0)


def test_median() -> None:
    assert median([]) is None
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
