"""Chat prompts as token ids for a causal LM: the chat template, left padding, stop and pad tokens, positions.

Generation, RL rollouts and training, and the machine judges all encode prompts the same way; this module
sits below all of them so that none depends on another for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from apprentice.store.records import Message


def encode_prompts(tokenizer: Any, prompts: Sequence[list[Message]], max_prompt_tokens: int) -> list[list[int]]:
    """Chat-template token ids with the assistant's opening; over-long prompts keep their last tokens."""
    encoded = []
    for messages in prompts:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        encoded.append(list(ids)[-max_prompt_tokens:])
    return encoded


def left_pad(batch: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        if ids:
            input_ids[row, width - len(ids) :] = torch.tensor(list(ids), dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
    return input_ids, attention_mask


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)


def pad_token_id(tokenizer: Any) -> int:
    return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so a left-padded prompt starts at position 0.

    Padding gets position 1, exactly as `generate` assigns it, so that training forwards see the same
    inputs as sampling did.
    """
    positions = attention_mask.long().cumsum(dim=-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


def prompt_groups(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor | None:
    """Each row's index among the runs of identical consecutive prompts `(B,)`; None when no row repeats one."""
    same_as_previous = (prompt_ids[1:] == prompt_ids[:-1]).all(dim=1) & (prompt_mask[1:] == prompt_mask[:-1]).all(dim=1)
    if not bool(same_as_previous.any()):
        return None
    starts = torch.cat([same_as_previous.new_ones(1), ~same_as_previous])
    return starts.long().cumsum(dim=0) - 1


def first_rows(groups: torch.Tensor) -> torch.Tensor:
    """The first row of each run in `prompt_groups`' numbering: the rows holding each distinct prompt."""
    return torch.cat([groups.new_zeros(1), (groups[1:] != groups[:-1]).nonzero().squeeze(1) + 1])
