"""Preference pairs from judgments, as rows in TRL's conversational format (`apprentice.exports` writes them).

A pairwise judgment gives one (chosen, rejected) pair; ties and "both bad" give none. A ranking
gives every implied pair (a strictly better rank beats a worse one). Ratings are single responses
and give no pair here. Each pair keeps its annotator and the judgment's weight, so reward training
can weight it and quality checks can trace it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from apprentice.store import JudgedComparison
from apprentice.store.records import Message
from apprentice.verdicts import preferred_positions


@dataclass(frozen=True)
class PreferencePair:
    prompt: list[Message]
    chosen: str
    rejected: str
    annotator: str
    annotator_id: int
    weight: float
    judgment_id: int
    comparison_id: int
    source: str
    annotator_kind: str = "human"  # human | simulated | imported | ai (a machine judge)

    def to_trl(self) -> dict[str, Any]:
        """The conversational TRL preference row, with our columns beside it."""
        return {
            "prompt": self.prompt,
            "chosen": [{"role": "assistant", "content": self.chosen}],
            "rejected": [{"role": "assistant", "content": self.rejected}],
            "annotator": self.annotator,
            "annotator_id": self.annotator_id,
            "weight": self.weight,
            "judgment_id": self.judgment_id,
            "comparison_id": self.comparison_id,
            "source": self.source,
            "annotator_kind": self.annotator_kind,
        }


def preference_pairs(judgments: Iterable[JudgedComparison]) -> list[PreferencePair]:
    pairs = []
    for judged in judgments:
        for winner, loser in preferred_positions(judged.kind, judged.answer):
            pairs.append(
                PreferencePair(
                    prompt=judged.prompt_messages,
                    chosen=judged.responses[winner],
                    rejected=judged.responses[loser],
                    annotator=judged.annotator,
                    annotator_id=judged.annotator_id,
                    weight=judged.weight,
                    judgment_id=judged.judgment_id,
                    comparison_id=judged.comparison_id,
                    source=judged.source,
                    annotator_kind=judged.annotator_kind,
                )
            )
    return pairs
