"""Answers as the annotator gave them (display order) and as the store keeps them (canonical positions).

Pure functions: converting between the two, scoring an answer against a gold answer, and the simple
percent agreement the dashboard shows live (the quality package computes the chance-corrected measures).

Display answers:
- pair: `{"choice": "A" | "B" | "tie" | "both_bad"}`, A and B as shown on screen;
- ranking: `{"ranks": [rank of the 1st shown response, ...]}`, 1 is best, equal ranks are ties;
- rating: `{"score": 1..7, "criteria": {"helpful": 1..7, ...}}`, criteria optional.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from apprentice.errors import ApprenticeError
from apprentice.verdicts import outcome, raw_agreement_share

PAIR_CHOICES = ("A", "B", "tie", "both_bad")
RATING_SCALE = (1, 7)
CRITERIA = ("helpful", "honest", "harmless")


class AnswerError(ApprenticeError):
    """An answer that does not fit its task: says which field and what was expected."""


def _score(value: Any, field: str) -> int:
    low, high = RATING_SCALE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AnswerError(f"{field} must be a whole number from {low} to {high}, got {value!r}")
    return value


def canonical_answer(kind: str, display: Mapping[str, Any], order_shown: list[int]) -> dict[str, Any]:
    """The display answer in canonical positions; `order_shown[i]` is the position of the i-th shown response."""
    if kind == "pair":
        choice = display.get("choice")
        if choice not in PAIR_CHOICES:
            raise AnswerError(f"choice must be one of {', '.join(PAIR_CHOICES)}, got {choice!r}")
        if len(order_shown) != 2:
            raise AnswerError("a pair task shows two responses")
        if choice in ("A", "B"):
            return {"winner": order_shown[0 if choice == "A" else 1], "tie": False, "both_bad": False}
        return {"winner": None, "tie": choice == "tie", "both_bad": choice == "both_bad"}
    if kind == "ranking":
        ranks = display.get("ranks")
        count = len(order_shown)
        if not isinstance(ranks, list) or len(ranks) != count:
            raise AnswerError(f"ranks must list one rank for each of the {count} responses, got {ranks!r}")
        for rank in ranks:
            if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= count:
                raise AnswerError(f"each rank must be a whole number from 1 to {count}, got {rank!r}")
        canonical = [0] * count
        for shown_index, position in enumerate(order_shown):
            canonical[position] = ranks[shown_index]
        return {"ranks": canonical}
    if kind == "rating":
        score = _score(display.get("score"), "score")
        criteria = display.get("criteria") or {}
        if not isinstance(criteria, Mapping):
            raise AnswerError(f"criteria must be an object of scores, got {criteria!r}")
        unknown = sorted(set(criteria) - set(CRITERIA))
        if unknown:
            raise AnswerError(f"unknown criteria {', '.join(unknown)}; known: {', '.join(CRITERIA)}")
        return {"score": score, "criteria": {name: _score(value, name) for name, value in criteria.items()}}
    raise AnswerError(f"unknown task kind {kind!r}")


def matches_gold(kind: str, answer: Mapping[str, Any], gold: Mapping[str, Any]) -> bool:
    """A gold item is answered right when the verdict matches; a rating may be one step off."""
    if kind == "rating":
        score, gold_score = answer.get("score"), gold.get("score")
        return isinstance(score, int) and isinstance(gold_score, int) and abs(score - gold_score) <= 1
    return bool(outcome(kind, answer) == outcome(kind, gold))


def percent_agreement(outcomes_by_item: Iterable[list[Any]]) -> tuple[float | None, int]:
    """Share of agreeing pairs among all pairs of judgments on the same item, and the number of pairs."""
    return raw_agreement_share(outcomes_by_item)


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def display_answer(kind: str, canonical: Mapping[str, Any], order_shown: list[int]) -> dict[str, Any]:
    """A stored answer as its annotator gave it: the inverse of `canonical_answer`."""
    if kind == "pair":
        winner = canonical.get("winner")
        if winner is not None and winner in order_shown:
            return {"choice": "AB"[order_shown.index(winner)]}
        return {"choice": "tie" if canonical.get("tie") else "both_bad"}
    if kind == "ranking":
        ranks = list(canonical.get("ranks") or [])
        return {"ranks": [ranks[position] for position in order_shown]} if len(ranks) == len(order_shown) else {}
    return {"score": canonical.get("score"), "criteria": dict(canonical.get("criteria") or {})}


def describe_answer(kind: str, display: Mapping[str, Any]) -> str:
    """A display answer in a few words: 'A is better', 'B > A = C', '6 of 7'."""
    if kind == "pair":
        choice = display.get("choice")
        return {"tie": "Tie", "both_bad": "Both bad"}.get(str(choice), f"{choice} is better")
    if kind == "ranking":
        ranks = display.get("ranks") or []
        by_rank = sorted(range(len(ranks)), key=lambda index: (ranks[index], index))
        text = ""
        for place, index in enumerate(by_rank):
            if place:
                text += " = " if ranks[index] == ranks[by_rank[place - 1]] else " > "
            text += chr(ord("A") + index)
        return text
    return f"{display.get('score')} of {RATING_SCALE[1]}"


def gold_answer(kind: str, size: int, value: Any) -> dict[str, Any]:
    """A known answer written by an admin, about the responses in their stored order (A is the first).

    pair: "A", "B", "tie" or "both_bad"; ranking: the rank of each response, "2,1,3" or [2, 1, 3];
    rating: the score, 1 to 7. Returns it in canonical positions; raises AnswerError if it does not fit.
    """
    identity = list(range(size))
    if kind == "pair":
        return canonical_answer(kind, {"choice": value}, identity)
    if kind == "ranking":
        ranks = value
        if isinstance(value, str):
            try:
                ranks = [int(part) for part in value.replace(" ", "").split(",")]
            except ValueError:
                raise AnswerError(f"a ranking's answer is one rank per response, like 2,1,3; got {value!r}") from None
        return canonical_answer(kind, {"ranks": ranks}, identity)
    if kind == "rating":
        score = value
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            score = int(value.strip())
        return canonical_answer(kind, {"score": score}, identity)
    raise AnswerError(f"unknown task kind {kind!r}")
