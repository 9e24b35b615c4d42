"""The reward model: a backbone with a scalar head, saved as a plain `AutoModelForSequenceClassification`.

The export is a folder that `transformers` loads as it is (num_labels=1), so TRL, vLLM and others
can use it; `reward_model.json` beside the weights (and the same keys in config.json) holds what
scoring needs beyond the weights: the maximum length and the normalization constants.

Where the reward is read: causal LMs (the default policy) score the last real token, which is what
their `*ForSequenceClassification` classes do; bidirectional encoders (all-MiniLM-L6-v2) score their
pooled first token, which attends to the whole sequence, because that is what their classes do and
the export must score the same when loaded elsewhere.

How text becomes tokens: the chat template when the tokenizer has one (prompt messages plus the
response as the assistant's turn), otherwise the prompt as "role: text" lines and the response as
a second segment. Over-long examples keep the response: the oldest prompt tokens go first, and a
response that alone exceeds the limit loses its tail (right truncation). The export writes this
rendering into its config (`apprentice_reward.input_format`), so that plain `transformers` scores
the same as Apprentice; the README shows the lines.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from apprentice.errors import ApprenticeError
from apprentice.files import shareable
from apprentice.store.records import Message

TrainMode = Literal["full", "lora", "head"]
REWARD_MODEL_FILE = "reward_model.json"
_HEAD_NAMES = ("score", "classifier")
_RESPONSE_TOKENS_KEPT_FOR_PROMPT = 16  # a response that fills the window still sees the end of its prompt


@dataclass
class Normalization:
    """Rewards are reported as (raw - mean) / std; mean 0, std 1 on the reference policy's responses."""

    mean: float = 0.0
    std: float = 1.0
    measured_on: str = "not normalized"

    def apply(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.mean) / self.std


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    token_type_ids: list[int] | None = None


def head_module(model: Any) -> nn.Module:
    """The scalar head of a sequence-classification model (`score` for causal LMs, `classifier` for BERT)."""
    base: Any = model.get_base_model() if hasattr(model, "get_base_model") else model
    for name in _HEAD_NAMES:
        module: Any = getattr(base, name, None)
        if isinstance(module, nn.Module):
            wrapper: Any = getattr(module, "modules_to_save", None)  # peft wraps the head it trains fully
            return wrapper["default"] if wrapper is not None else module
    raise ApprenticeError(f"{type(base).__name__} has no scalar head named {' or '.join(_HEAD_NAMES)}")


def initialize_head(head: nn.Module, hidden_size: int) -> None:
    """N(0, 1/sqrt(d + 1)) weights and zero bias, as in OpenAI's lm-human-preferences."""
    if isinstance(head, nn.Linear):
        nn.init.normal_(head.weight, std=1.0 / math.sqrt(hidden_size + 1))
        if head.bias is not None:
            nn.init.zeros_(head.bias)


def render_prompt_text(prompt: Sequence[Message]) -> str:
    return "\n".join(f"{message['role']}: {message['content']}" for message in prompt)


_CHAT_TEMPLATE_FORMAT = {
    "kind": "chat_template",
    "text": "the tokenizer's chat template over the prompt's messages and the response as the assistant's turn",
    "tokens": "tokenizer.apply_chat_template(messages + [{'role': 'assistant', 'content': response}], "
    "return_dict=True, return_tensors='pt')",
}
_TEXT_PAIR_FORMAT = {
    "kind": "text_pair",
    "text": "first segment: the prompt's messages as lines 'role: content' joined by newlines (one user message "
    "reads 'user: ' + its text); second segment: the response",
    "tokens": "tokenizer(prompt_text, response, return_tensors='pt')",
}
_SCORE_FORMAT = (
    "the raw reward is logits[0, 0]; Apprentice reports (raw - normalization.mean) / normalization.std "
    "(`apprentice reward score --raw` reports the raw logit)"
)
_TRUNCATION_FORMAT = (
    "inputs longer than max_length tokens lose the prompt's first tokens, then the response's last ones; "
    "shorter inputs are scored whole"
)


class RewardModel:
    """A sequence-classification model with one label, its tokenizer, and how to feed and read it."""

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int, normalization: Normalization | None = None):
        if max_length < 2 * _RESPONSE_TOKENS_KEPT_FOR_PROMPT:
            raise ApprenticeError(
                f"max_length must be at least {2 * _RESPONSE_TOKENS_KEPT_FOR_PROMPT}, got {max_length}"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.normalization = normalization or Normalization()
        self.uses_chat_template = bool(getattr(tokenizer, "chat_template", None))
        if tokenizer.pad_token_id is None:
            raise ApprenticeError("the tokenizer has no pad token; set one before building a reward model")

    # -- building and loading -------------------------------------------------------------------

    @classmethod
    def from_backbone(
        cls,
        name: str,
        *,
        max_length: int = 512,
        train_mode: TrainMode = "full",
        lora_rank: int = 16,
        seed: int = 0,
    ) -> RewardModel:
        """A fresh reward model on a backbone ('default', 'minilm', a folder or a cached hub id)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from apprentice.models import quiet_loading, resolve_model

        location = resolve_model(name)
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        torch.manual_seed(seed)
        with quiet_loading():  # the head is new by design: no MISSING report
            model = AutoModelForSequenceClassification.from_pretrained(
                location, num_labels=1, local_files_only=True, dtype=torch.float32, pad_token_id=tokenizer.pad_token_id
            )
        model.config.pad_token_id = tokenizer.pad_token_id
        positions = getattr(model.config, "max_position_embeddings", None)
        if positions is not None and max_length > positions:
            raise ApprenticeError(f"max_length {max_length} is more than {name} can read ({positions} positions)")
        initialize_head(head_module(model), model.config.hidden_size)
        if train_mode == "lora":
            from peft import LoraConfig, TaskType, get_peft_model

            lora = LoraConfig(
                task_type=TaskType.SEQ_CLS,
                r=lora_rank,
                lora_alpha=2 * lora_rank,
                lora_dropout=0.0,
                target_modules="all-linear",
            )
            model = get_peft_model(model, lora)
        elif train_mode == "head":
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            for parameter in head_module(model).parameters():
                parameter.requires_grad_(True)
        elif train_mode != "full":
            raise ApprenticeError(f"train mode must be full, lora or head, got {train_mode!r}")
        return cls(model, tokenizer, max_length=max_length)

    @classmethod
    def load(cls, folder: Path | str) -> RewardModel:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(folder)
        info_path = folder / REWARD_MODEL_FILE
        if not info_path.is_file():
            raise ApprenticeError(f"{folder} is not a reward model folder (no {REWARD_MODEL_FILE})")
        info = json.loads(info_path.read_text(encoding="utf-8"))
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        tokenizer.padding_side = "right"
        model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
        model.eval()
        return cls(
            model, tokenizer, max_length=info["max_length"], normalization=Normalization(**info["normalization"])
        )

    def save(self, folder: Path) -> None:
        """Write the export atomically (a staging folder renamed into place); LoRA is merged first."""
        if hasattr(self.model, "merge_and_unload"):
            self.model = self.model.merge_and_unload()
        for parameter in self.model.parameters():
            parameter.requires_grad_(True)
        info = {
            "max_length": self.max_length,
            "normalization": asdict(self.normalization),
            "input_format": self.input_format(),
        }
        self.model.config.apprentice_reward = info  # visible to anyone who loads the config
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            self.model.save_pretrained(staging, safe_serialization=True)
            self.tokenizer.save_pretrained(staging)
            (staging / REWARD_MODEL_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
            shareable(staging)
            replace_folder(staging, folder)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    # -- tokens ---------------------------------------------------------------------------------

    def input_format(self) -> dict[str, str]:
        """How `encode` renders a (prompt, response) pair and how the score is read, in words and in the
        `transformers` call that gives the same tokens; saved with the model."""
        rendering = _CHAT_TEMPLATE_FORMAT if self.uses_chat_template else _TEXT_PAIR_FORMAT
        return {**rendering, "score": _SCORE_FORMAT, "truncation": _TRUNCATION_FORMAT}

    def encode(self, prompt: Sequence[Message], response: str) -> Encoded:
        if self.uses_chat_template:
            return self._encode_with_template(prompt, response)
        return self._encode_as_segments(prompt, response)

    def _encode_with_template(self, prompt: Sequence[Message], response: str) -> Encoded:
        conversation = [*prompt, {"role": "assistant", "content": response}]
        full_text = self.tokenizer.apply_chat_template(conversation, tokenize=False)
        prompt_text = self.tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
        full_ids: list[int] = self.tokenizer(full_text, add_special_tokens=False)["input_ids"]
        prompt_ids: list[int] = self.tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        if full_ids[: len(prompt_ids)] != prompt_ids:  # the template tokenizes differently at the seam
            prompt_ids = []
        response_ids = full_ids[len(prompt_ids) :]
        kept_prompt, kept_response = self._fit(prompt_ids, response_ids, reserved=0)
        return Encoded(kept_prompt + kept_response)

    def _encode_as_segments(self, prompt: Sequence[Message], response: str) -> Encoded:
        # cls + prompt + sep + response + sep for BERT-like tokenizers, learned from an empty pair.
        skeleton = self.tokenizer("a", "b", add_special_tokens=True)
        plain_a = self.tokenizer("a", add_special_tokens=False)["input_ids"]
        plain_b = self.tokenizer("b", add_special_tokens=False)["input_ids"]
        prompt_ids = self.tokenizer(render_prompt_text(prompt), add_special_tokens=False)["input_ids"]
        response_ids = self.tokenizer(response, add_special_tokens=False)["input_ids"]
        ids = list(skeleton["input_ids"])
        a_at = _find(ids, plain_a)
        b_at = _find(ids, plain_b, start=a_at + len(plain_a))
        head, middle, tail = ids[:a_at], ids[a_at + len(plain_a) : b_at], ids[b_at + len(plain_b) :]
        reserved = len(head) + len(middle) + len(tail)
        kept_prompt, kept_response = self._fit(prompt_ids, response_ids, reserved=reserved)
        input_ids = head + kept_prompt + middle + kept_response + tail
        token_type_ids = None
        if "token_type_ids" in skeleton:
            first_segment = len(head) + len(kept_prompt) + len(middle)
            token_type_ids = [0] * first_segment + [1] * (len(input_ids) - first_segment)
        return Encoded(input_ids, token_type_ids)

    def _fit(self, prompt_ids: list[int], response_ids: list[int], *, reserved: int) -> tuple[list[int], list[int]]:
        """prompt + response in max_length - reserved tokens: the prompt loses its start, the response its tail."""
        budget = self.max_length - reserved
        response_budget = budget - min(len(prompt_ids), _RESPONSE_TOKENS_KEPT_FOR_PROMPT)
        response_ids = response_ids[:response_budget]
        prompt_budget = budget - len(response_ids)
        prompt_ids = prompt_ids[len(prompt_ids) - prompt_budget :] if len(prompt_ids) > prompt_budget else prompt_ids
        return prompt_ids, response_ids

    def collate(self, encoded: Sequence[Encoded]) -> dict[str, torch.Tensor]:
        """Right-padded tensors for a batch; the pad token never counts as the last real token."""
        width = max(len(item.input_ids) for item in encoded)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, item in enumerate(encoded):
            input_ids[row, : len(item.input_ids)] = torch.tensor(item.input_ids)
            attention_mask[row, : len(item.input_ids)] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if encoded[0].token_type_ids is not None:
            token_type_ids = torch.zeros((len(encoded), width), dtype=torch.long)
            for row, item in enumerate(encoded):
                token_type_ids[row, : len(item.input_ids)] = torch.tensor(item.token_type_ids)
            batch["token_type_ids"] = token_type_ids
        return batch

    # -- scores ---------------------------------------------------------------------------------

    def raw_scores(self, batch: dict[str, torch.Tensor], model: Any = None) -> torch.Tensor:
        """(B,) unnormalized rewards; `model` is the (possibly accelerate-wrapped) module to call."""
        device = next((model or self.model).parameters()).device
        logits = (model or self.model)(**{key: value.to(device) for key, value in batch.items()}).logits
        return logits.squeeze(-1).float()

    @torch.no_grad()
    def score(
        self,
        prompts: Sequence[Sequence[Message]],
        responses: Sequence[str],
        *,
        batch_size: int = 16,
        normalized: bool = True,
    ) -> list[float]:
        """Rewards of responses to prompts, in order; batched longest-first to waste little padding."""
        if len(prompts) != len(responses):
            raise ApprenticeError(f"{len(prompts)} prompts but {len(responses)} responses")
        was_training = self.model.training
        self.model.eval()
        encoded = [self.encode(prompt, response) for prompt, response in zip(prompts, responses, strict=True)]
        order = sorted(range(len(encoded)), key=lambda index: -len(encoded[index].input_ids))
        scores = torch.zeros(len(encoded))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            raw = self.raw_scores(self.collate([encoded[index] for index in chunk])).cpu()
            scores[chunk] = self.normalization.apply(raw) if normalized else raw
        self.model.train(was_training)
        return [float(value) for value in scores]


def _find(sequence: list[int], pattern: list[int], start: int = 0) -> int:
    for index in range(start, len(sequence) - len(pattern) + 1):
        if sequence[index : index + len(pattern)] == pattern:
            return index
    raise ApprenticeError("cannot tell where this tokenizer puts a text pair; give a model with a chat template")


def reward_model_folder(folder: Path) -> Path:
    """The reward model in `folder`: the folder itself, or the `model/` inside a run folder of
    `apprentice reward train`, so either may be named."""
    if not (folder / REWARD_MODEL_FILE).is_file() and (folder / "model" / REWARD_MODEL_FILE).is_file():
        return folder / "model"
    return folder


def replace_folder(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`; an existing target is moved aside first and removed after."""
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    if old.exists():
        shutil.rmtree(old)
