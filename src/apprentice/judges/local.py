"""A local causal LM as a judge: one forward pass per chat, P("A") read from the next-token logits.

No text is generated: the chat template's assistant opening is the last input, and the logits of the
tokens "A" and "B" at that position give the judge's preference (renormalized over the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from apprentice.errors import ApprenticeError
from apprentice.judges.verdict import two_way_probability
from apprentice.store.records import Message

MAX_JUDGE_TOKENS = 4096


def letter_token_ids(tokenizer: Any) -> tuple[int, int]:
    """The token ids the judge's answer starts with for "A" and for "B" (they must differ)."""
    ids = []
    for letter in ("A", "B"):
        encoded = tokenizer.encode(letter, add_special_tokens=False)
        if not encoded:
            raise ApprenticeError(f"the judge's tokenizer has no token for {letter!r}")
        ids.append(int(encoded[0]))
    if ids[0] == ids[1]:
        raise ApprenticeError("the judge's tokenizer gives 'A' and 'B' the same first token")
    return ids[0], ids[1]


class LocalJudge:
    """A Hugging Face causal LM (a folder, a cached id, or 'default') read through its chat template."""

    def __init__(self, model: str, *, batch_size: int = 4) -> None:
        from apprentice.models import load_policy

        self.description = f"local model {model}"
        self.model, self.tokenizer = load_policy(model)
        self.letter_a, self.letter_b = letter_token_ids(self.tokenizer)
        self.batch_size = batch_size

    @torch.no_grad()
    def letter_logits(self, chats: Sequence[list[Message]]) -> torch.Tensor:
        """(len(chats), 2): the logits of "A" and "B" right after each chat's assistant opening."""
        from apprentice.tokens import encode_prompts, left_pad, pad_token_id, position_ids

        rows = []
        for start in range(0, len(chats), self.batch_size):
            encoded = encode_prompts(self.tokenizer, chats[start : start + self.batch_size], MAX_JUDGE_TOKENS)
            input_ids, attention_mask = left_pad(encoded, pad_token_id(self.tokenizer))
            logits = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids(attention_mask),
                logits_to_keep=1,
            ).logits[:, -1, :]
            rows.append(logits[:, [self.letter_a, self.letter_b]].float())
        return torch.cat(rows) if rows else torch.zeros((0, 2))

    def probabilities_of_a(self, chats: Sequence[list[Message]]) -> list[float]:
        return [two_way_probability(float(a), float(b)) for a, b in self.letter_logits(chats).tolist()]
