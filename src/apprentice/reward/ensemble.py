"""Reward ensembles: a mean reward and its spread across members (epistemic uncertainty).

Two kinds:
- members: K full reward models trained with different seeds and, by default, bootstrap resamples
  of the training pairs. The honest kind: the members differ in every weight. K times the cost.
- shared backbone: one frozen backbone and K linear heads on its features. The features of every
  response are computed once (one forward pass each, no backward), then each head is fitted on its
  own bootstrap resample in milliseconds. The spread only reflects what the heads disagree on, so it
  underestimates the uncertainty of a fine-tuned model; it is the cheap option for active selection,
  and also the way to get a reward model out of a large backbone on a small machine.
  What the heads read (`features`):
  - `head-input`: the input of the backbone's own sequence-classification head (for all-MiniLM, the
    CLS pooler tanh(W·CLS) on prompt and response; for causal LMs, the last real token). Head 0 is
    written into the backbone folder, which is then a plain reward model that scores as member 0.
  - `mean`: the mean of the backbone's last hidden states over the response's own tokens (the
    response encoded alone, padding masked out): all-MiniLM-L6-v2's sentence embedding, the one it was
    trained for, while its CLS pooler was not. It does not see the prompt. No AutoModel class pools
    this way, so the backbone folder of a `mean` ensemble keeps an untrained head and is not the
    ensemble's scorer; score with `load_ensemble`.
  - `prompt-aware`: three generic parts side by side, each read from the backbone with nothing fitted:
    the response's mean-pooled hidden states averaged over every layer (lower layers keep more of the
    words, the sentiment among them, than the last), unit length; the elementwise product of the unit
    sentence embeddings (last layer, mean-pooled) of the prompt and of the response, in which their
    cosine similarity is linear; and the response's length in words as log(1 + w), w / 100 and
    (w / 100)^2. The prompt is the last user message. Heads on these see relevance to the prompt and
    length, which `mean` cannot. As with `mean`, the backbone folder is not the ensemble's scorer.
  - `summary-first`: the same parts led by four summary features, the prompt-response cosine similarity
    (the sum of the product part) and the three length features, which the heads fit under a penalty a
    hundredth of the rest's. A few hundred noisy labels cannot place hundreds of weights, but they can
    say how much similarity and length matter; the embedding parts then correct that under the strong
    penalty as labels accumulate. In `benchmarks/reward_features.py` this lifted the accuracy against the
    gold at 100 and 200 labels (the figures are there); part of that lift comes from the simulated gold's
    relevance being this same cosine.
The spread is the standard deviation of the members' normalized rewards.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from apprentice.errors import ApprenticeError
from apprentice.evaluation import win_outcomes
from apprentice.feature_kinds import FEATURE_KINDS, FeatureKind
from apprentice.files import shareable
from apprentice.rates import cluster_bootstrap_mean, per_prompt_means
from apprentice.reward.data import PreferenceData, RewardPair, bootstrap_sample, prompt_folds, prompt_key
from apprentice.reward.evaluate import evaluate_scores, evaluation_pairs, score_distribution
from apprentice.reward.losses import bradley_terry_loss
from apprentice.reward.model import Normalization, RewardModel, head_module, initialize_head
from apprentice.reward.train import RewardTrainingConfig, train_reward_model
from apprentice.store.records import Message

ENSEMBLE_FILE = "ensemble.json"
HEADS_FILE = "heads.safetensors"


def _check_feature_kind(features: str) -> None:
    if features not in FEATURE_KINDS:
        raise ApprenticeError(f"features must be one of {', '.join(FEATURE_KINDS)}, got {features!r}")


@dataclass(frozen=True)
class EnsembleScores:
    mean: list[float]
    std: list[float]
    members: list[list[float]]  # [member][example], normalized


def _summarize(per_member: torch.Tensor) -> EnsembleScores:
    """(K, N) normalized rewards -> mean and spread per example."""
    spread = per_member.std(dim=0) if per_member.shape[0] > 1 else torch.zeros(per_member.shape[1])
    return EnsembleScores(per_member.mean(dim=0).tolist(), spread.tolist(), per_member.tolist())


# -- K full members -------------------------------------------------------------------------------


class MemberEnsemble:
    def __init__(self, members: list[RewardModel]):
        if not members:
            raise ApprenticeError("an ensemble needs at least one member")
        self.members = members

    def score(self, prompts: Sequence[Sequence[Message]], responses: Sequence[str]) -> EnsembleScores:
        return _summarize(torch.tensor([member.score(prompts, responses) for member in self.members]))


def train_member_ensemble(
    train: PreferenceData,
    config: RewardTrainingConfig,
    run_dir: Path,
    *,
    members: int,
    bootstrap: bool = True,
    validation: PreferenceData | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train K members in run_dir/member-k (each resumable on its own); returns the ensemble's evaluation."""
    if members < 1:
        raise ApprenticeError(f"members must be at least 1, got {members}")
    folders = []
    for index in range(members):
        seed = config.seed + index
        data = bootstrap_sample(train, seed=seed) if bootstrap else train
        member_dir = run_dir / f"member-{index}"
        train_reward_model(
            data,
            config.model_copy(update={"seed": seed}),
            member_dir,
            validation=validation,
            normalize_on=_responses(train),
            show_progress=show_progress,
        )
        folders.append(f"member-{index}/model")
    info = {"kind": "members", "members": folders, "bootstrap": bootstrap}
    (run_dir / ENSEMBLE_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    ensemble = load_ensemble(run_dir)
    return evaluate_ensemble(ensemble, validation) if validation is not None and len(validation) else {}


# -- one frozen backbone, K heads -----------------------------------------------------------------


class SharedBackboneEnsemble:
    """A frozen reward-model backbone whose features (see the module's docstring) feed K linear heads."""

    def __init__(
        self,
        backbone: RewardModel,
        weights: torch.Tensor,
        normalizations: list[Normalization],
        *,
        features: FeatureKind = "head-input",
    ):
        _check_feature_kind(features)
        self.backbone = backbone
        self.weights = weights  # (K, H)
        self.normalizations = normalizations
        self.feature_kind: FeatureKind = features

    @torch.no_grad()
    def features(
        self, prompts: Sequence[Sequence[Message]], responses: Sequence[str], *, batch_size: int = 16
    ) -> torch.Tensor:
        """(N, D): what the heads read for each response."""
        return compute_features(self.backbone, self.feature_kind, prompts, responses, batch_size=batch_size)

    def raw_scores_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.weights @ features.T  # (K, N)

    def score(self, prompts: Sequence[Sequence[Message]], responses: Sequence[str]) -> EnsembleScores:
        raw = self.raw_scores_from_features(self.features(prompts, responses))
        normalized = torch.stack([n.apply(row) for n, row in zip(self.normalizations, raw, strict=True)])
        return _summarize(normalized)

    def save(self, folder: Path) -> None:
        """The backbone (head 0 in it for head-input features), every head and its normalization."""
        from safetensors.torch import save_file

        if self.feature_kind == "head-input":
            head: Any = head_module(self.backbone.model)
            with torch.no_grad():
                head.weight.copy_(self.weights[:1])
                if getattr(head, "bias", None) is not None:
                    head.bias.zero_()
            self.backbone.normalization = self.normalizations[0]
        self.backbone.save(folder / "backbone")
        save_file({"weights": self.weights.contiguous()}, str(folder / HEADS_FILE))
        shareable(folder / HEADS_FILE)
        info = {
            "kind": "shared-backbone",
            "backbone": "backbone",
            "heads": self.weights.shape[0],
            "features": self.feature_kind,
            "normalizations": [vars(n) for n in self.normalizations],
        }
        if self.feature_kind != "head-input":
            info["note"] = "the backbone folder's own head is untrained: score with the ensemble, not the folder"
        (folder / ENSEMBLE_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def compute_features(
    model: RewardModel,
    kind: FeatureKind,
    prompts: Sequence[Sequence[Message]],
    responses: Sequence[str],
    *,
    batch_size: int = 16,
) -> torch.Tensor:
    """(N, D) features of the given kind for each response (see the module's docstring)."""
    if kind == "mean":
        return mean_features(model, responses, batch_size=batch_size)
    if kind == "prompt-aware":
        return prompt_aware_features(model, prompts, responses, batch_size=batch_size)
    if kind == "summary-first":
        return summary_first_features(model, prompts, responses, batch_size=batch_size)
    return extract_features(model, prompts, responses, batch_size=batch_size)


def mean_features(model: RewardModel, responses: Sequence[str], *, batch_size: int = 16) -> torch.Tensor:
    """The mean of the backbone's last hidden states over each response's tokens, the response encoded alone.

    The response is tokenized with the tokenizer's own special tokens, as sentence-transformers
    encodes a sentence, and cut at the model's max_length; padding is masked out of the mean.
    """
    return _mean_pooled(model, responses, batch_size=batch_size, every_layer=False)[0]


def _mean_pooled(
    model: RewardModel, texts: Sequence[str], *, batch_size: int, every_layer: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each text encoded alone: (N, H) its mean-pooled last hidden states and, with `every_layer`, (N, H) the
    mean-pooled hidden states of every layer (the embeddings' output left out) averaged over the layers."""
    if not texts:
        raise ApprenticeError("no responses to compute features for")
    tokenizer = model.tokenizer
    encoded: list[list[int]] = [
        tokenizer(text, truncation=True, max_length=model.max_length)["input_ids"] for text in texts
    ]
    order = sorted(range(len(encoded)), key=lambda index: -len(encoded[index]))
    base = model.model.base_model  # the transformer without the classification head
    device = next(base.parameters()).device
    last = torch.zeros((len(encoded), model.model.config.hidden_size))
    layers = torch.zeros_like(last) if every_layer else None
    model.model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(encoded[index]) for index in chunk)
            input_ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, index in enumerate(chunk):
                input_ids[row, : len(encoded[index])] = torch.tensor(encoded[index])
                mask[row, : len(encoded[index])] = 1
            output = base(
                input_ids=input_ids.to(device), attention_mask=mask.to(device), output_hidden_states=every_layer
            )
            weights = mask.to(device).unsqueeze(-1).to(output.last_hidden_state.dtype)
            count = weights.sum(1).clamp_min(1.0)
            last[chunk] = ((output.last_hidden_state * weights).sum(1) / count).float().cpu()
            if layers is not None:
                pooled = torch.stack([(hidden * weights).sum(1) / count for hidden in output.hidden_states[1:]])
                layers[chunk] = pooled.mean(0).float().cpu()
    return last, layers


def last_user_text(prompt: Sequence[Message]) -> str:
    """What a prompt asks: its last user message (its last message when none is the user's; empty for none)."""
    for message in reversed(prompt):
        if message.get("role") == "user":
            return message.get("content", "")
    return prompt[-1].get("content", "") if prompt else ""


def length_features(responses: Sequence[str]) -> torch.Tensor:
    """(N, 3): log(1 + w), w / 100 and (w / 100)^2 for a response of w words."""
    words = torch.tensor([len(response.split()) for response in responses], dtype=torch.float32)
    return torch.stack([torch.log1p(words), words / 100, (words / 100) ** 2], dim=1)


def prompt_aware_features(
    model: RewardModel, prompts: Sequence[Sequence[Message]], responses: Sequence[str], *, batch_size: int = 16
) -> torch.Tensor:
    """(N, 2H + 3): the response's unit layer-averaged mean pooling, the elementwise product of the prompt's
    and the response's unit sentence embeddings, and the response's length features (the module's docstring)."""
    if len(prompts) != len(responses):
        raise ApprenticeError(f"{len(prompts)} prompts for {len(responses)} responses")
    last, layers = _mean_pooled(model, responses, batch_size=batch_size, every_layer=True)
    assert layers is not None  # every_layer=True gives them
    texts = [last_user_text(prompt) for prompt in prompts]
    distinct = list(dict.fromkeys(texts))  # a prompt's candidates share its embedding
    prompt_table = F.normalize(_mean_pooled(model, distinct, batch_size=batch_size, every_layer=False)[0], dim=-1)
    position = {text: index for index, text in enumerate(distinct)}
    prompt_vectors = prompt_table[[position[text] for text in texts]]
    product = prompt_vectors * F.normalize(last, dim=-1)
    return torch.cat([F.normalize(layers, dim=-1), product, length_features(responses)], dim=1)


SUMMARY_FEATURES = 4  # summary-first: the cosine similarity and the three length features lead the table
SUMMARY_L2_SHARE = 0.01  # their penalty, as a share of the embedding parts' l2


def summary_first_features(
    model: RewardModel, prompts: Sequence[Sequence[Message]], responses: Sequence[str], *, batch_size: int = 16
) -> torch.Tensor:
    """(N, 4 + 2H): `prompt_aware_features` laid out as `summary_first_layout` says."""
    return summary_first_layout(prompt_aware_features(model, prompts, responses, batch_size=batch_size))


def summary_first_layout(prompt_aware: torch.Tensor) -> torch.Tensor:
    """(N, 4 + 2H) from prompt-aware features (N, 2H + 3): the prompt-response cosine similarity (the sum of
    the product part, the embeddings being unit length), the three length features, then the response and
    product parts."""
    hidden = (prompt_aware.shape[1] - 3) // 2
    response, product, length = prompt_aware.split([hidden, hidden, 3], dim=1)
    return torch.cat([product.sum(dim=1, keepdim=True), length, response, product], dim=1)


def feature_penalties(kind: FeatureKind, width: int, l2: float) -> torch.Tensor:
    """(width,) the l2 penalty of each feature: `l2` everywhere, but a share of it on summary-first's lead."""
    penalties = torch.full((width,), float(l2))
    if kind == "summary-first":
        penalties[:SUMMARY_FEATURES] = l2 * SUMMARY_L2_SHARE
    return penalties


def extract_features(
    model: RewardModel, prompts: Sequence[Sequence[Message]], responses: Sequence[str], *, batch_size: int = 16
) -> torch.Tensor:
    """The pooled input of the scalar head, read with a forward hook so that pooling is the model's own."""
    captured: list[torch.Tensor] = []
    head = head_module(model.model)
    handle = head.register_forward_hook(lambda _module, inputs, _output: captured.append(inputs[0].detach()))
    encoded = [model.encode(prompt, response) for prompt, response in zip(prompts, responses, strict=True)]
    order = sorted(range(len(encoded)), key=lambda index: -len(encoded[index].input_ids))
    features: torch.Tensor | None = None
    pad = model.tokenizer.pad_token_id
    model.model.eval()
    from rich.progress import track

    try:
        with torch.no_grad():
            starts = range(0, len(order), batch_size)
            for start in track(starts, description="features", transient=True, disable=len(starts) < 4):
                chunk = order[start : start + batch_size]
                batch = model.collate([encoded[index] for index in chunk])
                captured.clear()
                model.raw_scores(batch)
                hidden = captured[-1]
                if hidden.dim() == 3:  # causal LMs score every position and keep the last real token's
                    non_pad = (batch["input_ids"] != pad).int()
                    last = (torch.arange(non_pad.shape[1]) * non_pad).argmax(-1)
                    hidden = hidden[torch.arange(hidden.shape[0]), last.to(hidden.device)]
                if features is None:
                    features = torch.zeros((len(encoded), hidden.shape[-1]))
                features[chunk] = hidden.float().cpu()
    finally:
        handle.remove()
    if features is None:
        raise ApprenticeError("no responses to compute features for")
    return features


def fit_head(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    pairs: Sequence[RewardPair],
    *,
    l2: float | torch.Tensor,
    steps: int,
    seed: int,
    margin_scale: float = 1.0,
) -> torch.Tensor:
    """A linear head (H,) minimizing the weighted Bradley-Terry loss + sum_j l2_j w_j^2 on fixed features, by
    L-BFGS; `l2` is one penalty for every feature or (H,) penalties, one per feature.

    Features are standardized while fitting (their scales differ by orders of magnitude in LLMs),
    and the scale is folded back into the weights, so the head applies to raw features.
    """
    both = torch.cat([chosen, rejected])
    scale = both.std(dim=0).clamp_min(1e-6)
    difference = (chosen - rejected) / scale  # (P, H); the bias cancels in a difference
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(chosen.shape[1], generator=generator) / math.sqrt(chosen.shape[1] + 1)
    weight.requires_grad_(True)
    margins = torch.tensor([p.margin * margin_scale for p in pairs])
    targets = torch.tensor([p.target for p in pairs])
    weights = torch.tensor([p.weight for p in pairs])
    optimizer = torch.optim.LBFGS([weight], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        scores = difference @ weight
        loss = bradley_terry_loss(scores, torch.zeros_like(scores), margins=margins, targets=targets, weights=weights)
        loss = loss + (l2 * weight.pow(2)).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return (weight.detach() / scale).float()


def fit_heads(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    pairs: Sequence[RewardPair],
    *,
    heads: int,
    l2: float | torch.Tensor,
    steps: int,
    bootstrap: bool = True,
    seed: int = 0,
    margin_scale: float = 1.0,
) -> list[torch.Tensor]:
    """`heads` linear heads (`fit_head`) on the pairs' chosen and rejected features (P, D), each on its own
    bootstrap resample of the pairs (all of them for a single head or without `bootstrap`)."""
    rng = random.Random(seed)
    fitted = []
    for head in range(heads):
        rows = [rng.randrange(len(pairs)) for _ in pairs] if bootstrap and heads > 1 else list(range(len(pairs)))
        fitted.append(
            fit_head(
                chosen[rows],
                rejected[rows],
                [pairs[r] for r in rows],
                l2=l2,
                steps=steps,
                seed=seed + head,
                margin_scale=margin_scale,
            )
        )
    return fitted


def out_of_fold_evaluation(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    pairs: Sequence[RewardPair],
    *,
    folds: int,
    heads: int,
    l2: float | torch.Tensor,
    steps: int,
    bootstrap: bool = True,
    seed: int = 0,
    margin_scale: float = 1.0,
) -> dict[str, Any]:
    """The ensemble's evaluation by cross-validation over prompts: the pairs are dealt into `folds` folds by
    prompt (`prompt_folds`), and each fold's strict pairs are scored by the mean normalized reward of
    `heads` heads fitted (`fit_heads`) on the other folds' pairs. Every pair is then held out once.

    `accuracy_over_prompts` is the mean over prompts of each prompt's share of pairs ordered right, with a
    95% bootstrap interval over prompts, as the loop's win rates are.

    Why not a held-out share: with a few dozen labels a round, a fifth of the prompts leaves the reward
    a fifth fewer labels to learn from and an accuracy on some ten pairs, too few to tell from a coin.
    Heads on fixed features fit in milliseconds, so refitting them per fold costs nothing worth counting.
    Empty when the pairs have fewer than two prompts. Ties train but are not scored, as in evaluation_pairs.
    """
    prompts = len({prompt_key(pair.prompt) for pair in pairs})
    if prompts < 2 or folds < 2:
        return {}
    fold_of = prompt_folds([pair.prompt for pair in pairs], min(folds, prompts), seed=seed)
    chosen_scores = torch.zeros(len(pairs))
    rejected_scores = torch.zeros(len(pairs))
    for fold in sorted(set(fold_of)):
        kept = [index for index, other in enumerate(fold_of) if other != fold]
        held = [index for index, other in enumerate(fold_of) if other == fold]
        fitted = fit_heads(
            chosen[kept],
            rejected[kept],
            [pairs[index] for index in kept],
            heads=heads,
            l2=l2,
            steps=steps,
            bootstrap=bootstrap,
            seed=seed + fold,
            margin_scale=margin_scale,
        )
        # each head normalized by its spread over the fold's training responses, as the saved heads are
        seen = torch.cat([chosen[kept], rejected[kept]])
        for weight in fitted:
            spread = float((seen @ weight).std()) or 1.0
            chosen_scores[held] += (chosen[held] @ weight) / spread / len(fitted)
            rejected_scores[held] += (rejected[held] @ weight) / spread / len(fitted)
    strict = [index for index, pair in enumerate(pairs) if pair.target != 0.5]
    chosen_held, rejected_held = chosen_scores[strict].tolist(), rejected_scores[strict].tolist()
    evaluation = evaluate_scores([pairs[index] for index in strict], chosen_held, rejected_held)
    evaluation["method"] = f"cross-validation over prompts, {len(set(fold_of))} folds"
    # A prompt's pairs share its responses, so they are not independent: the interval resamples prompts.
    right = win_outcomes(chosen_held, rejected_held)
    shares = per_prompt_means(right, [prompt_key(pairs[index].prompt) for index in strict])
    if shares:
        rate, low, high = cluster_bootstrap_mean(shares)
        evaluation["accuracy_over_prompts"] = {
            "rate": rate,
            "low": low,
            "high": high,
            "n": len(strict),
            "prompts": len(shares),
        }
    return evaluation


def train_shared_backbone_ensemble(
    train: PreferenceData,
    run_dir: Path,
    *,
    model: str,
    heads: int = 5,
    max_length: int = 512,
    l2: float = 1e-3,
    steps: int = 200,
    bootstrap: bool = True,
    seed: int = 0,
    margin_scale: float = 1.0,
    validation: PreferenceData | None = None,
    batch_size: int = 16,
    features: FeatureKind = "head-input",
    cross_validation_folds: int = 0,
) -> tuple[SharedBackboneEnsemble, dict[str, Any]]:
    """Features once, K heads on bootstrap resamples, normalization per head; saved to run_dir.

    The evaluation is on `validation` when given; else, with `cross_validation_folds` >= 2, on every
    training pair, each scored by heads fitted without its prompt's pairs (`out_of_fold_evaluation`), so
    that all the labels train the saved heads and all of them measure it."""
    if heads < 1:
        raise ApprenticeError(f"heads must be at least 1, got {heads}")
    _check_feature_kind(features)  # before the features are computed, not after
    pairs = evaluation_pairs(train) + [pair for pair in train.pairs if pair.target == 0.5]
    if not pairs:
        raise ApprenticeError("no training pairs: the judgments gave nothing to learn from")
    backbone = RewardModel.from_backbone(model, max_length=max_length, train_mode="full", seed=seed)
    for parameter in backbone.model.parameters():
        parameter.requires_grad_(False)
    texts = _distinct_texts(pairs)
    index = {key: position for position, key in enumerate(texts)}
    table = compute_features(
        backbone, features, [p for p, _ in texts.values()], [r for _, r in texts.values()], batch_size=batch_size
    )
    chosen = table[[index[_key(p.prompt, p.chosen)] for p in pairs]]
    rejected = table[[index[_key(p.prompt, p.rejected)] for p in pairs]]
    penalties = feature_penalties(features, table.shape[1], l2)
    head_weights = fit_heads(
        chosen,
        rejected,
        pairs,
        heads=heads,
        l2=penalties,
        steps=steps,
        bootstrap=bootstrap,
        seed=seed,
        margin_scale=margin_scale,
    )
    normalizations = []
    for weight in head_weights:
        raw = table @ weight
        normalizations.append(
            Normalization(float(raw.mean()), float(raw.std()) or 1.0, f"{len(texts)} of the training responses")
        )
    initialize_head(head_module(backbone.model), backbone.model.config.hidden_size)
    ensemble = SharedBackboneEnsemble(backbone, torch.stack(head_weights), normalizations, features=features)
    if validation is not None and len(validation):
        evaluation = evaluate_ensemble(ensemble, validation)
    elif cross_validation_folds >= 2:
        evaluation = out_of_fold_evaluation(
            chosen,
            rejected,
            pairs,
            folds=cross_validation_folds,
            heads=heads,
            l2=penalties,
            steps=steps,
            bootstrap=bootstrap,
            seed=seed,
            margin_scale=margin_scale,
        )
    else:
        evaluation = {}
    run_dir.mkdir(parents=True, exist_ok=True)
    ensemble.save(run_dir)
    if evaluation:
        (run_dir / "eval.json").write_text(json.dumps(evaluation, indent=2) + "\n", encoding="utf-8")
    return ensemble, evaluation


# -- either kind ----------------------------------------------------------------------------------


def load_ensemble(folder: Path) -> MemberEnsemble | SharedBackboneEnsemble:
    from safetensors.torch import load_file

    info_path = folder / ENSEMBLE_FILE
    if not info_path.is_file():
        raise ApprenticeError(f"{folder} is not a reward ensemble (no {ENSEMBLE_FILE})")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info["kind"] == "members":
        return MemberEnsemble([RewardModel.load(folder / member) for member in info["members"]])
    backbone = RewardModel.load(folder / info["backbone"])
    weights = load_file(str(folder / HEADS_FILE))["weights"]
    normalizations = [Normalization(**n) for n in info["normalizations"]]
    # ensembles saved before the choice existed read the head input
    return SharedBackboneEnsemble(backbone, weights, normalizations, features=info.get("features", "head-input"))


def evaluate_ensemble(ensemble: MemberEnsemble | SharedBackboneEnsemble, data: PreferenceData) -> dict[str, Any]:
    """The evaluation of the mean reward, with the mean spread and each member's accuracy beside it."""
    pairs = evaluation_pairs(data)
    scores = ensemble.score([p.prompt for p in pairs] * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs])
    count = len(pairs)
    report = evaluate_scores(pairs, scores.mean[:count], scores.mean[count:])
    report["member_accuracies"] = [
        sum(1.0 for c, r in zip(member[:count], member[count:], strict=True) if c > r) / count if count else math.nan
        for member in scores.members
    ]
    report["mean_spread"] = sum(scores.std) / len(scores.std) if scores.std else math.nan
    report["score_distribution"] = score_distribution(scores.mean)
    report["note"] = "calibration uses the mean of normalized member rewards"
    return report


def _key(prompt: Sequence[Message], response: str) -> tuple[str, str]:
    return json.dumps(list(prompt), sort_keys=True), response


def _distinct_texts(pairs: Sequence[RewardPair]) -> dict[tuple[str, str], tuple[Sequence[Message], str]]:
    texts: dict[tuple[str, str], tuple[Sequence[Message], str]] = {}
    for pair in pairs:
        for response in (pair.chosen, pair.rejected):
            texts.setdefault(_key(pair.prompt, response), (pair.prompt, response))
    return texts


def _responses(data: PreferenceData) -> list[tuple[Sequence[Message], str]]:
    return list(_distinct_texts(evaluation_pairs(data) + list(data.pairs)).values())
