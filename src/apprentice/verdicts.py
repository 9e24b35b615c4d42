"""What a stored answer states, read the same way everywhere: its verdict, the pairs it implies, agreement.

Answers are kept in canonical positions (`studio/answers.py` converts them from what was shown):
- pair: `{"winner": 0 | 1 | None, "tie": bool, "both_bad": bool}`;
- ranking: `{"ranks": [rank of response 0, ...]}`, 1 is best, equal ranks are ties;
- rating: `{"score": 1..7, "criteria": {...}}`.

Exports, reward training, the quality checks and the studio's dashboard all read answers through these
functions, so a rule such as "both bad states no preference" is written once.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable, Mapping
from typing import Any


def pair_winner(answer: Mapping[str, Any]) -> int | None:
    """Canonical winner (0 or 1) of a pair answer; None for a tie or "both bad"."""
    winner = answer.get("winner")
    if winner not in (0, 1) or answer.get("tie") or answer.get("both_bad"):
        return None
    return int(winner)


def ordered_positions(kind: str, answer: Mapping[str, Any]) -> list[tuple[int, int, bool]]:
    """The (better, worse, is_tie) position triples a pair or ranking answer states, each pair of positions once
    in position order; a tie's triple lists the lower position first. "Both bad" and ratings state none."""
    if kind == "pair":
        if answer.get("both_bad"):
            return []
        if answer.get("tie"):
            return [(0, 1, True)]
        winner = pair_winner(answer)
        return [] if winner is None else [(winner, 1 - winner, False)]
    if kind == "ranking":
        ranks = answer.get("ranks") or []
        triples = []
        for first, second in itertools.combinations(range(len(ranks)), 2):
            if ranks[first] == ranks[second]:
                triples.append((first, second, True))
            elif ranks[first] < ranks[second]:
                triples.append((first, second, False))
            else:
                triples.append((second, first, False))
        return triples
    return []


def preferred_positions(kind: str, answer: Mapping[str, Any]) -> list[tuple[int, int]]:
    """The strict (better, worse) position pairs an answer implies: ties, "both bad" and ratings give none."""
    return [(better, worse) for better, worse, is_tie in ordered_positions(kind, answer) if not is_tie]


def outcome(kind: str, answer: Mapping[str, Any]) -> Any:
    """What two answers must share to agree: the pair's verdict, the ranking's best set, the rating's score."""
    if kind == "pair":
        if answer.get("tie"):
            return "tie"
        if answer.get("both_bad"):
            return "both_bad"
        return answer.get("winner")
    if kind == "ranking":
        ranks = answer.get("ranks") or []
        best = min(ranks) if ranks else None
        return tuple(position for position, rank in enumerate(ranks) if rank == best)
    return answer.get("score")


def raw_agreement_share(values_by_item: Iterable[Iterable[Hashable]]) -> tuple[float | None, int]:
    """Share of agreeing pairs among all pairs of answers to the same item, and the number of pairs.

    Items with one answer add no pair; None when there is no pair at all. Chance is not corrected for here
    (the quality package's alpha and kappas do that).
    """
    agreeing = pairs = 0
    for values in values_by_item:
        for first, second in itertools.combinations(list(values), 2):
            pairs += 1
            agreeing += first == second
    return (agreeing / pairs if pairs else None), pairs
