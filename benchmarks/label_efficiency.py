"""Label efficiency: reward-model validation accuracy against the number of labels, active against random.

Setting. Real text: the HH-RLHF harmless-base pairs (2,312 in the file), split by prompt into a pool of
candidate comparisons (80%) and a fixed validation set (20%). The reward model is a cheap ensemble in
the manner of `apprentice.reward.ensemble`'s shared backbone: a frozen all-MiniLM-L6-v2, the features of
every response computed once (cached under benchmarks/results/), then K = 32 linear Bradley-Terry heads,
each on its own bootstrap resample of the labels, refitted after every acquisition step
(`selection_research.fit_bootstrap_heads`: fit_head's objective, solved by Newton's method for all
heads at once, because L-BFGS per head took about half a second on this busy 2-core machine).
Features (`--features`):
- `mean` (default): MiniLM's mean-pooled sentence embedding of the response, projected on the pool's
  top 64 principal components (`--components`; no labels used) to keep the refits cheap.
- `pooler`: the input of the reward model's head (`extract_features`: MiniLM's CLS pooler on the last
  user message and the response), what `train_shared_backbone_ensemble` fits on. Measured here with
  all 1,843 noise-free pool labels it reaches only about 0.61 on the sentiment oracle (the CLS pooler
  was not trained for all-MiniLM's sentence meaning), too little for a label-efficiency curve.

Pools (`--pool`):
- `hh-pairs` (default): HH-RLHF's chosen and rejected response of each prompt, one pair per prompt.
- `candidates`: the loop's kind of pool. The default policy (SmolLM2-135M-Instruct) writes K = 8 responses
  (`--candidates`) to each of 640 HH-RLHF prompts (`--candidate-prompts`; the last user message, in a
  seeded order), sampled with the loop's generation settings (temperature 0.7, top-p 0.9) up to 64 tokens;
  every pair of a prompt's distinct responses is a comparison (14,567 in the pool, 3,332 for validation,
  by HH's split of the prompt). Generated in chunks of 64 prompts and cached: about 30 minutes on 2 cores
  the first time. The features are projected on the HH pool's components and the gold is the same gold
  reward model (fitted on HH's labels), so only the pool differs. No human labels: gold settings only.

Acquisition. Every run starts from the same 32 random labels (per seed), then adds 32 per step,
chosen from the unlabeled pool by the rule, up to 512 labels. Rules (`apprentice.selection`):
random (the baseline), disagreement (spread of the heads' margins, Christiano et al. 2017), bald,
uncertainty, epig. Fairness: for one seed, every rule gets the same starting labels, the same label for
each pool pair (drawn once, before any rule runs), and the same head training (the bootstrap draws
depend only on the seed and the step); only the choice of the next labels differs.

What was tried and left out, how the budgets and seeds were chosen, and why BALD is the loop's default:
`benchmarks/notes/label_efficiency.md`. Current figures and their commands: `benchmarks/README.md`.

Labels, five settings (`--labels`); simulated annotators are `apprentice.simulate`'s decision model:
- `gold-rm` (the headline): the gold is a reward model of the learners' own form (a linear head on the
  same 64 components) fitted on all 2,303 HH-RLHF human labels, as Gao et al. (2022) use a gold reward
  model; simulated annotators make Bradley-Terry choices on its scores, the temperature calibrated so
  that two of them agree 73% of the time (InstructGPT's labelers). The target is within the learners'
  reach, so the curves measure which labels to ask for rather than what a linear head cannot represent.
- `gold-rm-clean`: the same gold, annotators who agree 95% of the time (`--clean-agreement`): less
  noise than people show, a reference for how much the label noise caps the saving.
- `oracle`: the same annotators on a built-in gold oracle (`--oracle`, default `sentiment`: VADER on
  the response). A linear head on MiniLM embeddings gets only about 0.62-0.65 of its order right
  even with every pool label, so the curves are flat and close together.
- `oracle-flips`: the oracle's order, flipped 25% of the time (AlpacaFarm's simulators).
- `human`: the HH-RLHF labels themselves (chosen wins). They are noisy, and the model sees only the
  response, not the dialogue, so expect little above chance.
Accuracy is measured against the gold order of the validation pairs (gold ties left out), because
that is what the reward model is meant to learn; for `human`, against the human labels.

The report: per setting, accuracy (mean and sd over seeds) against labels per rule; the labels each
rule needs to reach random's final accuracy, read on the curves averaged over seeds (at a measured point
and interpolated between points), its share of random's labels with a 95% interval over seeds and
whether that meets the goal of half or fewer, and per seed; then a summary of the shares over settings,
a PNG plot and a JSON file under benchmarks/results/. The first run computes the features (minutes on 2
cores).

    python benchmarks/label_efficiency.py                  # all five label settings, seeds 0-29 (9 min)
    python benchmarks/label_efficiency.py --labels gold-rm --rules random bald --seeds 10
    python benchmarks/label_efficiency.py --first-seed 100  # the seeds the choices were made on
    python benchmarks/label_efficiency.py --labels gold-rm --rules random bald gold-fisher --l2 1e-4 --seeds 10
"""

from __future__ import annotations

import os

# Small dense algebra, refitted hundreds of times: OpenBLAS's threads only spin against each other on 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apprentice.files import write_text_atomically
from apprentice.importing import read_import_file
from apprentice.oracles import embed, load_oracle
from apprentice.reward.data import RewardPair, pairs_from_records, split_by_prompt
from apprentice.reward.ensemble import extract_features
from apprentice.reward.model import RewardModel
from apprentice.simulate import (
    HUMAN_AGREEMENT,
    AnnotatorProfile,
    answer_prob_first,
    calibrate_temperature,
    choose_first,
)
from apprentice.store.records import Message
from selection_research import (
    CurvePoint,
    acquisition_curve,
    bootstrap_counts,
    fisher_design_batch,
    fit_bootstrap_heads,
    labels_to_reach,
    labels_to_reach_interpolated,
    mean_curve,
    share_by_budget,
    share_interval,
)
from shared_data import HH_RLHF_HARMLESS

ROOT = Path(__file__).resolve().parents[1]
DATA = HH_RLHF_HARMLESS
RESULTS = ROOT / "benchmarks" / "results"


# -- the data, its features and its gold scores (computed once, cached) ---------------------------


@dataclass
class PairTable:
    """Comparisons as rows: response a against response b of the same prompt, with their features."""

    prompts: list[str]  # the last user message
    text_a: list[str]  # HH's chosen response
    text_b: list[str]  # HH's rejected response
    features_a: np.ndarray  # (N, H)
    features_b: np.ndarray  # (N, H)

    def project(self, mean: np.ndarray, components: np.ndarray) -> PairTable:
        return PairTable(
            self.prompts,
            self.text_a,
            self.text_b,
            (self.features_a - mean) @ components,
            (self.features_b - mean) @ components,
        )


def principal_components(pool: PairTable, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and top `count` principal directions (H, count) of the pool's responses: no labels used."""
    stacked = np.concatenate([pool.features_a, pool.features_b])
    mean = stacked.mean(axis=0)
    _, _, directions = np.linalg.svd(stacked - mean, full_matrices=False)
    return mean, directions[:count].T


def short_prompt(pair: RewardPair) -> list[Message]:
    last_user = [message for message in pair.prompt if message["role"] == "user"][-1]
    return [{"role": "user", "content": last_user["content"]}]


def load_split(path: Path, seed: int = 0) -> tuple[list[RewardPair], list[RewardPair]]:
    data = pairs_from_records(read_import_file(path).pairs)
    pool, validation = split_by_prompt(data, validation_share=0.2, seed=seed)
    return pool.pairs, validation.pairs


def _cache_key(*parts: object) -> str:
    return hashlib.sha256(json.dumps([str(part) for part in parts]).encode()).hexdigest()[:16]


def sentence_embeddings(texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """MiniLM's mean-pooled sentence embeddings, computed in batches of similar length (less padding)."""
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    embedded = embed([texts[index] for index in order], batch_size=batch_size)
    result = torch.zeros_like(embedded)
    result[order] = embedded
    return result


def cached_tensors(path: Path, compute: Callable[[], Any]) -> Any:
    """What `compute` returns, saved by torch at `path` the first time (whole or not at all) and loaded after."""
    if path.is_file():
        return torch.load(path)
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(value, partial)
    partial.replace(path)
    return value


def pair_table(
    pairs: Sequence[RewardPair], *, kind: str, backbone: str, max_length: int, cache: Path, batch_size: int = 32
) -> PairTable:
    prompts = [short_prompt(pair) for pair in pairs]
    texts = [(p[0]["content"], q.chosen, q.rejected) for p, q in zip(prompts, pairs, strict=True)]
    key = _cache_key(backbone, max_length, texts) if kind == "pooler" else _cache_key("mean", texts)
    responses = [pair.chosen for pair in pairs] + [pair.rejected for pair in pairs]

    def compute() -> dict[str, torch.Tensor]:
        if kind == "mean":
            both = sentence_embeddings(responses)
        else:
            model = RewardModel.from_backbone(backbone, max_length=max_length)
            both = extract_features(model, prompts * 2, responses, batch_size=batch_size)
        return {"a": both[: len(pairs)], "b": both[len(pairs) :]}

    features = cached_tensors(cache / f"features-{key}.pt", compute)
    return PairTable(
        [p[0]["content"] for p in prompts],
        [pair.chosen for pair in pairs],
        [pair.rejected for pair in pairs],
        features["a"].double().numpy(),
        features["b"].double().numpy(),
    )


# -- the loop's kind of pool: K candidates per prompt from the default policy, every pair of them ---------

CANDIDATE_CHUNK = 64  # prompts generated (and cached) together, so a larger --candidate-prompts reuses the rest


def candidate_prompts(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """(split, last user message) of `count` distinct HH-RLHF prompts in a seeded order; the split is HH's by prompt."""
    pool_pairs, validation_pairs = load_split(DATA)
    seen: set[str] = set()
    rows = []
    for split, pairs in (("pool", pool_pairs), ("validation", validation_pairs)):
        for pair in pairs:
            text = short_prompt(pair)[0]["content"]
            if text not in seen:
                seen.add(text)
                rows.append((split, text))
    random.Random(seed).shuffle(rows)
    if count > len(rows):
        raise SystemExit(f"--candidate-prompts {count}: HH-RLHF has only {len(rows)} distinct prompts")
    return rows[:count]


def generate_candidate_responses(
    rows: Sequence[tuple[str, str]], *, candidates: int, new_tokens: int, cache: Path
) -> dict[str, list[str]]:
    """The default policy's distinct responses to each prompt, sampled as the loop samples (its generation settings)."""
    from apprentice.generation import PromptToAnswer, generate_candidates
    from apprentice.models import load_policy
    from apprentice.settings import GenerationSection

    settings = GenerationSection(candidates=candidates, max_new_tokens=new_tokens)
    responses: dict[str, list[str]] = {}
    model = tokenizer = None
    for start in range(0, len(rows), CANDIDATE_CHUNK):
        chunk = [text for _, text in rows[start : start + CANDIDATE_CHUNK]]
        path = cache / f"candidates-{_cache_key('default', settings.model_dump(), chunk)}.json"
        if not path.is_file():
            if model is None:
                model, tokenizer = load_policy("default")
            print(f"generating {candidates} responses to prompts {start}-{start + len(chunk) - 1} (cached in {cache})")
            prompts = [PromptToAnswer(index, [{"role": "user", "content": text}]) for index, text in enumerate(chunk)]
            result = generate_candidates(model, tokenizer, prompts, settings)
            texts: list[list[str]] = [[] for _ in chunk]
            for response in result.responses:
                texts[response.prompt_id].append(response.text)
            write_text_atomically(path, json.dumps(texts))  # half an hour of generation: never a torn file
        for text, answers in zip(chunk, json.loads(path.read_text(encoding="utf-8")), strict=True):
            # Identical answers (a stock refusal) make a pair with no preference to learn: one copy each.
            responses[text] = [answer for i, answer in enumerate(answers) if answer and answer not in answers[:i]]
    return responses


def candidate_tables(args: argparse.Namespace, cache: Path) -> tuple[PairTable, PairTable]:
    """Every pair of a prompt's distinct candidates, in the pool or the validation set by HH's split of the prompt."""
    rows = candidate_prompts(args.candidate_prompts)
    responses = generate_candidate_responses(
        rows, candidates=args.candidates, new_tokens=args.candidate_tokens, cache=cache
    )
    texts = sorted({answer for answers in responses.values() for answer in answers})
    embedded = cached_tensors(cache / f"features-{_cache_key('mean', texts)}.pt", lambda: sentence_embeddings(texts))
    features = embedded.double().numpy()
    row_of = {text: row for row, text in enumerate(texts)}

    def table(split: str) -> PairTable:
        pairs = [
            (prompt, a, b)
            for kind, prompt in rows
            if kind == split
            for i, a in enumerate(responses[prompt])
            for b in responses[prompt][i + 1 :]
        ]
        return PairTable(
            [prompt for prompt, _, _ in pairs],
            [a for _, a, _ in pairs],
            [b for _, _, b in pairs],
            features[[row_of[a] for _, a, _ in pairs]],
            features[[row_of[b] for _, _, b in pairs]],
        )

    return table("pool"), table("validation")


def gold_scores(table: PairTable, oracle: str, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    key = _cache_key(oracle, table.prompts, table.text_a, table.text_b)
    path = cache / f"gold-{oracle.replace(':', '_')}-{key}.json"
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
    else:
        score = load_oracle(oracle)
        stored = {"a": score(table.prompts, table.text_a), "b": score(table.prompts, table.text_b)}
        write_text_atomically(path, json.dumps(stored))
    return np.asarray(stored["a"], dtype=np.float64), np.asarray(stored["b"], dtype=np.float64)


def gold_reward_model(
    hh_pool: PairTable, hh_validation: PairTable, scored: Sequence[PairTable], *, l2: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Gold scores of the `scored` tables' responses from a reward model fitted on every HH-RLHF label.

    Fitted on the pool's and the validation set's human labels, as Gao et al. use a gold reward model. It
    has the learners' form (a linear head on the same features), so the target is within their reach and
    the benchmark measures which labels to ask for, not what a linear head cannot represent.
    """
    winners = np.concatenate([hh_pool.features_a, hh_validation.features_a])
    losers = np.concatenate([hh_pool.features_b, hh_validation.features_b])
    head = fit_bootstrap_heads(winners, losers, np.ones((1, len(winners))), l2=l2)[0]
    return [(table.features_a @ head, table.features_b @ head) for table in scored]


def prepare(args: argparse.Namespace) -> tuple[PairTable, PairTable]:
    pool_pairs, validation_pairs = load_split(args.data)
    cache = args.out / "label_efficiency_cache"
    started = time.perf_counter()
    settings = {"kind": args.features, "backbone": args.backbone, "max_length": args.max_length, "cache": cache}
    validation = pair_table(validation_pairs, **settings)
    pool = pair_table(pool_pairs, **settings)
    print(
        f"features: {len(pool.prompts)} pool and {len(validation.prompts)} validation pairs "
        f"({time.perf_counter() - started:.0f} s, cached in {cache})"
    )
    return pool, validation


# -- labels -----------------------------------------------------------------------------------------

LABEL_SETTINGS = ("gold-rm", "gold-rm-clean", "human", "oracle", "oracle-flips")
GOAL_SHARE = 0.5  # active selection should need at most half of random's labels


@dataclass
class Labels:
    """Which response wins each pool pair (drawn once per seed) and the truth to measure validation against."""

    pool_a_wins: np.ndarray  # (N_pool,) bool, what the annotator said
    validation_a_wins: np.ndarray  # (N_val,) bool, the truth
    validation_mask: np.ndarray  # (N_val,) bool, pairs with a truth (gold ties have none)
    pool_truth_agreement: float  # share of pool labels that match the gold order (1.0 for human labels)
    note: str
    # (N_pool,) the annotators' chance of answering "a wins", known only to a simulation (None for human labels)
    pool_win_probability: np.ndarray | None = None


def draw_labels(
    setting: str,
    seed: int,
    gold: tuple[np.ndarray, np.ndarray] | None,
    gold_validation: tuple[np.ndarray, np.ndarray] | None,
    pool_size: int,
    validation_size: int,
    agreement: float,
    flip_rate: float,
) -> Labels:
    if setting == "human":
        return Labels(
            np.ones(pool_size, bool),
            np.ones(validation_size, bool),
            np.ones(validation_size, bool),
            1.0,
            "HH-RLHF labels: the chosen response wins",
        )
    assert gold is not None and gold_validation is not None
    pool_a, pool_b = gold
    if setting in ("oracle", "gold-rm", "gold-rm-clean"):
        temperature = calibrate_temperature(list(pool_a - pool_b), agreement)
        profile = AnnotatorProfile("simulated", temperature=temperature)
        note = (
            f"Bradley-Terry choices on the gold, temperature {temperature:.4f} (two annotators agree {agreement:.0%})"
        )
    elif setting == "oracle-flips":
        profile = AnnotatorProfile("flips", temperature=1e-9, flip_rate=flip_rate)
        note = f"the oracle's order, flipped {flip_rate:.0%} of the time (AlpacaFarm)"
    else:
        raise ValueError(f"unknown label setting {setting!r}")
    rng = random.Random(seed)
    said = np.array([choose_first(float(a), float(b), profile, rng) for a, b in zip(pool_a, pool_b, strict=True)])
    win_probability = np.array(
        [answer_prob_first(float(a), float(b), profile) for a, b in zip(pool_a, pool_b, strict=True)]
    )
    decided = pool_a != pool_b
    truth_agreement = float(np.mean(said[decided] == (pool_a > pool_b)[decided]))
    validation_a, validation_b = gold_validation
    return Labels(
        said, validation_a > validation_b, validation_a != validation_b, truth_agreement, note, win_probability
    )


# -- the reward-model ensemble: K linear heads on frozen features ---------------------------------


@dataclass(frozen=True)
class HeadConfig:
    heads: int = 32
    l2: float = 1e-2


def fit_ensemble(
    pool: PairTable, labels: Labels, labeled: list[int], step: int, *, seed: int, config: HeadConfig
) -> np.ndarray:
    """(K, H) heads, each on a bootstrap resample of the labeled pairs; the draws depend on seed and step only."""
    a_wins = labels.pool_a_wins[labeled][:, None]
    winners = np.where(a_wins, pool.features_a[labeled], pool.features_b[labeled])
    losers = np.where(a_wins, pool.features_b[labeled], pool.features_a[labeled])
    counts = bootstrap_counts(len(labeled), config.heads, np.random.default_rng([seed, step]))
    return fit_bootstrap_heads(winners, losers, counts, l2=config.l2)


def margins(heads: np.ndarray, table: PairTable) -> np.ndarray:
    """(K, N): each head's reward of response a minus response b."""
    return np.asarray(heads @ (table.features_a - table.features_b).T, dtype=np.float64)


def validation_accuracy(heads: np.ndarray, validation: PairTable, labels: Labels) -> float:
    mean_margin = margins(heads, validation).mean(axis=0)[labels.validation_mask]
    truth = labels.validation_a_wins[labels.validation_mask]
    correct = np.where(mean_margin == 0, 0.5, (mean_margin > 0) == truth)
    return float(np.mean(correct))


# -- the experiment ---------------------------------------------------------------------------------

RULE_NAMES = ("random", "disagreement", "bald", "uncertainty", "epig")
# Offered but not run by default until measured on the design seeds (see the docstring): greedy batches of
# expected error reduction (`selection_research.expected_error_reduction_batch`); and `gold-fisher`, not a
# rule but a reference: the optimal design for the annotators' true probabilities, which only the simulation
# knows (`selection_research.fisher_design_batch`), to show how much any rule could save.
EXTRA_RULES = ("eer", "gold-fisher")
REFERENCE_DESIGNS = ("gold-fisher",)


def run_setting(
    setting: str,
    pool: PairTable,
    validation: PairTable,
    golds: dict[str, tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]],
    args: argparse.Namespace,
    progress: Any,
    task: Any,
) -> dict[str, Any]:
    gold, gold_validation = golds.get(setting, (None, None))
    config = HeadConfig(heads=args.heads, l2=args.l2)
    runs: dict[str, list[list[CurvePoint]]] = {rule: [] for rule in args.rules}
    ceilings, notes, truth_agreements = [], set(), []
    agreement = args.clean_agreement if setting == "gold-rm-clean" else args.agreement
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        labels = draw_labels(
            setting,
            seed,
            gold,
            gold_validation,
            len(pool.prompts),
            len(validation.prompts),
            agreement,
            args.flip_rate,
        )
        notes.add(labels.note)
        truth_agreements.append(labels.pool_truth_agreement)
        initial = random.Random(10_000 + seed).sample(range(len(pool.prompts)), args.initial)
        for rule in args.rules:
            choose_batch = None
            if rule == "gold-fisher":
                choose_batch = partial(
                    _gold_fisher, pool.features_a - pool.features_b, labels.pool_win_probability, args.fisher_ridge
                )
            run = acquisition_curve(
                rule,
                initial=initial,
                batch=args.batch,
                steps=args.steps,
                fit=partial(fit_ensemble, pool, labels, seed=seed, config=config),
                pool_margins=partial(margins, table=pool),
                accuracy=partial(validation_accuracy, validation=validation, labels=labels),
                seed=seed,
                choose_batch=choose_batch,
            )
            runs[rule].append(run.curve)
            progress.advance(task)
        everything = fit_ensemble(pool, labels, list(range(len(pool.prompts))), 0, seed=seed, config=config)
        ceilings.append(validation_accuracy(everything, validation, labels))
    return summarize(setting, runs, ceilings, sorted(notes), truth_agreements, gold_validation)


def _gold_fisher(
    differences: np.ndarray,
    win_probability: np.ndarray | None,
    ridge: float,
    model: Any,
    labeled: list[int],
    batch: int,
) -> list[int]:
    if win_probability is None:
        raise SystemExit("gold-fisher needs simulated annotators: it has no true probabilities for human labels")
    return fisher_design_batch(differences, win_probability, labeled, batch, ridge=ridge)


def summarize(
    setting: str,
    runs: dict[str, list[list[CurvePoint]]],
    ceilings: list[float],
    notes: list[str],
    truth_agreements: list[float],
    gold_validation: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, Any]:
    label_counts = [point.labels for point in runs["random"][0]]
    mean_curves = {rule: mean_curve(curves) for rule, curves in runs.items()}
    random_final_per_seed = [curve[-1].accuracy for curve in runs["random"]]
    random_final_mean = mean_curves["random"][-1].accuracy
    final_labels = label_counts[-1]
    reach = {}
    for rule, curves in runs.items():
        if rule == "random":
            continue
        per_seed = [labels_to_reach(curve, final) for curve, final in zip(curves, random_final_per_seed, strict=True)]
        interpolated = labels_to_reach_interpolated(mean_curves[rule], random_final_mean)
        reach[rule] = {
            "per_seed": per_seed,
            "mean_curve": labels_to_reach(mean_curves[rule], random_final_mean),
            "mean_curve_interpolated": interpolated,
            "share_of_random": None if interpolated is None else interpolated / final_labels,
            "share_of_random_interval": share_interval(curves, runs["random"]),
            "meets_goal": interpolated is not None and interpolated <= GOAL_SHARE * final_labels,
            "median_per_seed": _median_with_never(per_seed),
            "share_by_budget": {
                str(budget): share
                for budget, share in share_by_budget(mean_curves[rule], mean_curves["random"]).items()
            },
        }
    return {
        "labels": setting,
        "notes": notes,
        "pool_labels_matching_gold": float(np.mean(truth_agreements)),
        "validation_pairs_measured": None
        if gold_validation is None
        else int(np.sum(gold_validation[0] != gold_validation[1])),
        "label_counts": label_counts,
        "accuracy": {rule: [[p.accuracy for p in curve] for curve in curves] for rule, curves in runs.items()},
        "mean_accuracy": {rule: [p.accuracy for p in curve] for rule, curve in mean_curves.items()},
        "random_final_accuracy_per_seed": random_final_per_seed,
        "random_final_accuracy_mean": random_final_mean,
        "all_pool_labels_accuracy_per_seed": ceilings,
        "labels_to_reach_random_final": reach,
    }


def _median_with_never(values: Sequence[int | None]) -> float | None:
    """Median where 'never reached' counts as more than any number (None if half or more never reach)."""
    ordered = sorted(values, key=lambda v: math.inf if v is None else v)
    middle = ordered[(len(ordered) - 1) // 2], ordered[len(ordered) // 2]
    if None in middle:
        return None
    return (middle[0] + middle[1]) / 2  # type: ignore[operator]


# -- reporting ------------------------------------------------------------------------------------


def print_report(result: dict[str, Any], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    counts = result["label_counts"]
    final_labels = counts[-1]
    title = f"labels: {result['labels']}" + (f" ({args.oracle})" if result["labels"].startswith("oracle") else "")
    table = Table(title=f"{title}: validation accuracy, mean ± sd over {args.seeds} seeds")
    table.add_column("labels", justify="right")
    for rule in result["accuracy"]:
        table.add_column(rule, justify="right")
    shown = [n for n in counts if n in _shown_counts(counts)]
    for n in shown:
        i = counts.index(n)
        cells = []
        for curves in result["accuracy"].values():
            values = [curve[i] for curve in curves]
            cells.append(f"{np.mean(values):.3f} ± {np.std(values):.3f}")
        table.add_row(str(n), *cells)
    console.print(table)
    for note in result["notes"]:
        console.print(
            f"  {note}; {result['pool_labels_matching_gold']:.1%} of pool labels match the gold order"
            if result["labels"] != "human"
            else f"  {note}"
        )
    console.print(
        f"  random's final accuracy ({final_labels} labels): {result['random_final_accuracy_mean']:.3f}; "
        f"with all {args.pool_size} pool labels: {np.mean(result['all_pool_labels_accuracy_per_seed']):.3f}"
    )
    console.print(
        f"  labels to reach random's final accuracy (goal: {GOAL_SHARE:.0%} of random's {final_labels} or fewer):"
    )
    for rule, reach in result["labels_to_reach_random_final"].items():
        per_seed = ", ".join("never" if v is None else str(v) for v in reach["per_seed"])
        median = reach["median_per_seed"]
        if reach["mean_curve_interpolated"] is None:
            verdict = "never on the mean curve: goal not met"
        else:
            low, high = reach["share_of_random_interval"]
            verdict = (
                f"mean curve {reach['mean_curve']} (interpolated {reach['mean_curve_interpolated']:.0f}, "
                f"{reach['share_of_random']:.0%} of random's, 95% interval over seeds {low:.0%}-"
                f"{'never' if high is None else f'{high:.0%}'}): goal {'met' if reach['meets_goal'] else 'not met'}"
            )
        console.print(
            f"    {rule}: {verdict}; per seed {per_seed} (median {'never' if median is None else f'{median:g}'})"
        )
        by_budget = ", ".join(
            f"{budget}: {'never' if share is None else f'{share:.0%}'}"
            for budget, share in reach["share_by_budget"].items()
            if int(budget) in shown
        )
        console.print(f"      share of random's labels at other budgets (mean curves): {by_budget}")


def print_summary(results: list[dict[str, Any]]) -> None:
    """One line per rule: its share of random's labels in every setting, and where it meets the goal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"share of random's labels that each rule needs to reach random's final accuracy "
        f"(goal: {GOAL_SHARE:.0%} or less, * where met; "
        f"95% interval over seeds)"
    )
    table.add_column("rule")
    for result in results:
        table.add_column(result["labels"], justify="right")
    rules = list(results[0]["labels_to_reach_random_final"])
    for rule in rules:
        cells = []
        for result in results:
            share = result["labels_to_reach_random_final"][rule]["share_of_random"]
            met = result["labels_to_reach_random_final"][rule]["meets_goal"]
            low, high = result["labels_to_reach_random_final"][rule]["share_of_random_interval"]
            interval = f" ({low:.0%}-{'never' if high is None else f'{high:.0%}'})"
            cells.append("never" if share is None else f"{share:.0%}{' *' if met else ''}{interval}")
        table.add_row(rule, *cells)
    Console(width=150).print(table)


def _shown_counts(counts: list[int]) -> set[int]:
    shown = {counts[0], counts[-1]}
    n = counts[0]
    while n < counts[-1]:
        shown.add(n)
        n *= 2
    return shown & set(counts) | {counts[-1]}


def plot(results: list[dict[str, Any]], path: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(2, len(results))
    rows = math.ceil(len(results) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6.0 * columns, 4.2 * rows), squeeze=False)
    for axis in axes.flat[len(results) :]:
        axis.set_visible(False)
    for axis, result in zip(axes.flat, results, strict=False):
        counts = result["label_counts"]
        for rule, curves in result["accuracy"].items():
            values = np.asarray(curves)
            mean, sd = values.mean(axis=0), values.std(axis=0)
            axis.plot(counts, mean, marker="o", markersize=3, label=rule, linestyle="--" if rule == "random" else "-")
            axis.fill_between(counts, mean - sd, mean + sd, alpha=0.12)
        axis.axhline(result["random_final_accuracy_mean"], color="grey", linewidth=0.8, linestyle=":")
        axis.axhline(
            np.mean(result["all_pool_labels_accuracy_per_seed"]),
            color="black",
            linewidth=0.8,
            label=f"all {args.pool_size} pool labels",
        )
        oracle = f" ({args.oracle})" if result["labels"].startswith("oracle") else ""
        axis.set_title(f"labels: {result['labels']}{oracle}")
        axis.set_xlabel("labels")
        axis.set_ylabel("validation accuracy")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(
        f"Active vs random selection ({args.pool} pool): {args.heads} heads on MiniLM features, "
        f"mean +/- sd of {args.seeds} seeds "
        f"({args.first_seed}-{args.first_seed + args.seeds - 1})"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


POOL_HELP = (
    "hh-pairs: HH-RLHF's chosen and rejected responses, one pair per prompt; candidates: the default policy's "
    "K responses to each of --candidate-prompts HH-RLHF prompts, every pair of them (the loop's kind of pool)"
)
FEATURES_HELP = (
    "mean: MiniLM's mean-pooled sentence embedding of the response; pooler: the input of the reward "
    "model's head (extract_features), MiniLM's CLS pooler on the last user message and the response"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--features", choices=["mean", "pooler"], default="mean", help=FEATURES_HELP)
    parser.add_argument("--prepare-only", action="store_true", help="compute and cache the features, then stop")
    parser.add_argument("--pool", choices=["hh-pairs", "candidates"], default="hh-pairs", help=POOL_HELP)
    parser.add_argument("--candidates", type=int, default=8, help="candidates pool: responses per prompt (K)")
    parser.add_argument("--candidate-prompts", type=int, default=640, help="candidates pool: HH-RLHF prompts")
    parser.add_argument("--candidate-tokens", type=int, default=64, help="candidates pool: longest response, tokens")
    parser.add_argument("--oracle", default="sentiment", help="gold oracle of the simulated settings")
    parser.add_argument("--labels", nargs="+", choices=LABEL_SETTINGS, default=list(LABEL_SETTINGS))
    parser.add_argument("--rules", nargs="+", choices=RULE_NAMES + EXTRA_RULES, default=list(RULE_NAMES))
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds run from here (the choices were made on 100 onwards)"
    )
    parser.add_argument("--initial", type=int, default=32, help="random labels to start from")
    parser.add_argument("--batch", type=int, default=32, help="labels added per acquisition step")
    parser.add_argument(
        "--steps", type=int, default=15, help="acquisition steps (final labels: initial + batch * steps)"
    )
    parser.add_argument(
        "--components",
        type=int,
        default=64,
        help="project the features on their top principal components (0: keep all)",
    )
    parser.add_argument("--heads", type=int, default=32, help="linear heads in the ensemble")
    parser.add_argument("--l2", type=float, default=1e-2, help="L2 penalty of each head")
    parser.add_argument(
        "--gold-l2", type=float, default=1e-2, help="L2 penalty of the gold reward model (gold-rm settings)"
    )
    parser.add_argument(
        "--fisher-ridge", type=float, default=1.0, help="gold-fisher: the information it starts from (ridge * I)"
    )
    parser.add_argument("--agreement", type=float, default=HUMAN_AGREEMENT, help="simulated annotators' agreement")
    parser.add_argument(
        "--clean-agreement", type=float, default=0.95, help="simulated annotators' agreement in gold-rm-clean"
    )
    parser.add_argument("--flip-rate", type=float, default=0.25, help="label flips of the 'flips' setting")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if "random" not in args.rules:
        parser.error("--rules must include random, the baseline")
    if args.pool == "candidates" and "human" in args.labels:
        parser.error("the candidates pool has no human labels: leave out --labels human")
    if args.pool == "candidates" and args.candidate_prompts % CANDIDATE_CHUNK:
        parser.error(f"--candidate-prompts must be a multiple of {CANDIDATE_CHUNK} (prompts are generated in chunks)")
    if "gold-fisher" in args.rules and "human" in args.labels:
        parser.error("gold-fisher needs the annotators' true probabilities: leave out --labels human")
    torch.manual_seed(0)

    started = time.perf_counter()
    pool, validation = prepare(args)
    if args.prepare_only:
        return
    cache = args.out / "label_efficiency_cache"
    hh_pool, hh_validation = pool, validation
    if args.pool == "candidates":
        pool, validation = candidate_tables(args, cache)
        print(
            f"candidates: {len(pool.prompts)} pool and {len(validation.prompts)} validation pairs "
            f"({args.candidate_prompts} prompts x {args.candidates} responses, every pair of distinct ones)"
        )
    golds = {}
    if {"oracle", "oracle-flips"} & set(args.labels):
        oracle_gold = gold_scores(pool, args.oracle, cache), gold_scores(validation, args.oracle, cache)
        golds["oracle"] = golds["oracle-flips"] = oracle_gold
    if args.components:
        # The HH pool's components (no labels used), whichever pool: the candidates' gold is then HH's gold-rm.
        mean, directions = principal_components(hh_pool, args.components)
        hh_pool, hh_validation = hh_pool.project(mean, directions), hh_validation.project(mean, directions)
        pool, validation = pool.project(mean, directions), validation.project(mean, directions)
    if {"gold-rm", "gold-rm-clean"} & set(args.labels):
        gold, gold_validation = gold_reward_model(hh_pool, hh_validation, [pool, validation], l2=args.gold_l2)
        golds["gold-rm"] = golds["gold-rm-clean"] = (gold, gold_validation)
    args.pool_size = len(pool.prompts)
    from rich.progress import Progress

    results = []
    with Progress(transient=True) as progress:
        task = progress.add_task("acquisition runs", total=len(args.labels) * args.seeds * len(args.rules))
        for setting in args.labels:
            results.append(run_setting(setting, pool, validation, golds, args, progress, task))
    seconds = time.perf_counter() - started
    for result in results:
        print_report(result, args)
    print_summary(results)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "label_efficiency" if args.pool == "hh-pairs" else f"label_efficiency-{args.pool}"
    figure_path = args.out / f"{name}.png"
    plot(results, figure_path, args)
    summary = {
        "config": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "validation_pairs": len(validation.prompts),
        "results": results,
        "seconds": seconds,
        "threads": torch.get_num_threads(),
    }
    json_path = args.out / f"{name}.json"
    json_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"\n{seconds / 60:.1f} min; wrote {figure_path} and {json_path}")


if __name__ == "__main__":
    main()
