"""Gold oracles: programmatic judges that stand in for people's true preferences in simulations.

An oracle scores responses to prompts; higher is better. Simulated annotators make noisy choices from
these scores, and evaluation reports the gold score beside the learned reward, so over-optimization
(proxy up, gold down) shows. Built-ins:

- `sentiment`: VADER's compound score of the response, in [-1, 1].
- `relevance`: cosine similarity of prompt and response under all-MiniLM-L6-v2 (mean pooling).
- `concision`: closeness of the response's word count to a target, exp(-|words - target| / target).
- `composite`: a weighted sum of the others.

Any `module:function` taking `(prompts, responses)` and returning one float per pair plugs in the same way.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from apprentice.errors import ApprenticeError

Oracle = Callable[[Sequence[str], Sequence[str]], list[float]]


@cache
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """VADER compound sentiment of each response (the prompt is ignored)."""
    analyzer = _vader()
    return [float(analyzer.polarity_scores(response)["compound"]) for response in responses]


@cache
def _encoder() -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    from apprentice.models import encoder_path

    folder = encoder_path()
    model = AutoModel.from_pretrained(folder, local_files_only=True)
    model.eval()
    return AutoTokenizer.from_pretrained(folder, local_files_only=True), model


def release_encoder() -> None:
    """Drop the sentence encoder `relevance` loaded (about 90 MB); its next use loads it again."""
    _encoder.cache_clear()


def embed(texts: Sequence[str], *, batch_size: int = 32) -> Any:
    """Unit-length sentence embeddings (mean pooling over real tokens), shape (len(texts), 384)."""
    import torch

    tokenizer, model = _encoder()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state  # (B, T, 384)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(chunks) if chunks else torch.zeros((0, 384))


def relevance(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """Cosine similarity of each prompt with its response under the MiniLM encoder."""
    if not responses:
        return []
    prompt_vectors = embed(prompts)
    response_vectors = embed(responses)
    return [float(value) for value in (prompt_vectors * response_vectors).sum(-1)]


def concision_score(word_count: int, target_words: int) -> float:
    """1 at the target length, falling off exponentially with the relative distance from it."""
    return math.exp(-abs(word_count - target_words) / target_words)


def make_concision(target_words: int = 60) -> Oracle:
    def concision(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return [concision_score(len(response.split()), target_words) for response in responses]

    return concision


concision = make_concision()

DEFAULT_COMPOSITE_WEIGHTS = {"sentiment": 0.4, "relevance": 0.4, "concision": 0.2}


def make_composite(weights: dict[str, float] | None = None) -> Oracle:
    """A weighted sum of built-in oracles (default: sentiment 0.4, relevance 0.4, concision 0.2)."""
    chosen = weights or DEFAULT_COMPOSITE_WEIGHTS
    parts = {name: load_oracle(name) for name in chosen}

    def composite(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        totals = [0.0] * len(responses)
        for name, oracle in parts.items():
            for index, score in enumerate(oracle(prompts, responses)):
                totals[index] += chosen[name] * score
        return totals

    return composite


BUILT_IN: dict[str, Callable[[], Oracle]] = {
    "sentiment": lambda: sentiment,
    "relevance": lambda: relevance,
    "concision": lambda: concision,
    "composite": make_composite,
}


def load_oracle(spec: str) -> Oracle:
    """A built-in name or `module:function`; a clear error when neither resolves."""
    if spec in BUILT_IN:
        return BUILT_IN[spec]()
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ApprenticeError(f"unknown oracle {spec!r}; use one of {', '.join(BUILT_IN)} or 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ApprenticeError(f"oracle {spec!r}: cannot import module {module_name!r} ({error})") from None
    oracle = getattr(module, attribute, None)
    if not callable(oracle):
        raise ApprenticeError(f"oracle {spec!r}: {module_name} has no function {attribute!r}")
    return oracle
