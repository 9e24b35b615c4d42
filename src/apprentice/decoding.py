"""The one token-by-token sampling loop behind candidate generation, RL rollouts and evaluation.

It does what `model.generate` does for a decoder-only model (a KV cache, the same temperature, top-k and
top-p distribution, left-padded prompts with positions counted over real tokens), differing only where
that makes it faster on the same batch:

- a prompt repeated in consecutive rows (G samples of it) goes through the model once;
- a row leaves the batch as soon as it has produced a stop token, so the forward passes after that
  only carry the rows still running (`generate` keeps computing finished rows and throws the result away);
- nothing else runs per step: no stopping-criteria or logits-processor machinery;
- top-p finds its nucleus among the likeliest few hundred tokens rather than sorting the vocabulary, and
  the token is drawn among those only;
- on the CPU, the linears run oneDNN's kernels on weights reordered once per call, and the KV cache is
  written in place instead of re-concatenated each step (`cpu_inference`, which says what each saves);
- for a Llama model on the CPU, the forward is `packed_llama`'s: the same arithmetic in fewer, fused ops.

Greedy decoding (temperature 0) gives `generate`'s tokens (oneDNN's sums differ from MKL's only by float
rounding, so a near-tie of the two best tokens could in principle go the other way); sampling draws from
the same distribution (`next_token_distribution`, tested against `generate`'s warpers) but not the same
draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from apprentice.cpu_inference import in_place_cache
from apprentice.packed_llama import decoding_model
from apprentice.tokens import first_rows, position_ids, prompt_groups


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


# Top-p looks for the nucleus among this many most likely tokens first, and sorts the whole vocabulary only
# for rows whose nucleus is larger (a flat distribution): sorting 49,152 logits a row was 40 ms of a
# 16-row step.
NUCLEUS_SHORTLIST = 256


def next_token_distribution(scores: torch.Tensor, sampling: Sampling) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate token ids `(B, k)` and their probabilities `(B, k)`, most likely first, for each row's scores.

    The distribution `generate`'s warpers give (temperature, then top-k, then top-p keeping at least one
    token), computed on a shortlist of the likeliest tokens instead of the sorted vocabulary. A token
    outside the result has probability 0; within it, probabilities are 0 where top-p dropped the token.
    """
    if sampling.temperature != 1.0:
        scores = scores / sampling.temperature
    if sampling.top_k > 0:
        values, ids = scores.topk(min(sampling.top_k, scores.shape[-1]), dim=-1)
        probabilities = torch.softmax(values, dim=-1)
    else:
        full = torch.softmax(scores, dim=-1)
        if sampling.top_p >= 1.0:
            return torch.arange(full.shape[-1], device=full.device).expand_as(full), full
        probabilities, ids = full.topk(min(NUCLEUS_SHORTLIST, full.shape[-1]), dim=-1)
        if bool((probabilities.sum(dim=-1) < sampling.top_p).any()):
            probabilities, ids = full.sort(dim=-1, descending=True)
    if sampling.top_p < 1.0:
        # generate drops a token when the tokens likelier than it already hold top_p of the mass
        mass_before = probabilities.cumsum(dim=-1) - probabilities
        dropped = mass_before >= sampling.top_p
        dropped[:, 0] = False
        probabilities = probabilities.masked_fill(dropped, 0.0)
        probabilities = probabilities / probabilities.sum(dim=-1, keepdim=True)
    return ids, probabilities


def sample_next_tokens(scores: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """One token a row from `next_token_distribution`: with top-p or top-k, a draw among the shortlist only.

    `torch.multinomial` draws one exponential number per candidate, 22 ms of a 16-row step over the whole
    vocabulary; over a shortlist of 256 it costs nothing, and over more candidates (no top-p or top-k, or a
    flat nucleus) `draw_in_blocks` keeps it to a few hundred a row. (Inverting the cumulative distribution
    with one uniform a row was tried: unbiased in tests, but GRPO on the tiny test model learned less with
    it over 6 seeds, for a reason not found, so every draw stays `torch.multinomial`'s.)
    """
    ids, probabilities = next_token_distribution(scores, sampling)
    return ids.gather(1, draw_in_blocks(probabilities).unsqueeze(1)).squeeze(1)


# Candidates a block in `draw_in_blocks`: about the square root of a vocabulary of 50,000, so that the draw of
# a block and the draw within it cost about the same.
DRAW_BLOCK = 256


def draw_in_blocks(probabilities: torch.Tensor) -> torch.Tensor:
    """One column a row `(B,)`, drawn with the row's (unnormalized) probabilities `(B, N)`, in two stages.

    First a block of DRAW_BLOCK consecutive columns with the block's total, then a column within it with
    its own: P(column) = P(block) P(column | block), exactly the one-stage distribution, from N / DRAW_BLOCK +
    DRAW_BLOCK random numbers a row instead of N. Over the whole vocabulary of the default model, the
    one-stage draw took a sixth of a GRPO step's sampling (251 of 1,445 ms, 8 rows x 32 tokens, 2 cores).
    """
    rows, width = probabilities.shape
    if width <= 2 * DRAW_BLOCK:
        return torch.multinomial(probabilities, num_samples=1).squeeze(1)
    padding = -width % DRAW_BLOCK  # columns of probability 0 that complete the last block
    padded = torch.nn.functional.pad(probabilities, (0, padding)) if padding else probabilities.contiguous()
    blocks = padded.view(rows, -1, DRAW_BLOCK)
    block = torch.multinomial(blocks.sum(dim=-1), num_samples=1)  # (B, 1)
    within = blocks.gather(1, block.unsqueeze(-1).expand(rows, 1, DRAW_BLOCK)).squeeze(1)  # (B, DRAW_BLOCK)
    return (block.squeeze(1) * DRAW_BLOCK) + torch.multinomial(within, num_samples=1).squeeze(1)


@torch.inference_mode()
def decode(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    sampling: Sampling,
    *,
    stop_ids: Sequence[int],
    pad_id: int,
    bf16: bool = False,
) -> torch.Tensor:
    """Completions `(B, T)` of left-padded prompts `(B, P)`, padded after each row's first stop token.

    The stop token itself is kept, as `generate` keeps it. T is the longest completion (at most
    `max_new_tokens`), as with `generate`: nothing downstream pads to more than the batch needed.
    `bf16` runs the matrix products in bfloat16 (`precision`): on the CPU through bf16 copies of the
    linear weights, elsewhere under autocast. `model` may be a `packed_llama.PackedLlama` already made for
    several calls; otherwise each call makes what `packed_llama.decoding_model` chooses.
    """
    rows = input_ids.shape[0]
    device = input_ids.device
    completions = torch.full((rows, sampling.max_new_tokens), pad_id, dtype=torch.long, device=device)
    if sampling.max_new_tokens == 0 or rows == 0:
        return completions
    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long, device=device)
    with decoding_model(model, bf16=bf16) as forward:
        return _decode_loop(forward, input_ids, attention_mask, sampling, stops, completions)


def _decode_loop(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    sampling: Sampling,
    stops: torch.Tensor,
    completions: torch.Tensor,
) -> torch.Tensor:
    running = torch.arange(input_ids.shape[0], device=input_ids.device)  # original rows still in the batch
    cache = in_place_cache(model, room=sampling.max_new_tokens)
    mask = attention_mask.long()
    scores = prompt_pass(model, input_ids, mask, cache, prompt_groups(input_ids, mask))[:, -1].float()
    last_column = sampling.max_new_tokens - 1
    for column in range(sampling.max_new_tokens):
        next_tokens = scores.argmax(dim=-1) if sampling.greedy else sample_next_tokens(scores, sampling)
        completions[running, column] = next_tokens
        stopped = torch.isin(next_tokens, stops)
        if bool(stopped.all()):
            return completions[:, : column + 1]
        if column == last_column:
            break
        if bool(stopped.any()):
            keep = (~stopped).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            running, next_tokens, mask = running[keep], next_tokens[keep], mask[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        output = model(
            input_ids=next_tokens.unsqueeze(1),
            attention_mask=mask,
            position_ids=mask.sum(dim=1, keepdim=True) - 1,
            cache=cache,
            use_cache=True,
        )
        scores = output.logits[:, -1].float()
    return completions


def prompt_pass(
    model: Any,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    cache: DynamicCache,
    groups: torch.Tensor | None,
    *,
    distinct_embeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """The prompts' last-position logits `(B, 1, V)`, filling `cache` with one row per input row.

    With `groups` (`tokens.prompt_groups`), each run of a repeated prompt goes through the model once and
    the cache's rows are then selected back to one per row. Rollouts and candidates repeat each prompt G
    times in a row (`generate`'s num_return_sequences layout), so this pass shrinks G-fold; under autograd
    the selection is indexing, so the backward adds the G rows' gradients. `distinct_embeds`, the input
    embeddings of the distinct prompts' tokens, stand in for looking them up.
    """
    distinct = slice(None) if groups is None else first_rows(groups)
    tokens = {"input_ids": prompt_ids[distinct]} if distinct_embeds is None else {"inputs_embeds": distinct_embeds}
    output = model(
        **tokens,
        attention_mask=prompt_mask[distinct],
        position_ids=position_ids(prompt_mask[distinct]),
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    if groups is None:
        return output.logits
    cache.batch_select_indices(groups)
    return output.logits[groups]
