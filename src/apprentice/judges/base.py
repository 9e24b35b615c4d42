"""What every judge offers: P("A") for each of a batch of judge chats, and a name for reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from apprentice.store.records import Message


class JudgeBackend(Protocol):
    """A model that reads a judge chat (`verdict.judge_messages`) and says how likely its answer is "A"."""

    description: str

    def probabilities_of_a(self, chats: Sequence[list[Message]]) -> list[float]: ...
