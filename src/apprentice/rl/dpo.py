"""DPO (Rafailov et al. 2023) and IPO (Azar et al. 2023) from preference pairs, offline.

Each pair is tokenized the way TRL's DPOTrainer does it, so the two losses agree: the prompt with
the chat template's assistant opening, and each completion as the tokens that follow the prompt in
the templated full conversation (the two renderings' longest common prefix is the prompt). A
sequence's log-probability is the sum over its completion tokens; the reference is the frozen
starting policy (or the policy with its LoRA adapter off). IPO uses length-averaged log-probs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from apprentice.errors import ApprenticeError
from apprentice.rl.config import DPOConfig, OfflineConfig
from apprentice.rl.core import dpo_loss, token_logprobs
from apprentice.rl.rollout import adapter_disabled
from apprentice.rl.session import TrainingRun, TrainResult, distributed_state
from apprentice.store.records import Message
from apprentice.tokens import pad_token_id


class PreferenceLike(Protocol):
    """A PreferencePair from apprentice.preferences, or anything with these three fields."""

    @property
    def prompt(self) -> list[Message]: ...
    @property
    def chosen(self) -> str: ...
    @property
    def rejected(self) -> str: ...


@dataclass(frozen=True)
class TextPair:
    prompt: list[Message]
    chosen: str
    rejected: str


@dataclass(frozen=True)
class TokenizedPair:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]


def _template(tokenizer: Any, messages: list[Message], *, add_generation_prompt: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


def _common_prefix_length(left: list[int], right: list[int]) -> int:
    length = 0
    for a, b in zip(left, right, strict=False):
        if a != b:
            break
        length += 1
    return length


def tokenize_pair(tokenizer: Any, pair: PreferenceLike, max_length: int) -> TokenizedPair:
    prompt_ids = _template(tokenizer, pair.prompt, add_generation_prompt=True)
    full_chosen = _template(
        tokenizer, [*pair.prompt, {"role": "assistant", "content": pair.chosen}], add_generation_prompt=False
    )
    full_rejected = _template(
        tokenizer, [*pair.prompt, {"role": "assistant", "content": pair.rejected}], add_generation_prompt=False
    )
    prompt_length = min(
        _common_prefix_length(prompt_ids, full_chosen), _common_prefix_length(prompt_ids, full_rejected)
    )
    chosen, rejected = full_chosen[prompt_length:], full_rejected[prompt_length:]
    prompt = prompt_ids[:prompt_length]
    # Too long: cut the prompt from the left first (the end of a conversation matters most), then the answers.
    overflow = prompt_length + max(len(chosen), len(rejected)) - max_length
    if overflow > 0:
        prompt = prompt[min(overflow, max(len(prompt) - 1, 0)) :]
        room = max_length - len(prompt)
        chosen, rejected = chosen[:room], rejected[:room]
    if not chosen or not rejected:
        raise ApprenticeError("a preference pair has an empty chosen or rejected response after tokenization")
    return TokenizedPair(prompt, chosen, rejected)


def collate(pairs: Sequence[TokenizedPair], pad_id: int) -> dict[str, torch.Tensor]:
    """Chosen rows then rejected rows, right-padded: input_ids, attention_mask, completion_mask `(2B, L)`."""
    rows = [(p.prompt_ids, p.chosen_ids) for p in pairs] + [(p.prompt_ids, p.rejected_ids) for p in pairs]
    width = max(len(prompt) + len(completion) for prompt, completion in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    completion_mask = torch.zeros((len(rows), width), dtype=torch.float32)
    for row, (prompt, completion) in enumerate(rows):
        ids = prompt + completion
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        completion_mask[row, len(prompt) : len(ids)] = 1.0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "completion_mask": completion_mask}


def sequence_logps(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs of each row's completion tokens `(2B,)`, and the completion lengths `(2B,)`."""
    # Logits only where a completion token is predicted: from the position before the earliest completion
    # start on. The prompt's positions need none, and at vocabulary size their logits (and log-softmax) are
    # a good part of the pass's time and memory.
    # Rows are prompt (mask 0), completion (1), padding (0); a prompt has at least one token.
    first = max(int(batch["completion_mask"].argmax(dim=1).min()), 1)
    width = batch["input_ids"].shape[1]
    # Right padding: real tokens sit at positions 0..n-1 already, so the default positions are right.
    output = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        use_cache=False,
        logits_to_keep=width - first + 1,  # positions first - 1 .. width - 1
    )
    logprobs = token_logprobs(output.logits[:, :-1], batch["input_ids"][:, first:])  # (2B, width - first)
    mask = batch["completion_mask"][:, first:]
    return (logprobs * mask).sum(dim=1), mask.sum(dim=1)


def dpo_batch_loss(
    model: Any, reference: Any | None, policy: Any, batch: dict[str, torch.Tensor], config: DPOConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean DPO/IPO loss of one collated batch, and its metrics (implicit rewards, accuracy, margin)."""
    logps, lengths = sequence_logps(model, batch)
    with torch.no_grad():
        if reference is not None:
            ref_logps, _ = sequence_logps(reference, batch)
        else:
            with adapter_disabled(policy):
                ref_logps, _ = sequence_logps(policy, batch)
    if config.loss == "ipo":
        logps, ref_logps = logps / lengths.clamp(min=1), ref_logps / lengths.clamp(min=1)
    chosen_logps, rejected_logps = logps.chunk(2)
    ref_chosen, ref_rejected = ref_logps.chunk(2)
    losses, chosen_rewards, rejected_rewards = dpo_loss(
        chosen_logps, rejected_logps, ref_chosen, ref_rejected, config.beta, config.loss, config.label_smoothing
    )
    loss = losses.mean()
    metrics = {
        "loss": float(loss.detach()),
        "rewards/chosen": float(chosen_rewards.mean()),
        "rewards/rejected": float(rejected_rewards.mean()),
        "rewards/accuracy": float((chosen_rewards > rejected_rewards).float().mean()),
        "rewards/margin": float((chosen_rewards - rejected_rewards).mean()),
        "logps/chosen": float(chosen_logps.detach().mean()),
        "logps/rejected": float(rejected_logps.detach().mean()),
    }
    return loss, metrics


def offline_steps(config: OfflineConfig, examples: int) -> int:
    """An offline run's optimizer steps: `steps` when set, else `epochs` passes over the examples."""
    processes = distributed_state().num_processes
    return config.steps or max(1, examples // (config.batch_size * processes)) * config.epochs


def step_batch(
    run: TrainingRun, tokenized: Sequence[TokenizedPair], batch_size: int, step: int, pad_id: int
) -> dict[str, torch.Tensor]:
    """This process's examples for `step`, collated and on the run's device."""
    indices = run.batch_indices(len(tokenized), batch_size, step)
    return {key: value.to(run.device) for key, value in collate([tokenized[i] for i in indices], pad_id).items()}


def train_dpo(
    config: DPOConfig,
    policy_name: str,
    pairs: Sequence[PreferenceLike],
    *,
    reference_name: str | None = None,
    resume: bool = False,
    show_progress: bool = True,
) -> TrainResult:
    if not pairs:
        raise ApprenticeError("no preference pairs to train on; judge some comparisons or import pairs first")
    run = TrainingRun(
        config,
        policy_name,
        total_steps=offline_steps(config, len(pairs)),
        updates_per_step=1,
        need_reference=True,
        reference_name=reference_name,
        resume=resume,
        show_progress=show_progress,
    )
    tokenized = [tokenize_pair(run.tokenizer, pair, config.max_length) for pair in pairs]
    pad_id = pad_token_id(run.tokenizer)
    metrics: dict[str, float] = {}
    for step in run.steps():
        with run.phase("train"):
            batch = step_batch(run, tokenized, config.batch_size, step, pad_id)
            with run.autocast():
                loss, step_metrics = dpo_batch_loss(run.model, run.reference, run.policy, batch, config)
            step_metrics["grad_norm"] = run.optimize(loss)
        metrics = run.end_step(step_metrics)
    return TrainResult(run.finish(), metrics, run)
