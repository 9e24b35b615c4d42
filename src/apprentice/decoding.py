"""The one token-by-token sampling loop behind candidate generation, RL rollouts and evaluation.

It does what `model.generate` does for a decoder-only model (a KV cache, the same temperature, top-k and
top-p warpers, left-padded prompts with positions counted over real tokens) with two differences that
make it faster on the same batch:

- a row leaves the batch as soon as it has produced a stop token, so the forward passes after that
  only carry the rows still running (`generate` keeps computing finished rows and throws the result away);
- nothing else runs per step: no stopping-criteria or logits-processor machinery beyond the warpers asked for.

Greedy decoding (temperature 0) gives `generate`'s tokens; sampling draws from the same distribution but
not the same draws, since a smaller batch consumes the random stream differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)


@dataclass(frozen=True)
class Sampling:
    """How each next token is chosen: temperature 0 is greedy; top_k 0 and top_p 1 turn those filters off."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def warpers(self) -> LogitsProcessorList:
        """The same warpers, in the same order, as `generate` builds for these settings."""
        warpers = LogitsProcessorList()
        if self.greedy:
            return warpers
        if self.temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(self.temperature))
        if self.top_k > 0:
            warpers.append(TopKLogitsWarper(top_k=self.top_k, min_tokens_to_keep=1))
        if self.top_p < 1.0:
            warpers.append(TopPLogitsWarper(top_p=self.top_p, min_tokens_to_keep=1))
        return warpers


def positions_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only (left padding gets 1), as `generate` assigns them."""
    positions = attention_mask.long().cumsum(dim=-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


@torch.inference_mode()
def decode(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    sampling: Sampling,
    *,
    stop_ids: Sequence[int],
    pad_id: int,
) -> torch.Tensor:
    """Completions `(B, T)` of left-padded prompts `(B, P)`, padded after each row's first stop token.

    The stop token itself is kept, as `generate` keeps it. T is the longest completion (at most
    `max_new_tokens`), as with `generate`: nothing downstream pads to more than the batch needed.
    """
    rows = input_ids.shape[0]
    device = input_ids.device
    completions = torch.full((rows, sampling.max_new_tokens), pad_id, dtype=torch.long, device=device)
    if sampling.max_new_tokens == 0 or rows == 0:
        return completions
    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long, device=device)
    warpers = sampling.warpers()
    running = torch.arange(rows, device=device)  # which original rows are still in the batch
    cache = DynamicCache(config=model.config)
    mask = attention_mask.long()
    step_input = input_ids
    step_positions = positions_of(mask)
    for column in range(sampling.max_new_tokens):
        output = model(
            input_ids=step_input,
            attention_mask=mask,
            position_ids=step_positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        scores = output.logits[:, -1].float()
        if sampling.greedy:
            next_tokens = scores.argmax(dim=-1)
        else:
            scores = warpers(step_input, scores)  # type: ignore[arg-type]  # the warpers here never read the ids
            next_tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        completions[running, column] = next_tokens
        stopped = torch.isin(next_tokens, stops)
        if bool(stopped.all()):
            return completions[:, : column + 1]
        if bool(stopped.any()):
            keep = (~stopped).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            running, next_tokens, mask = running[keep], next_tokens[keep], mask[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        step_input = next_tokens.unsqueeze(1)
        step_positions = mask.sum(dim=1, keepdim=True) - 1
    return completions
