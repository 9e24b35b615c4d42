"""Preference pairs from judgments, and their export in TRL's conversational format.

A pairwise judgment gives one (chosen, rejected) pair; ties and "both bad" give none. A ranking
gives every implied pair (a strictly better rank beats a worse one). Ratings are single responses
and give no pair here. Each pair keeps its annotator and the judgment's weight, so reward training
can weight it and quality checks can trace it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apprentice.files import write_jsonl_atomically
from apprentice.store import JudgedComparison, Store
from apprentice.store.records import Message


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
        }


def _winner_loser_positions(judged: JudgedComparison) -> list[tuple[int, int]]:
    if judged.kind == "pair":
        winner = judged.answer.get("winner")
        if winner not in (0, 1) or judged.answer.get("tie") or judged.answer.get("both_bad"):
            return []
        return [(winner, 1 - winner)]
    if judged.kind == "ranking":
        ranks = judged.answer.get("ranks") or []
        return [
            (better, worse)
            for better in range(len(ranks))
            for worse in range(len(ranks))
            if ranks[better] < ranks[worse]
        ]
    return []


def preference_pairs(judgments: Iterable[JudgedComparison]) -> list[PreferencePair]:
    pairs = []
    for judged in judgments:
        for winner, loser in _winner_loser_positions(judged):
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
                )
            )
    return pairs


@dataclass(frozen=True)
class ExportSummary:
    pairs: int
    jsonl_path: Path | None
    dataset_path: Path | None


def export_preferences(store: Store, *, jsonl_path: Path | None, dataset_path: Path | None) -> ExportSummary:
    """Write the store's preference pairs as JSONL and/or a `datasets` folder (written then renamed)."""
    rows = [pair.to_trl() for pair in preference_pairs(store.judged_comparisons())]
    if jsonl_path is not None:
        write_jsonl_atomically(jsonl_path, rows)
    if dataset_path is not None:
        # datasets writes no shard at all for an empty dataset and then cannot load it back; ask for one.
        to_dataset(rows).save_to_disk(str(dataset_path), num_shards=None if rows else 1)
    return ExportSummary(pairs=len(rows), jsonl_path=jsonl_path, dataset_path=dataset_path)


def to_dataset(rows: list[dict[str, Any]]) -> Any:
    from datasets import Dataset

    if not rows:
        columns = [
            "prompt",
            "chosen",
            "rejected",
            "annotator",
            "annotator_id",
            "weight",
            "judgment_id",
            "comparison_id",
            "source",
        ]
        return Dataset.from_dict({column: [] for column in columns})
    return Dataset.from_list(rows)
