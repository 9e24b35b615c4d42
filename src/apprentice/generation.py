"""Sampling K candidate responses per prompt, in batches, with the model's chat template.

Prompts are sorted by length and batched with left padding, so a batch wastes little on padding
and every sequence's next token sits in the same column. Each batch is seeded from the run's seed
and the batch's first prompt, so the same seed, model, prompts and batch size give the same text.
Generation stops at EOS; a response that reaches `max_new_tokens` first is marked unfinished.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from apprentice.decoding import Sampling, decode
from apprentice.packed_llama import decoding_model
from apprentice.precision import uses_bf16
from apprentice.settings import GenerationSection
from apprentice.store.records import GeneratedResponse, Message
from apprentice.tokens import encode_prompts, left_pad, pad_token_id, stop_token_ids

if TYPE_CHECKING:
    from apprentice.project import Project


@dataclass(frozen=True)
class PromptToAnswer:
    prompt_id: int
    messages: list[Message]


@dataclass(frozen=True)
class GenerationResult:
    responses: list[GeneratedResponse]
    new_tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def sampling_record(settings: GenerationSection) -> dict[str, Any]:
    """The settings stored with every response, so each response says how it was made."""
    return {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_new_tokens": settings.max_new_tokens,
        "seed": settings.seed,
        "candidates": settings.candidates,
    }


def _completion_length(tokens: list[int], stop_ids: set[int]) -> tuple[int, bool]:
    """Tokens up to and including the first stop token, and whether one was reached."""
    for index, token in enumerate(tokens):
        if token in stop_ids:
            return index + 1, True
    return len(tokens), False


def generate_candidates(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[PromptToAnswer],
    settings: GenerationSection,
    *,
    show_progress: bool = True,
    bf16: bool = False,
) -> GenerationResult:
    """`settings.candidates` responses to each prompt, in the order the prompts were given; `bf16` runs the
    products in bfloat16 (`precision`)."""
    # Generation keeps whole prompts; only RL rollouts cut long ones to a token budget.
    encoded = encode_prompts(tokenizer, [prompt.messages for prompt in prompts], max_prompt_tokens=sys.maxsize)
    order = sorted(range(len(prompts)), key=lambda index: (-len(encoded[index]), prompts[index].prompt_id))
    pad_id = pad_token_id(tokenizer)
    stop_ids = set(stop_token_ids(model, tokenizer))
    sample = settings.temperature > 0
    sampling = Sampling(settings.max_new_tokens, temperature=settings.temperature, top_p=settings.top_p)
    per_prompt: dict[int, list[GeneratedResponse]] = {}
    new_tokens = 0
    started = time.perf_counter()
    progress = Progress(
        TextColumn("generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("prompts · {task.fields[rate]} tok/s"),
        TimeRemainingColumn(),
        disable=not show_progress,
    )
    # pack the weights for decoding once for all the batches, not in each decode call
    with progress, torch.inference_mode(), decoding_model(model, bf16=bf16) as packed:
        task = progress.add_task("generate", total=len(prompts), rate="-")
        for start in range(0, len(order), settings.batch_size):
            indices = order[start : start + settings.batch_size]
            input_ids, attention_mask = left_pad([encoded[index] for index in indices], pad_id)
            input_ids = input_ids.to(model.device)
            attention_mask = attention_mask.to(model.device)
            torch.manual_seed(settings.seed * 1_000_003 + prompts[indices[0]].prompt_id)
            copies = settings.candidates if sample else 1
            output = decode(
                packed,
                input_ids.repeat_interleave(copies, dim=0),
                attention_mask.repeat_interleave(copies, dim=0),
                sampling,
                stop_ids=sorted(stop_ids),
                pad_id=pad_id,
                bf16=bf16,
            )
            completions = output.tolist()
            for row, tokens in enumerate(completions):
                prompt = prompts[indices[row // copies]]
                length, finished = _completion_length(tokens, stop_ids)
                new_tokens += length
                text = tokenizer.decode(tokens[:length], skip_special_tokens=True).strip()
                repeats = 1 if sample else settings.candidates  # greedy gives the same text K times
                for _ in range(repeats):
                    per_prompt.setdefault(prompt.prompt_id, []).append(
                        GeneratedResponse(prompt_id=prompt.prompt_id, text=text, num_tokens=length, finished=finished)
                    )
            elapsed = time.perf_counter() - started
            progress.update(task, advance=len(indices), rate=f"{new_tokens / elapsed:.0f}")
    seconds = time.perf_counter() - started
    responses = [response for prompt in prompts for response in per_prompt.get(prompt.prompt_id, [])]
    return GenerationResult(responses=responses, new_tokens=new_tokens, seconds=seconds)


@dataclass(frozen=True)
class GenerationSummary:
    policy: str
    prompts: int
    responses_stored: int
    duplicates: int
    empty: int
    comparisons: int
    new_tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def generate_for_project(
    project: Project,
    *,
    model_name: str | None = None,
    settings: GenerationSection | None = None,
    limit: int | None = None,
    prompt_ids: Sequence[int] | None = None,
    round_number: int = 0,
    show_progress: bool = True,
) -> GenerationSummary:
    """Generate candidates for the project's prompts, store them and build comparisons.

    Held-out prompts are left for evaluation; `prompt_ids` picks a subset of the others. Identical
    responses to a prompt are stored once; empty ones are dropped.
    """
    from apprentice.comparisons import ComparisonPlanner
    from apprentice.errors import ApprenticeError
    from apprentice.models import load_policy, resolve_model

    settings = settings or project.settings.generation
    name = model_name or project.settings.model.policy
    rows = project.store.prompts(held_out=False, limit=None if prompt_ids is not None else limit)
    if prompt_ids is not None:
        wanted = set(prompt_ids)
        rows = [row for row in rows if row.id in wanted]
    if not rows:
        raise ApprenticeError("the project has no prompts yet; run `apprentice prompts import FILE` first")
    location = resolve_model(project.model_location(name))  # a stored policy's name works too
    model, tokenizer = load_policy(location)
    policy = project.store.policy_for_model(name, location)  # round r + 1 generates as round r's policy
    config = {"model": name, **sampling_record(settings), "prompts": len(rows)}
    with project.store.recording_run("generate", config) as run:
        result = generate_candidates(
            model,
            tokenizer,
            [PromptToAnswer(prompt_id=row.id, messages=row.messages) for row in rows],
            settings,
            show_progress=show_progress,
            bf16=uses_bf16(project.settings.model.mixed_precision, model.device),
        )
        kept = [response for response in result.responses if response.text]
        planner = ComparisonPlanner(project.settings.comparisons, seed=settings.seed, round_number=round_number)
        response_ids, comparisons = project.store.add_generation(policy.id, kept, sampling_record(settings), planner)
        stored = len(set(response_ids))
        summary = GenerationSummary(
            policy=name,
            prompts=len(rows),
            responses_stored=stored,
            duplicates=len(kept) - stored,
            empty=len(result.responses) - len(kept),
            comparisons=comparisons,
            new_tokens=result.new_tokens,
            seconds=result.seconds,
        )
        run.metrics = {
            "responses_stored": stored,
            "duplicates": summary.duplicates,
            "empty": summary.empty,
            "comparisons": comparisons,
            "new_tokens": result.new_tokens,
            "tokens_per_second": result.tokens_per_second,
        }
    return summary
