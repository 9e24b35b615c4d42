"""Pairwise judgments as arrays: who judged which comparison, what was on the left, what they chose.

The quality models work in display terms (left / right) because position bias lives there, and map
back to canonical positions (as stored) through `left_position`. Ties, "both bad" and judgments whose
display order is unknown are kept out of the position-aware arrays but counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apprentice.store.quality_queries import QualityJudgment
from apprentice.verdicts import pair_winner


def gold_winner(gold: dict[str, Any] | None) -> int | None:
    return None if not gold else pair_winner(gold)


@dataclass
class PairTable:
    """Decisive pairwise judgments (a winner, and a known display order), one row each."""

    judgments: list[QualityJudgment]
    annotators: list[str]  # index -> name, sorted
    comparisons: list[int]  # index -> comparison id, sorted
    items: list[int]  # index -> response id, sorted
    annotator: np.ndarray  # (J,) annotator index
    comparison: np.ndarray  # (J,) comparison index
    left_item: np.ndarray  # (J,) item index shown on the left
    right_item: np.ndarray  # (J,) item index shown on the right
    left_position: np.ndarray  # (J,) canonical position shown on the left (0 or 1)
    chose_left: np.ndarray  # (J,) bool
    winner: np.ndarray  # (J,) canonical winner (0 or 1)
    length_left: np.ndarray  # (J,) characters
    length_right: np.ndarray  # (J,)
    skipped_undecided: int = 0  # ties and "both bad"
    skipped_unknown_order: int = 0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.annotator)

    @property
    def length_canonical(self) -> tuple[np.ndarray, np.ndarray]:
        """Lengths of canonical positions 0 and 1."""
        left_is_zero = self.left_position == 0
        return (
            np.where(left_is_zero, self.length_left, self.length_right),
            np.where(left_is_zero, self.length_right, self.length_left),
        )


def pair_table(judgments: Sequence[QualityJudgment], *, require_order: bool = True) -> PairTable:
    """Build the arrays from pair judgments (other kinds are ignored).

    With `require_order=False`, a judgment with unknown display order is taken as shown canonically
    (position 0 on the left): right for position-free analyses (agreement, length), wrong for position bias.
    """
    kept: list[QualityJudgment] = []
    undecided = unknown_order = 0
    for judgment in judgments:
        if judgment.kind != "pair" or len(judgment.response_ids) != 2:
            continue
        if pair_winner(judgment.answer) is None:
            undecided += 1
            continue
        if not judgment.order_shown and require_order:
            unknown_order += 1
            continue
        kept.append(judgment)
    annotators = sorted({judgment.annotator for judgment in kept})
    comparisons = sorted({judgment.comparison_id for judgment in kept})
    items = sorted({response for judgment in kept for response in judgment.response_ids})
    annotator_index = {name: index for index, name in enumerate(annotators)}
    comparison_index = {cid: index for index, cid in enumerate(comparisons)}
    item_index = {rid: index for index, rid in enumerate(items)}
    count = len(kept)
    table = PairTable(
        judgments=kept,
        annotators=annotators,
        comparisons=comparisons,
        items=items,
        annotator=np.zeros(count, dtype=int),
        comparison=np.zeros(count, dtype=int),
        left_item=np.zeros(count, dtype=int),
        right_item=np.zeros(count, dtype=int),
        left_position=np.zeros(count, dtype=int),
        chose_left=np.zeros(count, dtype=bool),
        winner=np.zeros(count, dtype=int),
        length_left=np.zeros(count),
        length_right=np.zeros(count),
        skipped_undecided=undecided,
        skipped_unknown_order=unknown_order,
    )
    for row, judgment in enumerate(kept):
        left = int(judgment.order_shown[0]) if judgment.order_shown else 0
        winner = pair_winner(judgment.answer)
        assert winner is not None
        table.annotator[row] = annotator_index[judgment.annotator]
        table.comparison[row] = comparison_index[judgment.comparison_id]
        table.left_item[row] = item_index[judgment.response_ids[left]]
        table.right_item[row] = item_index[judgment.response_ids[1 - left]]
        table.left_position[row] = left
        table.chose_left[row] = winner == left
        table.winner[row] = winner
        table.length_left[row] = judgment.response_lengths[left]
        table.length_right[row] = judgment.response_lengths[1 - left]
    return table


def pair_units(judgments: Sequence[QualityJudgment]) -> list[dict[str, Any]]:
    """Agreement units for pairs: comparison -> {annotator: canonical winner, or "tie"}."""
    units: dict[int, dict[str, Any]] = {}
    for judgment in judgments:
        if judgment.kind != "pair":
            continue
        winner = pair_winner(judgment.answer)
        units.setdefault(judgment.comparison_id, {})[judgment.annotator] = "tie" if winner is None else winner
    return [units[cid] for cid in sorted(units)]


def rating_units(judgments: Sequence[QualityJudgment]) -> list[dict[str, Any]]:
    units: dict[int, dict[str, Any]] = {}
    for judgment in judgments:
        score = judgment.answer.get("score") if judgment.kind == "rating" else None
        if isinstance(score, int | float):
            units.setdefault(judgment.comparison_id, {})[judgment.annotator] = score
    return [units[cid] for cid in sorted(units)]


def ranking_units(judgments: Sequence[QualityJudgment]) -> list[dict[str, Any]]:
    units: dict[int, dict[str, Any]] = {}
    for judgment in judgments:
        ranks = judgment.answer.get("ranks") if judgment.kind == "ranking" else None
        if ranks:
            units.setdefault(judgment.comparison_id, {})[judgment.annotator] = tuple(ranks)
    return [units[cid] for cid in sorted(units)]
