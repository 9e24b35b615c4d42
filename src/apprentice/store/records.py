"""Plain records that cross the store's boundary inward: parsed input, not yet stored."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]  # {"role": "user" | "assistant" | "system", "content": "..."}


def content_hash(value: Any) -> str:
    """sha256 of the canonical JSON of `value`: equal content, equal hash, on any database."""
    canonical = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PromptRecord:
    messages: list[Message]
    category: str | None = None
    held_out: bool = False

    @property
    def text(self) -> str:
        return self.messages[-1]["content"]


@dataclass(frozen=True)
class PreferencePairRecord:
    """A judged pair from outside (HH-RLHF, TRL format): stored as an imported judgment."""

    prompt: PromptRecord
    chosen: str
    rejected: str


@dataclass(frozen=True)
class GeneratedResponse:
    prompt_id: int
    text: str
    num_tokens: int
    finished: bool


@dataclass(frozen=True)
class ComparisonPlan:
    kind: str  # pair | ranking | rating
    prompt_id: int
    response_ids: list[int]
    overlap: int
    round: int = 0
    gold: dict[str, Any] | None = None


@dataclass
class ImportSummary:
    prompts_added: int = 0
    prompts_existing: int = 0
    pairs_added: int = 0
    pairs_existing: int = 0
    notes: list[str] = field(default_factory=list)
    moved_to_held_out: int = 0  # training prompts already stored, not yet used, that the import held out
    kept_for_training: int = 0  # training prompts the import would hold out, kept: responses were made for them
