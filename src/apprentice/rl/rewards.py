"""Where rewards come from: a Python callable, a reward-model folder, an ensemble of them, or a weighted sum.

A reward source scores (prompt, completion) texts, never token ids: the reward model may use a
different tokenizer from the policy, so completions are decoded and re-tokenized with the reward
model's own tokenizer (and chat template, when it has one).

Spec strings, as the command line takes them (one `--reward` each, summed with their weights):
  `package.module:function`      a callable (prompts: list[str], completions: list[str]) -> list[float];
                                 each prompt is the text of the conversation's last message
  `path/to/folder`               a reward model from `apprentice reward train` or its run folder (its
                                 normalization applied),
                                 or any AutoModelForSequenceClassification folder with num_labels=1
  `ensemble:K:folder1,folder2`   the members' mean score minus K times their spread (std); one folder
                                 holding an ensemble trained by `apprentice reward train` works too
  `0.5*SPEC`                     any of the above with a weight
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from apprentice.errors import ApprenticeError
from apprentice.store.records import Message


class RewardSource(Protocol):
    def __call__(self, prompts: Sequence[list[Message]], completions: Sequence[str]) -> torch.Tensor:
        """One float32 score per completion, `(B,)`."""
        ...


def prompt_text(messages: list[Message]) -> str:
    return messages[-1]["content"] if messages else ""


class CallableReward:
    """A Python function `fn(prompts: list[str], completions: list[str]) -> list[float]`."""

    def __init__(self, function: Callable[..., Sequence[float]], name: str) -> None:
        self.function = function
        self.name = name

    @classmethod
    def from_spec(cls, spec: str) -> CallableReward:
        module_name, _, attribute = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ApprenticeError(f"reward {spec!r}: cannot import module {module_name!r} ({error})") from None
        function = getattr(module, attribute, None)
        if not callable(function):
            raise ApprenticeError(f"reward {spec!r}: module {module_name!r} has no function {attribute!r}")
        return cls(function, spec)

    def __call__(self, prompts: Sequence[list[Message]], completions: Sequence[str]) -> torch.Tensor:
        scores = self.function([prompt_text(messages) for messages in prompts], list(completions))
        tensor = torch.as_tensor(list(scores), dtype=torch.float32)
        if tensor.shape != (len(completions),):
            raise ApprenticeError(
                f"reward {self.name!r} returned {tuple(tensor.shape)} scores for {len(completions)} completions"
            )
        return tensor


class ModelReward:
    """A sequence-classification reward model with one output, scoring text with its own tokenizer."""

    def __init__(self, folder: str | Path, *, batch_size: int = 32, max_length: int = 512) -> None:
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise ApprenticeError(f"reward model {folder}: no config.json; is it a transformers model folder?")
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        if config.num_labels != 1:
            raise ApprenticeError(
                f"reward model {folder} has num_labels={config.num_labels}; a reward model has one output"
            )
        self.model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.eval().requires_grad_(False)
        self.batch_size = batch_size
        self.max_length = min(max_length, getattr(self.tokenizer, "model_max_length", max_length) or max_length)
        self.name = str(folder)

    def to(self, device: torch.device | str) -> ModelReward:
        self.model.to(device)
        return self

    def text(self, messages: list[Message], completion: str) -> str:
        conversation = [*messages, {"role": "assistant", "content": completion}]
        if getattr(self.tokenizer, "chat_template", None):
            return str(self.tokenizer.apply_chat_template(conversation, tokenize=False))
        return "\n\n".join(message["content"] for message in conversation)

    @torch.no_grad()
    def __call__(self, prompts: Sequence[list[Message]], completions: Sequence[str]) -> torch.Tensor:
        texts = [self.text(messages, completion) for messages, completion in zip(prompts, completions, strict=True)]
        device = next(self.model.parameters()).device
        scores = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(device)
            scores.append(self.model(**batch).logits[:, 0].float().cpu())
        return torch.cat(scores)


class TrainedRewardModel:
    """A reward model trained by `apprentice reward train`: its own encoding and reward normalization."""

    def __init__(self, folder: str | Path, *, batch_size: int = 32) -> None:
        from apprentice.reward.model import RewardModel

        self.reward_model = RewardModel.load(folder)
        self.model = self.reward_model.model
        self.batch_size = batch_size
        self.name = str(folder)

    def to(self, device: torch.device | str) -> TrainedRewardModel:
        self.model.to(device)
        return self

    def __call__(self, prompts: Sequence[list[Message]], completions: Sequence[str]) -> torch.Tensor:
        scores = self.reward_model.score(prompts, completions, batch_size=self.batch_size)
        return torch.tensor(scores, dtype=torch.float32)


class TrainedEnsembleReward:
    """An ensemble folder from `apprentice reward train --members/--shared-heads`: mean - K x spread."""

    def __init__(self, folder: str | Path, spread_penalty: float) -> None:
        from apprentice.reward.ensemble import load_ensemble

        self.ensemble = load_ensemble(Path(folder))
        self.spread_penalty = spread_penalty
        self.name = str(folder)

    def to(self, device: torch.device | str) -> TrainedEnsembleReward:
        for member in getattr(self.ensemble, "members", []):
            member.model.to(device)
        backbone = getattr(self.ensemble, "backbone", None)
        if backbone is not None:
            backbone.model.to(device)
        return self

    def __call__(self, prompts: Sequence[list[Message]], completions: Sequence[str]) -> torch.Tensor:
        scores = self.ensemble.score(prompts, completions)
        mean = torch.tensor(scores.mean, dtype=torch.float32)
        return mean - self.spread_penalty * torch.tensor(scores.std, dtype=torch.float32)


def reward_model_source(folder: Path, *, batch_size: int, spread_penalty: float = 0.0) -> RewardSource:
    """The right reader for a folder: an Apprentice reward model or ensemble, or any 1-label classifier."""
    from apprentice.reward.ensemble import ENSEMBLE_FILE
    from apprentice.reward.model import REWARD_MODEL_FILE, reward_model_folder

    if (folder / ENSEMBLE_FILE).is_file():
        return TrainedEnsembleReward(folder, spread_penalty)
    if (reward_model_folder(folder) / REWARD_MODEL_FILE).is_file():  # the folder or the run folder holding it
        return TrainedRewardModel(reward_model_folder(folder), batch_size=batch_size)
    return ModelReward(folder, batch_size=batch_size)


class EnsembleReward:
    """Mean of the members minus `spread_penalty` x their standard deviation: uncertain scores count less."""

    def __init__(self, members: Sequence[RewardSource], spread_penalty: float) -> None:
        if len(members) < 2:
            raise ApprenticeError("an ensemble reward needs at least two members")
        self.members = list(members)
        self.spread_penalty = spread_penalty

    def __call__(self, prompts: Sequence[list[Message]], completions: Sequence[str]) -> torch.Tensor:
        scores = torch.stack([member(prompts, completions) for member in self.members])  # (M, B)
        return scores.mean(dim=0) - self.spread_penalty * scores.std(dim=0, unbiased=False)


class WeightedSumReward:
    def __init__(self, parts: Sequence[tuple[float, RewardSource]]) -> None:
        self.parts = list(parts)

    def __call__(self, prompts: Sequence[list[Message]], completions: Sequence[str]) -> torch.Tensor:
        total = torch.zeros(len(completions))
        for weight, source in self.parts:
            total = total + weight * source(prompts, completions)
        return total


def _single_source(spec: str, batch_size: int) -> RewardSource:
    if spec.startswith("ensemble:"):
        _, _, rest = spec.partition(":")
        penalty, _, folders = rest.partition(":")
        try:
            spread_penalty = float(penalty)
        except ValueError:
            raise ApprenticeError(f"reward {spec!r}: write an ensemble as ensemble:K:folder1,folder2") from None
        paths = [Path(folder).expanduser() for folder in folders.split(",") if folder]
        if len(paths) == 1:  # one folder holding an ensemble trained by `apprentice reward train`
            return reward_model_source(paths[0], batch_size=batch_size, spread_penalty=spread_penalty)
        return EnsembleReward([reward_model_source(path, batch_size=batch_size) for path in paths], spread_penalty)
    if Path(spec).expanduser().exists():
        return reward_model_source(Path(spec).expanduser(), batch_size=batch_size)
    if ":" in spec:
        return CallableReward.from_spec(spec)
    raise ApprenticeError(
        f"reward {spec!r} is neither a folder nor module:function; give a reward-model folder, "
        "a Python callable like mypackage.rewards:score, or ensemble:K:folder1,folder2"
    )


def parse_reward(specs: Sequence[str], *, batch_size: int = 32) -> RewardSource:
    """One reward source from `--reward` specs; several are summed with their `WEIGHT*` prefixes."""
    if not specs:
        raise ApprenticeError("no reward given; pass --reward with a reward-model folder or module:function")
    parts: list[tuple[float, RewardSource]] = []
    for spec in specs:
        weight = 1.0
        head, star, tail = spec.partition("*")
        if star:
            try:
                weight = float(head)
            except ValueError:
                raise ApprenticeError(f"reward {spec!r}: the part before '*' must be a number (a weight)") from None
            spec = tail
        parts.append((weight, _single_source(spec, batch_size)))
    if len(parts) == 1 and parts[0][0] == 1.0:
        return parts[0][1]
    return WeightedSumReward(parts)


def move_reward_models(source: Any, device: torch.device) -> None:
    """Put every reward model inside `source` on `device` (callables stay where they are)."""
    if isinstance(source, ModelReward | TrainedRewardModel | TrainedEnsembleReward):
        source.to(device)
    for member in getattr(source, "members", []):
        move_reward_models(member, device)
    for _, part in getattr(source, "parts", []):
        move_reward_models(part, device)


def vader_sentiment(prompts: list[str], completions: list[str]) -> list[float]:
    """VADER's compound sentiment of each completion, in [-1, 1]: the gold oracle `sentiment`, as a reward."""
    from apprentice.oracles import sentiment

    return sentiment(prompts, completions)
