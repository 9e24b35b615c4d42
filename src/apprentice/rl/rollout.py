"""Rollouts: sample completions from the policy, then score them token by token under policy and reference.

Layout: prompts are left-padded (every prompt ends in the same column, so generation appends to all
rows at once) and completions right-padded after their first EOS with the pad token, never with EOS,
so "this completion ended" stays readable from the tokens. Left padding shifts each row's positions;
the forward passes here pass explicit position ids counted over real tokens only, as `generate` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from apprentice.decoding import Sampling, decode, prompt_pass
from apprentice.rl.core import entropy_from_logits, token_logprobs
from apprentice.store.records import Message
from apprentice.tokens import (
    encode_prompts,
    first_rows,
    left_pad,
    pad_token_id,
    position_ids,
    prompt_groups,
    stop_token_ids,
)


@dataclass
class Rollout:
    """B completions (G per prompt, next to each other) with everything the updates need."""

    prompt_ids: torch.Tensor  # (B, P) left-padded
    prompt_mask: torch.Tensor  # (B, P) 1 on real prompt tokens
    completion_ids: torch.Tensor  # (B, T) right-padded with the pad token after EOS
    completion_mask: torch.Tensor  # (B, T) float, 1 up to and including the first EOS
    finished: torch.Tensor  # (B,) bool: the completion ended with EOS within max_new_tokens
    prompts: list[list[Message]]  # (B,) the prompt of each completion
    completion_texts: list[str]  # (B,)

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.completion_ids], dim=1)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.completion_mask.long()], dim=1)

    @property
    def completion_lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(dim=1)

    def select(self, rows: torch.Tensor | Sequence[int]) -> Rollout:
        """The rollout restricted to some rows (a minibatch)."""
        index = torch.as_tensor(rows, dtype=torch.long)
        return Rollout(
            prompt_ids=self.prompt_ids[index],
            prompt_mask=self.prompt_mask[index],
            completion_ids=self.completion_ids[index],
            completion_mask=self.completion_mask[index],
            finished=self.finished[index],
            prompts=[self.prompts[i] for i in index.tolist()],
            completion_texts=[self.completion_texts[i] for i in index.tolist()],
        )


def completion_mask_after_eos(
    completion_ids: torch.Tensor, stop_ids: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """1 on tokens up to and including the first stop token, 0 after; and whether a stop token came."""
    is_stop = torch.isin(completion_ids, torch.tensor(list(stop_ids), device=completion_ids.device))
    finished = is_stop.any(dim=1)
    width = completion_ids.shape[1]
    first_stop = torch.where(finished, is_stop.int().argmax(dim=1), torch.full_like(finished, width, dtype=torch.long))
    positions = torch.arange(width, device=completion_ids.device).unsqueeze(0)
    return (positions <= first_stop.unsqueeze(1)).float(), finished


@torch.no_grad()
def sample_rollout(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[list[Message]],
    *,
    completions_per_prompt: int,
    max_new_tokens: int,
    temperature: float,
    top_k: int = 0,
    max_prompt_tokens: int = 256,
    bf16: bool = False,
) -> Rollout:
    """Sample G completions per prompt from the (unwrapped) policy in one batch (decoding.decode); `bf16`
    runs its products in bfloat16 (`precision`)."""
    device = next(model.parameters()).device
    pad_id = pad_token_id(tokenizer)
    stop_ids = stop_token_ids(model, tokenizer)
    encoded = encode_prompts(tokenizer, prompts, max_prompt_tokens)
    repeated = [ids for ids in encoded for _ in range(completions_per_prompt)]
    prompt_ids, prompt_mask = left_pad(repeated, pad_id)
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    # Explicit settings, not the model's generation_config: its top_p / top_k / repetition penalty
    # would change the distribution we sample from away from the one whose log-probs we train on.
    sampling = Sampling(max_new_tokens, temperature=temperature, top_k=top_k, top_p=1.0)
    was_training = model.training
    model.eval()
    completion_ids = decode(model, prompt_ids, prompt_mask, sampling, stop_ids=stop_ids, pad_id=pad_id, bf16=bf16)
    model.train(was_training)
    completion_mask, finished = completion_mask_after_eos(completion_ids, stop_ids)
    # generate pads finished rows with pad_id already; make sure nothing after EOS survives.
    completion_ids = torch.where(completion_mask.bool(), completion_ids, torch.full_like(completion_ids, pad_id))
    lengths = completion_mask.sum(dim=1).long().tolist()
    texts = [
        tokenizer.decode(row[:length], skip_special_tokens=True).strip()
        for row, length in zip(completion_ids.tolist(), lengths, strict=True)
    ]
    return Rollout(
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        completion_ids=completion_ids,
        completion_mask=completion_mask,
        finished=finished,
        prompts=[list(messages) for messages in prompts for _ in range(completions_per_prompt)],
        completion_texts=texts,
    )


@dataclass
class ForwardResult:
    logprobs: torch.Tensor  # (B, T) log-probs of the completion tokens
    entropy: torch.Tensor | None  # (B, T)
    values: torch.Tensor | None  # (B, T) value-head estimates V(s_t), when the model has a value head


def forward_completions(
    model: Any,
    rollout: Rollout,
    temperature: float,
    *,
    with_entropy: bool = False,
    entropy_gradient: bool = False,
) -> ForwardResult:
    """Log-probs of the completion tokens under `model` (which may be DDP-wrapped).

    The G completions of a prompt share its tokens, so where rows repeat a prompt the prompt goes through
    the model once and its keys and values serve all G (`_logits_with_shared_prompts`); the gradient
    through them is the sum over the G rows, as in the full pass. The entropy is a metric unless
    `entropy_gradient` (PPO's entropy bonus): only then does its graph, one more (B, T, V) tensor, stay
    for the backward pass.
    """
    groups = prompt_groups(rollout.prompt_ids, rollout.prompt_mask)
    values = None
    if groups is not None and _can_share_prompts(model):
        logits = _logits_with_shared_prompts(model, rollout, groups)
    else:
        attention_mask = rollout.attention_mask
        output = model(
            input_ids=rollout.input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids(attention_mask),
            logits_to_keep=rollout.completion_ids.shape[1] + 1,  # the logits at position t predict token t + 1
            use_cache=False,
        )
        logits = output.logits[:, :-1]  # (B, T, V)
        values = output["values"][:, :-1] if "values" in output else None
    logprobs = token_logprobs(logits, rollout.completion_ids, temperature)
    entropy = None
    if with_entropy or entropy_gradient:
        entropy = entropy_from_logits(logits if entropy_gradient else logits.detach(), temperature)
    return ForwardResult(logprobs=logprobs, entropy=entropy, values=values)


def _can_share_prompts(model: Any) -> bool:
    # A value head reads every position's hidden state, which the shared pass does not return; DDP
    # expects one forward per backward, and the shared pass makes two.
    return not hasattr(model, "value_head") and not isinstance(model, torch.nn.parallel.DistributedDataParallel)


def _logits_with_shared_prompts(model: Any, rollout: Rollout, groups: torch.Tensor) -> torch.Tensor:
    """The logits predicting each completion token `(B, T, V)`, each distinct prompt computed once.

    Pass 1 (`decoding.prompt_pass`) runs the distinct prompts and hands each completion its prompt's keys
    and values; pass 2 runs the completions on top, at the positions the full pass would give them. The last
    completion token predicts nothing, so it is not fed.
    """
    cache = DynamicCache()
    prompt_ids, completion_inputs = rollout.prompt_ids[first_rows(groups)], rollout.completion_ids[:, :-1]
    prompt_embeds, completion_embeds = _embedded_together(model, prompt_ids, completion_inputs)
    first_token_logits = prompt_pass(
        model, rollout.prompt_ids, rollout.prompt_mask, cache, groups, distinct_embeds=prompt_embeds
    )  # (B, 1, V)
    if completion_inputs.shape[1] == 0:
        return first_token_logits
    attention_mask = rollout.attention_mask[:, :-1]
    completion_output = model(
        inputs_embeds=completion_embeds,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask)[:, rollout.prompt_ids.shape[1] :],
        cache=cache,
        use_cache=True,
    )
    return torch.cat([first_token_logits, completion_output.logits], dim=1)


def _embedded_together(
    model: Any, prompt_ids: torch.Tensor, completion_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The input embeddings of both passes' tokens, `(P, Tp, H)` and `(B, Tc, H)`, from one lookup.

    Under autograd each lookup's backward writes a dense gradient the size of the whole vocabulary (113 MB
    for the default model) for the few rows it read; one lookup for both passes makes one of them.
    """
    embeddings = model.get_input_embeddings()
    flat = embeddings(torch.cat([prompt_ids.flatten(), completion_ids.flatten()]))
    prompt_part, completion_part = flat.split([prompt_ids.numel(), completion_ids.numel()])
    return prompt_part.view(*prompt_ids.shape, -1), completion_part.view(*completion_ids.shape, -1)


@contextlib.contextmanager
def adapter_disabled(model: Any) -> Iterator[None]:
    """With a LoRA policy, the reference is the same model with its adapter switched off."""
    with model.disable_adapter():
        yield


@torch.no_grad()
def reference_logprobs(reference: Any | None, policy: Any, rollout: Rollout, temperature: float) -> torch.Tensor:
    """Log-probs under the frozen reference: a separate model, or (LoRA) the policy without its adapter."""
    if reference is not None:
        return forward_completions(reference, rollout, temperature).logprobs
    with adapter_disabled(policy):
        return forward_completions(policy, rollout, temperature).logprobs
