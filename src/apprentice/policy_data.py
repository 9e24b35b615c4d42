"""What the loop's preference and distillation algorithms train on in a round, gathered once and kept.

- dpo: the round's judged pairs. Their responses were sampled from the round's starting policy, so the
  pairs are on-policy, and that policy is DPO's reference.
- reward-dpo: `policy_candidates` fresh responses to each of a round's training prompts, from the
  round's starting policy, ranked by the round's reward ensemble (mean minus `spread_penalty` times
  spread): each prompt's best against its worst, plus (by default) the round's judged pairs. The human
  labels teach the reward, and the reward labels many more pairs than people judged.
- best-of-n: the same ranked responses' best per prompt, as demonstrations (rejection-sampling
  fine-tuning).

The data is written whole to the round's folder the first time (`files.write_jsonl_atomically`); a
resumed step reads it back instead of sampling again, so a policy resumed from its checkpoints goes on
training on the data it started with.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apprentice.errors import ApprenticeError
from apprentice.files import write_jsonl_atomically
from apprentice.precision import MixedPrecision, uses_bf16
from apprentice.rl.dpo import TextPair
from apprentice.rl.sft import Demonstration
from apprentice.rl.training import TrainingData
from apprentice.settings import GenerationSection, LoopSection
from apprentice.store import Store
from apprentice.store.records import Message

DATA_FILE = "policy-data.jsonl"
PAIRS_PER_STEP = 8  # the DPO and SFT batch: each step reads this many pairs or demonstrations
PREFERENCE_ALGORITHMS = ("dpo", "reward-dpo", "best-of-n")


@dataclass(frozen=True)
class RankedResponses:
    """A prompt's distinct responses and the reward's score of each (mean minus penalty times spread)."""

    prompt: list[Message]
    responses: list[str]
    scores: list[float]

    def best(self) -> int:
        return max(range(len(self.scores)), key=self.scores.__getitem__)

    def worst(self) -> int:
        return min(range(len(self.scores)), key=self.scores.__getitem__)


def judged_pairs(store: Store, round_number: int) -> list[TextPair]:
    """The preference pairs people (or simulators) judged among this round's comparisons.

    A judgment the quality checks weighted to zero (an annotator flagged as unreliable) gives no pair.
    """
    from apprentice.preferences import preference_pairs

    in_round = {comparison.id for comparison in store.comparisons() if comparison.round == round_number}
    judged = [judgment for judgment in store.judged_comparisons() if judgment.comparison_id in in_round]
    return [TextPair(p.prompt, p.chosen, p.rejected) for p in preference_pairs(judged) if p.weight > 0]


def rank_candidates(
    policy_path: str,
    prompts: Sequence[list[Message]],
    reward_folder: Path,
    *,
    generation: GenerationSection,
    spread_penalty: float,
    show_progress: bool,
    mixed_precision: MixedPrecision = "no",
) -> list[RankedResponses]:
    """Sample `generation.candidates` responses per prompt and score them; prompts with fewer than two
    distinct non-empty responses are left out (nothing to rank)."""
    from apprentice.generation import PromptToAnswer, generate_candidates
    from apprentice.models import load_policy
    from apprentice.reward.ensemble import load_ensemble

    model, tokenizer = load_policy(policy_path)
    asked = [PromptToAnswer(prompt_id=index, messages=messages) for index, messages in enumerate(prompts)]
    bf16 = uses_bf16(mixed_precision, model.device)
    result = generate_candidates(model, tokenizer, asked, generation, show_progress=show_progress, bf16=bf16)
    del model
    gc.collect()  # the policy is loaded again (with its reference) for training
    distinct: dict[int, list[str]] = {index: [] for index in range(len(prompts))}
    for response in result.responses:
        if response.text and response.text not in distinct[response.prompt_id]:
            distinct[response.prompt_id].append(response.text)
    kept = [index for index, texts in distinct.items() if len(texts) >= 2]
    flat_prompts = [prompts[index] for index in kept for _ in distinct[index]]
    flat_texts = [text for index in kept for text in distinct[index]]
    if not flat_texts:
        return []
    scores = load_ensemble(reward_folder).score(flat_prompts, flat_texts)
    penalized = [mean - spread_penalty * spread for mean, spread in zip(scores.mean, scores.std, strict=True)]
    ranked, start = [], 0
    for index in kept:
        count = len(distinct[index])
        ranked.append(RankedResponses(prompts[index], distinct[index], penalized[start : start + count]))
        start += count
    return ranked


def best_against_worst(ranked: Sequence[RankedResponses]) -> list[TextPair]:
    """Each prompt's best response against its worst; prompts whose responses score alike give none."""
    pairs = []
    for item in ranked:
        best, worst = item.best(), item.worst()
        if item.scores[best] > item.scores[worst]:
            pairs.append(TextPair(item.prompt, item.responses[best], item.responses[worst]))
    return pairs


def best_responses(ranked: Sequence[RankedResponses]) -> list[Demonstration]:
    return [Demonstration(item.prompt, item.responses[item.best()]) for item in ranked]


@dataclass(frozen=True)
class RoundInputs:
    """What a round's training data is gathered from."""

    store: Store
    settings: LoopSection
    generation: GenerationSection
    mixed_precision: MixedPrecision  # of the candidates' sampling
    round_number: int
    policy_path: str  # the round's starting policy: it samples the candidates
    prompts: Sequence[list[Message]]  # the round's training prompts
    reward_folder: Path  # the round's reward ensemble
    show_progress: bool


def gather(algorithm: str, inputs: RoundInputs) -> tuple[TrainingData, dict[str, int]]:
    """The round's training data for `algorithm` and how many items came from where."""
    store, settings, round_number = inputs.store, inputs.settings, inputs.round_number
    judged = judged_pairs(store, round_number) if algorithm == "dpo" or settings.reward_dpo_judged_pairs else []
    if algorithm == "dpo":
        if not judged:
            raise ApprenticeError(
                f"round {round_number} has no judged pair to train DPO on (ties and 'both bad' give none)"
            )
        return TrainingData(pairs=judged), {"judged_pairs": len(judged)}
    sampling = inputs.generation.model_copy(update={"candidates": settings.policy_candidates, "seed": round_number})
    ranked = rank_candidates(
        inputs.policy_path,
        inputs.prompts,
        inputs.reward_folder,
        generation=sampling,
        spread_penalty=settings.spread_penalty,
        show_progress=inputs.show_progress,
        mixed_precision=inputs.mixed_precision,
    )
    if algorithm == "best-of-n":
        demonstrations = best_responses(ranked)
        if not demonstrations:
            raise ApprenticeError(f"round {round_number}: no prompt got two distinct responses to choose from")
        return TrainingData(demonstrations=demonstrations), {"demonstrations": len(demonstrations)}
    labelled = best_against_worst(ranked)
    if not labelled and not judged:
        raise ApprenticeError(f"round {round_number}: the reward ranked no pair and there is no judged pair")
    return TrainingData(pairs=labelled + judged), {"reward_pairs": len(labelled), "judged_pairs": len(judged)}


def save(path: Path, data: TrainingData, counts: dict[str, int]) -> None:
    rows: list[dict[str, Any]] = [{"counts": counts}]
    rows += [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in data.pairs]
    rows += [{"prompt": d.prompt, "response": d.response} for d in data.demonstrations]
    write_jsonl_atomically(path, rows)


def load(path: Path) -> tuple[TrainingData, dict[str, int]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    counts: dict[str, int] = json.loads(lines[0])["counts"]
    rows = [json.loads(line) for line in lines[1:]]
    pairs = [TextPair(row["prompt"], row["chosen"], row["rejected"]) for row in rows if "chosen" in row]
    demonstrations = [Demonstration(row["prompt"], row["response"]) for row in rows if "response" in row]
    return TrainingData(pairs=pairs, demonstrations=demonstrations), counts


def round_training_data(folder: Path, algorithm: str, inputs: RoundInputs) -> tuple[TrainingData, dict[str, int]]:
    """`gather`'s data, read from the round's folder when an earlier attempt wrote it there."""
    path = folder / DATA_FILE
    if path.is_file():
        return load(path)
    data, counts = gather(algorithm, inputs)
    save(path, data, counts)
    return data, counts
