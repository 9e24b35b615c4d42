"""Every label out of the store, in the formats trainers read; an export that writes no row says why.

- preferences: (chosen, rejected) pairs in TRL's conversational format, from pairwise judgments and every
  pair a ranking implies (`apprentice.preferences`);
- ratings: one row per rating of one response: its 1-7 score and the optional per-criterion scores;
- kto: ratings as the unpaired rows TRL's KTO trainer reads (`prompt`, `completion`, `label`): above the
  threshold (by default the scale's middle, 4) desirable, below it undesirable, at it left out;
- rankings: one row per ranking, its responses best first with their ranks (tied responses share a rank).

Every row keeps who judged it, the judgment's weight and ids, so it can be traced back to the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from apprentice.files import write_jsonl_atomically
from apprentice.preferences import preference_pairs
from apprentice.store import JudgedComparison
from apprentice.store.records import Message
from apprentice.studio.answers import CRITERIA, RATING_SCALE

ExportKind = Literal["preferences", "ratings", "kto", "rankings"]
KTO_THRESHOLD = (RATING_SCALE[0] + RATING_SCALE[1]) / 2
_TRACE_COLUMNS = ("annotator", "annotator_id", "annotator_kind", "weight", "judgment_id", "comparison_id", "source")
COLUMNS: dict[str, tuple[str, ...]] = {
    "preferences": ("prompt", "chosen", "rejected", *_TRACE_COLUMNS),
    "ratings": ("prompt", "completion", "score", "criteria", *_TRACE_COLUMNS),
    "kto": ("prompt", "completion", "label", "score", *_TRACE_COLUMNS),
    "rankings": ("prompt", "completions", "ranks", *_TRACE_COLUMNS),
}
# Which judgments each export reads, and the export that fits each kind of judgment.
_SOURCES: dict[str, tuple[str, ...]] = {
    "preferences": ("pair", "ranking"),
    "ratings": ("rating",),
    "kto": ("rating",),
    "rankings": ("ranking",),
}
_EXPORT_FOR = {
    "pair": "`apprentice export preferences`",
    "ranking": "`apprentice export rankings` (or `export preferences` for the pairs they imply)",
    "rating": "`apprentice export ratings` (or `export kto`)",
}
_PLURAL = {"pair": "pairwise judgments", "ranking": "rankings", "rating": "ratings"}


@dataclass(frozen=True)
class LabelExport:
    kind: str
    rows: list[dict[str, Any]]
    judgments_by_kind: dict[str, int]  # every judgment in the store, by the kind of its comparison
    left_out: dict[str, int] = field(default_factory=dict)  # judgments that gave no row, by reason

    def why_empty(self) -> str | None:
        """None when rows were written; otherwise one sentence saying why there are none and what to run."""
        if self.rows:
            return None
        if not self.judgments_by_kind:
            return (
                "the store holds no judgments yet: judge in `apprentice studio`, run `apprentice simulate`, or "
                "import judged pairs with `apprentice prompts import`"
            )
        read = sum(self.judgments_by_kind.get(kind, 0) for kind in _SOURCES[self.kind])
        if read == 0:
            present = ", ".join(f"{count} {_PLURAL[kind]}" for kind, count in sorted(self.judgments_by_kind.items()))
            commands = " or ".join(_EXPORT_FOR[kind] for kind in sorted(self.judgments_by_kind))
            return f"this project's judgments are {present}: use {commands}"
        reasons = "; ".join(f"{count} {reason}" for reason, count in self.left_out.items())
        return f"none of its {read} {' and '.join(_PLURAL[k] for k in _SOURCES[self.kind])} gives a row ({reasons})"


def build_export(
    judgments: Sequence[JudgedComparison], kind: ExportKind, *, threshold: float = KTO_THRESHOLD
) -> LabelExport:
    """The rows of one kind of export from the store's judgments (oldest first)."""
    counts = dict(Counter(judged.kind for judged in judgments))
    left_out: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    if kind == "preferences":
        rows = [pair.to_trl() for pair in preference_pairs(judgments)]
        left_out["ties or 'both bad' (no pair)"] = sum(
            1 for judged in judgments if judged.kind == "pair" and judged.answer.get("winner") not in (0, 1)
        )
        left_out["rankings with every response tied"] = sum(
            1 for judged in judgments if judged.kind == "ranking" and len(set(judged.answer.get("ranks") or [])) < 2
        )
    elif kind == "rankings":
        rows = [_ranking_row(judged) for judged in judgments if judged.kind == "ranking"]
    else:
        for judged in judgments:
            if judged.kind != "rating":
                continue
            score = judged.answer.get("score")
            if not isinstance(score, int | float):
                left_out["ratings without a score"] += 1
            elif kind == "ratings":
                rows.append(_rating_row(judged, score))
            elif score == threshold:
                left_out[f"ratings at the threshold {threshold:g}, neither desirable nor undesirable"] += 1
            else:
                rows.append(_kto_row(judged, score, desirable=score > threshold))
    return LabelExport(kind, rows, counts, {reason: count for reason, count in left_out.items() if count})


def _assistant(text: str) -> list[Message]:
    return [{"role": "assistant", "content": text}]


def _trace(judged: JudgedComparison) -> dict[str, Any]:
    return {
        "annotator": judged.annotator,
        "annotator_id": judged.annotator_id,
        "annotator_kind": judged.annotator_kind,
        "weight": judged.weight,
        "judgment_id": judged.judgment_id,
        "comparison_id": judged.comparison_id,
        "source": judged.source,
    }


def _rating_row(judged: JudgedComparison, score: float) -> dict[str, Any]:
    given = judged.answer.get("criteria") or {}
    return {
        "prompt": judged.prompt_messages,
        "completion": _assistant(judged.responses[0]),
        "score": score,
        "criteria": {name: given.get(name) for name in CRITERIA},  # every name, so the columns never vary
        **_trace(judged),
    }


def _kto_row(judged: JudgedComparison, score: float, *, desirable: bool) -> dict[str, Any]:
    return {
        "prompt": judged.prompt_messages,
        "completion": _assistant(judged.responses[0]),
        "label": desirable,
        "score": score,
        **_trace(judged),
    }


def _ranking_row(judged: JudgedComparison) -> dict[str, Any]:
    ranks = list(judged.answer.get("ranks") or [])
    order = sorted(range(len(ranks)), key=lambda position: (ranks[position], position))
    return {
        "prompt": judged.prompt_messages,
        "completions": [_assistant(judged.responses[position]) for position in order],
        "ranks": [ranks[position] for position in order],
        **_trace(judged),
    }


def write_export(export: LabelExport, *, jsonl_path: Path | None, dataset_path: Path | None) -> None:
    """Write the rows as JSONL (written whole or not at all) and/or a `datasets` folder."""
    if jsonl_path is not None:
        write_jsonl_atomically(jsonl_path, export.rows)
    if dataset_path is not None:
        from datasets import Dataset

        # An empty dataset still gets its columns, and one shard: `datasets` writes none for zero rows and
        # then cannot load the folder back.
        rows = export.rows
        dataset = Dataset.from_list(rows) if rows else Dataset.from_dict({c: [] for c in COLUMNS[export.kind]})
        dataset.save_to_disk(str(dataset_path), num_shards=None if rows else 1)
