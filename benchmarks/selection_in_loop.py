"""Active selection measured with the loop's own reward ensemble, features and label budgets.

`benchmarks/label_efficiency.py`, the benchmark behind the loop's default rule (`[loop] selection = bald`),
measured the rules with 32 linear heads on 64 principal components of MiniLM's response embedding at
l2 1e-2, on HH-RLHF pairs. The loop's reward is another ensemble; this benchmark measures the rules of
`apprentice.selection` (random, disagreement, bald, uncertainty, epig) with exactly that one.

Setting. The candidates, features and gold of `benchmarks/reward_features.py`, read from its cache in
`--folder`: the default policy's 4 candidates to 192 seeded bundled prompts (those with two or more
distinct candidates kept), MiniLM features, the composite gold oracle. The reward is the loop's
(`train_shared_backbone_ensemble` with the loop's settings): 5 linear heads (`fit_heads`: each on its own
bootstrap resample of the labels, L-BFGS, 200 steps) on `summary-first` features, l2 10 with the
summary features' penalty at a hundredth of it (`feature_penalties`), each head normalized on the
training texts (`Experiment.fit_members`). The rules read what the loop's `set_priorities` gives them:
for every open comparison, per head, the normalized score of one response minus the other's. Labels come
from `apprentice.simulate`'s decision model with the loop's settings, as in reward_features: 25% flips
at the reachable temperature (so each label is the gold order, flipped a quarter of the time).

Acquisition. Per seed, a new 70/30 split of the prompts (reward_features' split); the pool is every
within-prompt pair of the training prompts, each labeled at most once. The label of every pool pair is
drawn once per seed before any rule runs and every rule starts from the same `--initial` random pairs,
so only the choice of the next labels differs; the heads' bootstrap draws depend on the seed and the
step, never on the rule. At each step the heads are refitted and the rule picks `--batch` more pairs
among the unlabeled ones, up to `--budget` (the last batch cut to end there). Measured after every fit:
the accuracy of the heads' mean against the gold order on the held-out prompts' within-prompt pairs,
gold ties left out (`Experiment.evaluate`); mean and 95% t-interval over seeds.

Share of random's labels, for a rule at n labels: n divided by the labels random needs to reach that
rule's mean accuracy at n, read on random's mean curve by linear interpolation between its measured
budgets. Below 1 the rule saves labels (0.5: random needs twice as many), above 1 it wastes them.
Random is not measured below `--initial` labels, so where a rule does no better than random's starting
accuracy random is credited with `--initial` and the share is a lower bound (shown as >=); where random never
reaches the rule's accuracy within the budget the share is below n / budget (shown as random > budget).

Not as in the loop, on purpose: the loop asks round by round about new candidates of the current policy
(64 labels a round; 2 candidates a prompt by default) and holds 20% of its labels out for validation;
here the pool is fixed, the first policy's 4 candidates to every training prompt, and every label
trains the heads.

    PYTHONPATH=src:benchmarks python benchmarks/selection_in_loop.py --folder benchmarks/results/reward-features

It prints one markdown table and writes selection_in_loop.json in the folder (not results.json, which
is reward_features' output in the same folder).

Measured
--------
On the 2-core CPU beside a loop run (load average about 2), 57 s: 191 prompts, 795-801 pool pairs a
seed, 10 seeds, labels agreeing with the gold order 74.7% of the time. Held-out gold accuracy (95%
t-interval over seeds; the rules' own, +-0.01-0.03, are in the printed table); after the semicolon, the
share of random's labels:

| labels | random (95% CI) | disagreement | bald | uncertainty | epig |
| --- | --- | --- | --- | --- | --- |
| 48 | 0.657 (0.591-0.723) | same start | same start | same start | same start |
| 96 | 0.688 (0.644-0.732) | 0.708; 0.66 | 0.706; 0.69 | 0.705; 0.70 | 0.716; 0.57 |
| 144 | 0.708 (0.664-0.752) | 0.725; 0.75 | 0.724; 0.76 | 0.714; 0.90 | 0.722; 0.78 |
| 192 | 0.725 (0.702-0.747) | 0.730; 0.86 | 0.726; 0.96 | 0.732; 0.81 | 0.730; 0.85 |
| 240 | 0.732 (0.711-0.754) | 0.735; 0.64 | 0.733; 0.71 | 0.739; <0.60 | 0.731; 1.03 |
| 288 | 0.727 (0.707-0.748) | 0.740; <0.72 | 0.738; <0.72 | 0.741; <0.72 | 0.740; <0.72 |
| 384 | 0.736 (0.711-0.760) | 0.742; <0.96 | 0.737; <0.96 | 0.742; <0.96 | 0.740; <0.96 |
| 400 | 0.733 (0.708-0.758) | 0.748; <1.00 | 0.742; <1.00 | 0.743; <1.00 | 0.739; <1.00 |

(`<x`: random does not reach the rule's accuracy within 400 labels; 336 left out, like 288.)

Reading. Every rule beats random a little at nearly every budget, most where it matters to the loop: at 96 labels
(two demo rounds) the rules need 57-70% of random's labels for the same accuracy, at 144 75-90%. Past 200
labels all curves flatten near 0.73-0.75, the ceiling of these features under 25% flips, and the shares
mean little (random's curve is flat there, so a small lead reads as a large saving). The rules do not
differ from one another beyond their intervals: EPIG leads at 96, disagreement at 400, BALD sits between.
So the loop keeps BALD as its default; the measurement supports active selection on its own ensemble, not
a change of rule. One pool of 191 prompts, one policy's candidates, and the simulated gold's relevance is
the reward's own cosine (see reward_features.py), which makes every rule's job easier than with people.
"""

from __future__ import annotations

import os

# Small dense fits, refitted hundreds of times: BLAS threads only spin against each other on a small machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from apprentice.reward.ensemble import feature_penalties
from apprentice.selection import RULES
from apprentice.simulate import AnnotatorProfile, reachable_temperature
from reward_features import FLIP_RATE, Experiment, Interval, candidates, features_and_gold, simulated_labels, t_interval
from selection_research import AcquisitionRun, CurvePoint, acquisition_curve, labels_to_reach_interpolated, mean_curve

# The loop's reward (`[loop] reward_heads`, `reward_features`, `reward_l2`; train_shared_backbone_ensemble's steps).
HEADS = 5
FEATURES = "summary-first"
L2 = 10.0
RULE_NAMES = ("random", *(rule for rule in RULES if rule != "random"))  # the baseline first
Pair = tuple[int, int]  # two responses of one prompt, by their index in the experiment's table


@dataclass(frozen=True)
class Plan:
    """How many labels to start from, to add per step, and to stop at."""

    initial: int = 48
    batch: int = 48
    budget: int = 400

    @property
    def steps(self) -> int:
        return math.ceil((self.budget - self.initial) / self.batch)


def prompt_split(prompts: int, seed: int) -> tuple[list[int], list[int]]:
    """reward_features' 70/30 split of the prompts into training and held-out ones, new for every seed."""
    order = list(range(prompts))
    random.Random(1000 + seed).shuffle(order)
    cut = round(0.7 * prompts)
    return sorted(order[:cut]), sorted(order[cut:])


def draw_pool_labels(
    pool: Sequence[Pair], gold: NDArray[np.float64], annotator: AnnotatorProfile, seed: int
) -> list[Pair]:
    """(chosen, rejected) for every pool pair, in the pool's order: one simulated label each, drawn before
    any rule runs so that every rule that asks about a pair gets the same answer."""
    chosen, rejected = simulated_labels(list(pool), len(pool), gold, annotator, random.Random(f"labels:{seed}"))
    answer = {(min(c, r), max(c, r)): (c, r) for c, r in zip(chosen, rejected, strict=True)}
    return [answer[(min(a, b), max(a, b))] for a, b in pool]


class LoopReward:
    """The loop's reward ensemble on one seed's labels: fit on labeled pool positions, read margins and accuracy."""

    def __init__(
        self,
        experiment: Experiment,
        table: torch.Tensor,
        penalties: torch.Tensor,
        pool: Sequence[Pair],
        labels: Sequence[Pair],
        test_prompts: list[int],
        seed: int,
    ) -> None:
        self.experiment = experiment
        self.table = table
        self.penalties = penalties
        self.first = np.array([a for a, _ in pool])
        self.second = np.array([b for _, b in pool])
        self.labels = labels
        self.test_prompts = test_prompts
        self.seed = seed

    def fit(self, labeled: list[int], step: int) -> NDArray[np.float64]:
        """(heads, texts) normalized scores. The bootstrap seed is the seed and the step, never the rule."""
        chosen = [self.labels[position][0] for position in labeled]
        rejected = [self.labels[position][1] for position in labeled]
        members = self.experiment.fit_members(self.table, chosen, rejected, self.penalties, 1000 * self.seed + step)
        return np.asarray(members, dtype=np.float64)

    def pool_margins(self, members: NDArray[np.float64]) -> NDArray[np.float64]:
        """(heads, pool): what the loop's set_priorities hands the rule for a pair, one head's margin per row."""
        return np.asarray(members[:, self.first] - members[:, self.second], dtype=np.float64)

    def accuracy(self, members: NDArray[np.float64]) -> float:
        return self.experiment.evaluate(members.mean(axis=0), self.test_prompts)["accuracy"]


@dataclass(frozen=True)
class SeedResult:
    runs: dict[str, AcquisitionRun]
    pool_pairs: int
    labels_agreeing_with_gold: float


def run_seed(
    experiment: Experiment,
    table: torch.Tensor,
    annotator: AnnotatorProfile,
    seed: int,
    rules: Sequence[str],
    plan: Plan,
) -> SeedResult:
    """Every rule's acquisition curve on one seed's split, labels and starting pairs."""
    train_prompts, test_prompts = prompt_split(experiment.prompts, seed)
    pool = [pair for prompt in train_prompts for pair in experiment.pairs[prompt]]
    if plan.budget > len(pool):
        raise SystemExit(f"--budget {plan.budget} is more than seed {seed}'s {len(pool)} pool pairs")
    labels = draw_pool_labels(pool, experiment.gold, annotator, seed)
    penalties = feature_penalties(FEATURES, table.shape[1], L2)
    reward = LoopReward(experiment, table, penalties, pool, labels, test_prompts, seed)
    start = random.Random(10_000 + seed).sample(range(len(pool)), plan.initial)
    runs = {
        rule: acquisition_curve(
            rule,
            initial=start,
            batch=plan.batch,
            steps=plan.steps,
            fit=reward.fit,
            pool_margins=reward.pool_margins,
            accuracy=reward.accuracy,
            seed=seed,
            max_labels=plan.budget,
        )
        for rule in rules
    }
    agreeing = float(np.mean([experiment.gold[c] > experiment.gold[r] for c, r in labels]))
    return SeedResult(runs, len(pool), agreeing)


# -- the summary ------------------------------------------------------------------------------------


def share_of_random(labels: int, accuracy: float, random_curve: Sequence[CurvePoint]) -> float | None:
    """`labels` divided by the labels random's curve needs to reach `accuracy` (interpolated between its
    points): below 1 the rule that reached `accuracy` with `labels` saves labels. None when random never
    gets there. At or below random's first point random is credited with that point's labels (it was not
    measured with fewer), so the share is then a lower bound."""
    needed = labels_to_reach_interpolated(random_curve, accuracy)
    return None if needed is None else labels / needed


def share_cell(labels: int, accuracy: float, random_curve: Sequence[CurvePoint]) -> str:
    share = share_of_random(labels, accuracy, random_curve)
    last = random_curve[-1].labels
    if share is None:
        return f"<{labels / last:.2f} (random >{last})"
    first = random_curve[0]
    at_most_first = labels > first.labels and accuracy <= first.accuracy + 1e-12
    return f"{'>=' if at_most_first else ''}{share:.2f}"


def interval_cell(interval: Interval) -> str:
    if interval.low is None or interval.high is None:
        return f"{interval.mean:.3f}"
    return f"{interval.mean:.3f} ({interval.low:.3f}-{interval.high:.3f})"


def summarize(curves: dict[str, list[list[CurvePoint]]]) -> dict[str, dict[int, dict[str, Any]]]:
    """Per rule and label count: the accuracy's mean and t-interval over seeds, and the share of random's labels."""
    random_mean = mean_curve(curves["random"])
    summary: dict[str, dict[int, dict[str, Any]]] = {}
    for rule, per_seed in curves.items():
        summary[rule] = {}
        for index, point in enumerate(mean_curve(per_seed)):
            interval = t_interval([curve[index].accuracy for curve in per_seed])
            summary[rule][point.labels] = asdict(interval) | {
                "share_of_random": share_of_random(point.labels, point.accuracy, random_mean),
                "random_labels_needed": labels_to_reach_interpolated(random_mean, point.accuracy),
                "cell": share_cell(point.labels, point.accuracy, random_mean),
            }
    return summary


def markdown_table(summary: dict[str, dict[int, dict[str, Any]]]) -> str:
    rules = list(summary)
    lines = ["| labels | " + " | ".join(rules) + " |", "| --- |" + " --- |" * len(rules)]
    for labels in summary[rules[0]]:
        cells = []
        for rule in rules:
            entry = summary[rule][labels]
            accuracy = interval_cell(Interval(entry["mean"], entry["low"], entry["high"]))
            cells.append(accuracy if rule == "random" else f"{accuracy}; {entry['cell']}")
        lines.append(f"| {labels} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=Path("benchmarks/results/reward-features"))
    parser.add_argument("--prompts", type=int, default=192)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--initial", type=int, default=Plan.initial)
    parser.add_argument("--batch", type=int, default=Plan.batch)
    parser.add_argument("--budget", type=int, default=Plan.budget)
    parser.add_argument("--rules", nargs="+", choices=RULE_NAMES, default=list(RULE_NAMES))
    args = parser.parse_args()
    if "random" not in args.rules:
        parser.error("--rules needs random: the shares are read on its curve")
    torch.set_num_threads(1)

    started = time.perf_counter()
    plan = Plan(args.initial, args.batch, args.budget)
    rows = [row for row in candidates(args.folder, args.prompts) if len(row["responses"]) >= 2]
    experiment = Experiment(rows, features_and_gold(args.folder, rows), HEADS)
    gold = experiment.gold
    differences = [gold[a] - gold[b] for pairs in experiment.pairs.values() for a, b in pairs]
    temperature = reachable_temperature(differences, flip_rate=FLIP_RATE)  # as the loop's simulators
    annotator = AnnotatorProfile("sim", temperature=temperature, flip_rate=FLIP_RATE)
    table = experiment.features(FEATURES, np.arange(len(gold)))  # summary-first reads no training texts
    print(f"{len(rows)} prompts, {len(gold)} responses, {len(differences)} pairs, temperature {temperature:.3g}")

    curves: dict[str, list[list[CurvePoint]]] = {rule: [] for rule in args.rules}
    pool_sizes, agreement = [], []
    for seed in range(args.seeds):
        result = run_seed(experiment, table, annotator, seed, args.rules, plan)
        for rule, run in result.runs.items():
            curves[rule].append(run.curve)
        pool_sizes.append(result.pool_pairs)
        agreement.append(result.labels_agreeing_with_gold)
        print(f"seed {seed}: {result.pool_pairs} pool pairs, {time.perf_counter() - started:.0f} s", flush=True)

    summary = summarize(curves)
    print(
        f"\n{args.seeds} seeds; pool pairs {min(pool_sizes)}-{max(pool_sizes)}; "
        f"labels agreeing with the gold order: {np.mean(agreement):.3f}"
    )
    print(
        "held-out gold accuracy, mean (95% t-interval over seeds); then the share of random's labels: the rule's "
        "labels / the labels random needs for the same accuracy (below 1 saves labels)\n"
    )
    print(markdown_table(summary))
    output = args.folder / "selection_in_loop.json"
    report = {
        "setting": {"heads": HEADS, "features": FEATURES, "l2": L2, "steps": 200, "flip_rate": FLIP_RATE}
        | asdict(plan)
        | {"seeds": args.seeds, "temperature": temperature, "prompts": len(rows), "responses": len(gold)},
        "pool_pairs": pool_sizes,
        "labels_agreeing_with_gold": agreement,
        "accuracy": {rule: [[point.accuracy for point in curve] for curve in runs] for rule, runs in curves.items()},
        "label_counts": [point.labels for point in curves["random"][0]],
        "summary": summary,
    }
    output.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"\n{output}; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
