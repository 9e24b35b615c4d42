"""Supervised fine-tuning on demonstrations: each response's tokens after its prompt, by their likelihood.

What best-of-N distillation (rejection-sampling fine-tuning) trains on: the responses a reward model
ranked best. Prompt and response are tokenized as DPO's pairs are (`dpo.tokenize_pair`), so the two
agree on where a response starts; the loss is the mean negative log-likelihood per response token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from apprentice.errors import ApprenticeError
from apprentice.rl.config import SFTConfig
from apprentice.rl.dpo import TextPair, TokenizedPair, offline_steps, sequence_logps, step_batch, tokenize_pair
from apprentice.rl.session import TrainingRun, TrainResult
from apprentice.store.records import Message
from apprentice.tokens import pad_token_id


class DemonstrationLike(Protocol):
    @property
    def prompt(self) -> list[Message]: ...
    @property
    def response(self) -> str: ...


@dataclass(frozen=True)
class Demonstration:
    prompt: list[Message]
    response: str


def tokenize_demonstration(tokenizer: object, demonstration: DemonstrationLike, max_length: int) -> TokenizedPair:
    """The prompt's and the response's tokens (the response as both sides of a pair, so `collate` reads it)."""
    response = demonstration.response
    return tokenize_pair(tokenizer, TextPair(demonstration.prompt, response, response), max_length)


def sft_batch_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean negative log-likelihood per response token of one batch (the chosen half of `collate`'s rows)."""
    rows = batch["input_ids"].shape[0] // 2
    logps, lengths = sequence_logps(model, {key: value[:rows] for key, value in batch.items()})
    loss = -logps.sum() / lengths.sum().clamp(min=1)
    return loss, {"loss": float(loss.detach()), "length": float(lengths.float().mean())}


def train_sft(
    config: SFTConfig,
    policy_name: str,
    demonstrations: Sequence[DemonstrationLike],
    *,
    resume: bool = False,
    show_progress: bool = True,
) -> TrainResult:
    if not demonstrations:
        raise ApprenticeError("no demonstrations to fine-tune on")
    run = TrainingRun(
        config,
        policy_name,
        total_steps=offline_steps(config, len(demonstrations)),
        updates_per_step=1,
        need_reference=False,
        resume=resume,
        show_progress=show_progress,
    )
    tokenized = [tokenize_demonstration(run.tokenizer, item, config.max_length) for item in demonstrations]
    pad_id = pad_token_id(run.tokenizer)
    metrics: dict[str, float] = {}
    for step in run.steps():
        with run.phase("train"):
            batch = step_batch(run, tokenized, config.batch_size, step, pad_id)
            with run.autocast():
                loss, step_metrics = sft_batch_loss(run.model, batch)
            step_metrics["grad_norm"] = run.optimize(loss)
        metrics = run.end_step(step_metrics)
    return TrainResult(run.finish(), metrics, run)
