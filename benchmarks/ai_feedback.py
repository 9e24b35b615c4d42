"""How many people's labels do machine judges save, once weighted by their measured agreement with people?

The reward-accuracy form of the question. The policy-gain form, the held-out gold gain of a policy trained
through the whole loop with a judge beside the people, is `label_to_gain.py --judge good` (or `longer`)
against `--judge none` at the same and at twice the people's labels; see its docstring.

The setting is `reward_features.py`'s (its functions are reused): the default policy's candidates (4 samples,
64 new tokens) for a seeded sample of the bundled prompts, cached in --folder; the composite gold oracle; per
seed a 70/30 split of the prompts; the loop's reward (`[loop]` defaults): 5 bootstrap linear heads
(`fit_heads`, l2 10, a hundredth of it on the summary features) on `summary-first` MiniLM features; accuracy
against the GOLD on every within-prompt pair of the held-out prompts.

People, as the loop simulates them: each label is the gold order flipped 25% of the time (`flip_rate`),
the shown order random; a budget of B labels is spent on the training prompts' within-prompt pairs, each
comparison drawing `[comparisons]`' default overlap (3 people on 10% of comparisons, 1 on the rest), so
that people's own agreement is measured where the loop would measure it.

Judges label every training pair people did not label, and, for their calibration, the pairs people did:
- `good`: the gold order with 15% of its answers flipped (fixed per seed);
- `longer`: prefers the longer answer in characters (abstains on equal lengths);
- `smol`: the default model (SmolLM2-135M-Instruct) as a judge, `LocalJudge("default")` read through
  `verdict_for` (both orders, abstaining when they disagree); its verdicts are cached in --folder.
Each judge's labels train with the weight `calibrate_judge` gives it from the pairs both it and people
labelled (kappa's lower bound over people's kappa, 0 when flagged: too few shared labels, no better
than chance, or a length bias), which is the loop's rule; people's labels weigh 1. A judge's weight-0
labels are left out of the training set, as in the loop (`reward.data`), so a flagged judge changes
nothing.

"Labels needed" is read on the mean curves: the people's budget at which a curve first reaches the
people-only accuracy at budget B (linear interpolation in log budget between measured budgets; "<=25"
when it is already above at the smallest budget, ">200" when it never reaches it), for people alone
(at most B; less where their own curve is not monotone) and with the judge; the share saved is
1 - with the judge / alone. The real judge is asked only about pairs not yet in its cache: with
`--cached-verdicts-only` the pairs it was never asked count as not given to it, like a `judge_share`
under 1.

--folder (default benchmarks/results/ai-feedback) must hold `candidates-96.json` and `features-96.pt` as
`reward_features.py --prompts 96` writes them (copy them there), or they are made there (2 minutes on the
2-core AMD EPYC with bf16 decoding; over half an hour on the older AVX2 machine).

Measured on a 2-core AMD EPYC (AVX-512 bf16), nothing else running: 96 prompts, 382 responses, 570
within-prompt pairs, 29 held-out prompts and 396-402 training pairs a seed, 10 seeds; the simulated
people's labels agree with the gold 75.9% of the time. The real judge was asked all 570 pairs (about 1 s a
pair, 9.5 minutes); the fits take half a minute:

    PYTHONPATH=src .venv/bin/python benchmarks/ai_feedback.py --threads 2   # asks the real judge, caches
    PYTHONPATH=src .venv/bin/python benchmarks/ai_feedback.py --threads 2 --cached-verdicts-only

The judges against the gold (every within-prompt pair with a gold order):

| judge | labels | agreement with gold (95% interval) | position consistency |
| --- | --- | --- | --- |
| good (gold, 15% flipped) | 570 of 570 | 0.853 (0.821-0.879) | - |
| longer | 559 of 570 | 0.633 (0.593-0.672) | - |
| smol (SmolLM2-135M-Instruct) | 0 of 570 asked | none: abstained on every pair | 0.000 (0.000-0.007, n=570) |

Gold accuracy on held-out pairs, mean over seeds (95% t-interval), the judge's weight from
`calibrate_judge`, mean (min-max) over seeds; `longer@1` is the same judge used blind, every label at
weight 1 (not the loop's rule; shown for what calibration withholds):

| people's labels | people only | + good | good weight | + longer (weight 0) | + longer@1 | + smol |
| --- | --- | --- | --- | --- | --- | --- |
| 25 | 0.646 (0.571-0.720) | 0.658 (0.582-0.735) | 0.10 (0.00-0.52) | 0.646 | 0.647 (0.626-0.669) | 0.646 |
| 50 | 0.649 (0.612-0.686) | 0.678 (0.637-0.718) | 0.33 (0.00-0.76) | 0.649 | 0.649 (0.618-0.679) | 0.649 |
| 100 | 0.663 (0.609-0.716) | 0.729 (0.699-0.760) | 0.50 (0.09-1.00) | 0.663 | 0.645 (0.612-0.677) | 0.663 |
| 200 | 0.719 (0.689-0.749) | 0.731 (0.707-0.755) | 0.69 (0.27-1.00) | 0.719 | 0.684 (0.660-0.708) | 0.719 |

With the judge minus people only, paired by seed (95% t-interval): good +0.013 (-0.007-0.032), +0.029
(-0.015-0.072), +0.067 (0.019-0.114), +0.012 (-0.003-0.027) at 25, 50, 100, 200 labels; longer and smol
0 exactly (weight 0, left out); longer@1 +0.002, -0.001, -0.018 (-0.056-0.020), -0.035 (-0.047 to -0.023).

People's labels needed to reach the people-only accuracy at B (people alone on their own curve / with the
judge, share saved):

| judge | B=50 | B=100 | B=200 |
| --- | --- | --- | --- |
| good | 50 / <=25 (>=50%) | 100 / 29 (71%) | 200 / 87 (57%) |
| longer | 50 / 50 (0%) | 100 / 100 (0%) | 200 / 200 (0%) |
| longer@1 | 50 / 108 (-117%) | 100 / 137 (-37%) | 200 / >200 (never) |
| smol | 50 / 50 (0%) | 100 / 100 (0%) | 200 / 200 (0%) |

Reading. The good judge saves at least half of people's labels at 50, 100 and 200 labels for the same
reward accuracy against the gold (at 25 the people-only point is the smallest budget measured, so no
saving can be read there). Its gain is bounded by its weight: kappa's lower bound on the few pairs people
also labelled is small at first (0.10 at 25 labels, flagged no better than chance on 7 of 10 seeds, and
then left out; 0.69 at 200). The length-biased judge is flagged for its length bias on every seed,
weighted to 0 and left out of the fit, as the loop leaves out judgments weighted to nothing
(`reward.data`), so it costs exactly nothing. Used blind it would cost: the loop's `summary-first`
features already read the length, and the judge's extra labels only pull further towards it (-0.035 at
200 labels). The real judge, SmolLM2-135M-Instruct, answers "A" whatever the order: it was
position-consistent on none of the 570 pairs, so it abstains on all of them and changes nothing.

With the former `prompt-aware` features (l2 10 on every feature) on the same pool and verdicts, people
alone reached 0.583 / 0.604 / 0.616 / 0.655 and the good judge saved >=50%, 71% and 76% at 50, 100, 200.
An earlier pool (568 pairs, on the AVX2 machine), with weight-0 labels still kept in the fit, gave the
good judge 35% at 100 labels and the length judge a small cost (-0.026 at 50 labels): leaving those labels
out is what makes a flagged judge free.

The policy-gain form (the held-out gold gain of a policy trained through the whole loop with the judge
beside people; two seeds so far, in benchmarks/README.md) runs as

    PYTHONPATH=src .venv/bin/python benchmarks/label_to_gain.py --algorithms grpo --rounds 2 --judge good
    PYTHONPATH=src .venv/bin/python benchmarks/label_to_gain.py --algorithms grpo --rounds 2 --judge none

with the same `good` and `longer` judges served over HTTP by `oracle_judge.py` (the flips fixed per seed,
prompt and pair of answers rather than per seed and pair) and taken into the loop through its real judge path
(`apprentice judges add --endpoint`, `[loop] judges`, `judge_share`).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apprentice.feature_kinds import FeatureKind
from apprentice.judges.calibration import JudgeCalibration, Rate, calibrate_judge
from apprentice.reward.data import RewardPair
from apprentice.reward.ensemble import feature_penalties, fit_heads
from apprentice.simulate import AnnotatorProfile, choose_first, reachable_temperature
from apprentice.store.quality_queries import QualityJudgment
from reward_features import FLIP_RATE, Experiment, candidates, features_and_gold
from reward_policy_features import interval

GOOD_JUDGE_FLIPS = 0.15
L2 = 10.0  # [loop] reward_l2
HEADS = 5  # [loop] reward_heads
FEATURES: FeatureKind = "summary-first"  # [loop] reward_features
HIGH_OVERLAP, HIGH_OVERLAP_SHARE = 3, 0.1  # [comparisons] defaults
JUDGES = ("good", "longer", "longer@1", "smol")  # "@1": uncalibrated, every label at weight 1

Pair = tuple[int, int]  # global response indices, first < second


@dataclass
class PeopleLabels:
    """People's labels on the training pool: (pair, winner 0/1 for pair[0]/pair[1], person) each."""

    labels: list[tuple[Pair, int, int]]

    @property
    def pairs(self) -> set[Pair]:
        return {pair for pair, _, _ in self.labels}


def draw_people(
    pool: list[Pair], budget: int, gold: np.ndarray, annotator: AnnotatorProfile, seed: int
) -> PeopleLabels:
    """`budget` simulated labels, comparison after comparison, 3 people on 10% of them and 1 on the rest."""
    rng = random.Random(f"people:{seed}:{budget}")
    order = pool[:]
    rng.shuffle(order)
    labels: list[tuple[Pair, int, int]] = []
    for pair in order:
        people = HIGH_OVERLAP if rng.random() < HIGH_OVERLAP_SHARE else 1
        for person in range(min(people, budget - len(labels))):
            shown_first = rng.randrange(2)
            first, second = pair[shown_first], pair[1 - shown_first]
            won_first = choose_first(gold[first], gold[second], annotator, rng)
            labels.append((pair, shown_first if won_first else 1 - shown_first, person))
        if len(labels) >= budget:
            break
    return PeopleLabels(labels)


def judgment(index: int, pair: Pair, winner: int, annotator: str, lengths: list[int]) -> QualityJudgment:
    """A pair judgment as calibration reads it: the comparison is the pair, the canonical order its own."""
    return QualityJudgment(
        judgment_id=index,
        comparison_id=pair[0] * 100_000 + pair[1],
        kind="pair",
        annotator=annotator,
        answer={"winner": winner},
        order_shown=None,
        response_ids=list(pair),
        response_lengths=[lengths[pair[0]], lengths[pair[1]]],
    )


def needed_budget(budgets: list[int], curve: list[float], target: float) -> float | None:
    """The budget at which `curve` (accuracy by budget) first reaches `target`, interpolated in log budget.

    `budgets[0]` or less when the curve is already there at the first budget (returned as `budgets[0]`);
    None when it never reaches it.
    """
    if curve[0] >= target:
        return float(budgets[0])
    for index in range(1, len(budgets)):
        if curve[index] >= target:
            low, high = math.log(budgets[index - 1]), math.log(budgets[index])
            share = (target - curve[index - 1]) / (curve[index] - curve[index - 1])
            return math.exp(low + share * (high - low))
    return None


def saving_cell(budgets: list[int], people: list[float], judged: list[float], budget: int) -> str:
    """'people / with judge (saved)' for the people-only accuracy at `budget` as the target."""
    target = people[budgets.index(budget)]
    alone = needed_budget(budgets, people, target) or float(budget)
    helped = needed_budget(budgets, judged, target)
    if helped is None:
        return f"{alone:.0f} / >{budgets[-1]} (none)"
    at_least = "<=" if helped == budgets[0] and judged[0] > target else ""
    saved = 1 - helped / alone
    return f"{alone:.0f} / {at_least}{helped:.0f} ({'>=' if at_least and saved >= 0 else ''}{saved:+.0%})"


class JudgeExperiment(Experiment):
    def __init__(self, rows: list[dict[str, Any]], table: dict[str, Any]) -> None:
        super().__init__(rows, table, heads=HEADS)
        self.rows = rows
        self.texts = [text for row in rows for text in row["responses"]]
        self.lengths = [len(text) for text in self.texts]
        self.all_pairs: list[Pair] = [pair for prompt in range(self.prompts) for pair in self.pairs[prompt]]

    def gold_winner(self, pair: Pair) -> int | None:
        a, b = pair
        return None if self.gold[a] == self.gold[b] else int(self.gold[b] > self.gold[a])

    def fit_weighted(self, table: torch.Tensor, labels: list[tuple[Pair, int, float]], seed: int) -> np.ndarray:
        """The loop's reward on (pair, winner, weight) labels: bootstrap heads, each normalized, averaged."""
        chosen = [pair[winner] for pair, winner, _ in labels]
        rejected = [pair[1 - winner] for pair, winner, _ in labels]
        pairs = [RewardPair([], "", "", weight=weight) for _, _, weight in labels]
        used = sorted(set(chosen) | set(rejected))
        total = torch.zeros(table.shape[0], dtype=torch.float64)
        penalties = feature_penalties(FEATURES, table.shape[1], L2)
        for weight in fit_heads(
            table[chosen].float(), table[rejected].float(), pairs, heads=HEADS, l2=penalties, steps=200, seed=seed
        ):
            raw = table @ weight.double()
            total += (raw - raw[used].mean()) / (float(raw[used].std()) or 1.0)
        return (total / HEADS).numpy()


def smol_verdicts(folder: Path, experiment: JudgeExperiment, *, ask: bool) -> dict[Pair, tuple[float, float]]:
    """P(A) with the pair's first answer shown as A, and with it shown as B, for every pair asked (cached).

    With `ask`, the pairs not in the cache are asked, in a seeded random order (so that an interrupted run
    leaves a random sample of the pairs); without it, only the cached pairs are returned.
    """
    from apprentice.judges.local import LocalJudge
    from apprentice.judges.runner import verdict_for

    path = folder / f"smol-verdicts-{experiment.prompts}.json"
    cached: dict[str, list[float]] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    owner_start = {prompt: int(np.where(experiment.owner == prompt)[0][0]) for prompt in range(experiment.prompts)}

    def key(pair: Pair) -> str:  # the prompt's id and the answers' positions among its candidates
        prompt = int(experiment.owner[pair[0]])
        start = owner_start[prompt]
        return f"{experiment.rows[prompt]['id']}:{pair[0] - start}:{pair[1] - start}"

    missing = [pair for pair in experiment.all_pairs if key(pair) not in cached]
    random.Random(0).shuffle(missing)
    if missing and ask:
        started = time.perf_counter()
        backend = LocalJudge("default")
        for done, pair in enumerate(missing, 1):
            prompt = experiment.rows[int(experiment.owner[pair[0]])]
            task = {"prompt": prompt["messages"], "responses": [{"text": experiment.texts[i]} for i in pair]}
            verdict = verdict_for(backend, task)
            cached[key(pair)] = [verdict.probability_first_shown_first, 1 - verdict.probability_first_shown_second]
            if done % 5 == 0 or done == len(missing):
                path.write_text(json.dumps(cached), encoding="utf-8")
                print(f"judge verdicts {done}/{len(missing)}, {time.perf_counter() - started:.0f} s", flush=True)
    return {pair: (cached[key(pair)][0], cached[key(pair)][1]) for pair in experiment.all_pairs if key(pair) in cached}


def judge_labels(
    experiment: JudgeExperiment, smol: dict[Pair, tuple[float, float]], seed: int
) -> dict[str, dict[Pair, int | None]]:
    """Each judge's winner (0/1) on every pair, None where it abstains."""
    from apprentice.judges.verdict import combine_orders

    rng = random.Random(f"good:{seed}")
    good: dict[Pair, int | None] = {}
    for pair in experiment.all_pairs:
        right = experiment.gold_winner(pair)
        right = rng.randrange(2) if right is None else right
        good[pair] = 1 - right if rng.random() < GOOD_JUDGE_FLIPS else right
    lengths = experiment.lengths
    longer = {
        pair: None if lengths[pair[0]] == lengths[pair[1]] else int(lengths[pair[1]] > lengths[pair[0]])
        for pair in experiment.all_pairs
    }
    readout = {}
    for pair, (first_as_a, first_as_b) in smol.items():
        prefers_first = combine_orders(first_as_a, first_as_b).prefers_first
        readout[pair] = None if prefers_first is None else int(not prefers_first)
    for pair in experiment.all_pairs:
        readout.setdefault(pair, None)  # not asked
    return {"good": good, "longer": longer, "smol": readout}


def calibrate(
    experiment: JudgeExperiment, name: str, labels: dict[Pair, int | None], people: PeopleLabels, pool: list[Pair]
) -> JudgeCalibration:
    """`calibrate_judge` on the judge's labels over the pool against people's labels, as the loop runs it."""
    people_judgments = [
        judgment(index, pair, winner, f"person-{person}", experiment.lengths)
        for index, (pair, winner, person) in enumerate(people.labels)
    ]
    own = [
        judgment(100_000 + index, pair, winner, name, experiment.lengths)
        for index, pair in enumerate(pool)
        if (winner := labels[pair]) is not None
    ]
    return calibrate_judge(name, own, people_judgments)


def rate_text(rate: Rate) -> str:
    if rate.trials < 20:
        return f"too little data ({rate.successes}/{rate.trials})"
    return f"{rate.value:.3f} ({rate.low:.3f}-{rate.high:.3f}, n={rate.trials})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=Path("benchmarks/results/ai-feedback"))
    parser.add_argument("--prompts", type=int, default=96)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--judges", nargs="+", default=list(JUDGES), choices=JUDGES)
    parser.add_argument(
        "--cached-verdicts-only",
        action="store_true",
        help="the real judge labels only the pairs whose verdicts are cached (the others count as not asked)",
    )
    parser.add_argument("--verdicts-only", action="store_true", help="ask the real judge, cache, and stop")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    rows = [row for row in candidates(args.folder, args.prompts) if len(row["responses"]) >= 2]
    experiment = JudgeExperiment(rows, features_and_gold(args.folder, rows))
    gold = experiment.gold
    differences = [gold[a] - gold[b] for a, b in experiment.all_pairs]
    annotator = AnnotatorProfile(
        "sim", temperature=reachable_temperature(differences, flip_rate=FLIP_RATE), flip_rate=FLIP_RATE
    )
    smol = smol_verdicts(args.folder, experiment, ask=not args.cached_verdicts_only) if "smol" in args.judges else {}
    if args.verdicts_only:
        return
    print(
        f"{len(rows)} prompts, {len(gold)} responses, {len(experiment.all_pairs)} pairs; "
        f"{time.perf_counter() - started:.0f} s"
    )

    budgets = sorted(args.budgets)
    names = ["people", *args.judges]
    accuracy: dict[str, dict[int, list[float]]] = {name: {b: [] for b in budgets} for name in names}
    weights: dict[str, dict[int, list[float]]] = {name: {b: [] for b in budgets} for name in args.judges}
    flagged: dict[str, dict[int, list[str]]] = {name: {b: [] for b in budgets} for name in args.judges}
    judged_pool_pairs: list[int] = []
    table = experiment.features(FEATURES, np.arange(len(gold)))
    labels_by_seed = []
    people_right: list[bool] = []
    for seed in range(args.seeds):
        order = list(range(len(rows)))
        random.Random(1000 + seed).shuffle(order)
        cut = round(0.7 * len(rows))
        train_prompts, test_prompts = sorted(order[:cut]), sorted(order[cut:])
        pool = [pair for prompt in train_prompts for pair in experiment.pairs[prompt]]
        judged_pool_pairs.append(len(pool))
        labels = judge_labels(experiment, smol, seed)
        labels_by_seed.append(labels)
        for budget in budgets:
            people = draw_people(pool, budget, gold, annotator, seed)
            own = [(pair, winner, 1.0) for pair, winner, _ in people.labels]
            people_right += [winner == experiment.gold_winner(pair) for pair, winner, _ in people.labels]
            scores = experiment.fit_weighted(table, own, seed)
            accuracy["people"][budget].append(experiment.evaluate(scores, test_prompts)["accuracy"])
            labelled = people.pairs
            for name in args.judges:
                judge, _, fixed = name.partition("@")
                calibration = calibrate(experiment, judge, labels[judge], people, pool)
                weight = float(fixed) if fixed else calibration.weight
                weights[name][budget].append(weight)
                flagged[name][budget] += [flag.split(":")[0] for flag in calibration.flags]
                # Weight-0 labels are left out, as `reward.data` leaves out judgments weighted to nothing.
                extra = [
                    (pair, winner, weight)
                    for pair in pool
                    if weight > 0 and pair not in labelled and (winner := labels[judge][pair]) is not None
                ]
                scores = experiment.fit_weighted(table, own + extra, seed)
                accuracy[name][budget].append(experiment.evaluate(scores, test_prompts)["accuracy"])
        print(f"seed {seed} done, {time.perf_counter() - started:.0f} s", flush=True)

    print(
        f"\n{len(rows)} prompts, {len(gold)} responses, {len(experiment.all_pairs)} within-prompt pairs; "
        f"{len(rows) - cut} held-out prompts a seed, {min(judged_pool_pairs)}-{max(judged_pool_pairs)} training "
        f"pairs a seed; {args.seeds} seeds"
    )
    print("\nEach judge against the gold, over every within-prompt pair with a gold order:")
    print("| judge | labels (of pairs with a gold order) | agreement with gold | position consistency |")
    print("| --- | --- | --- | --- |")
    decisive = [pair for pair in experiment.all_pairs if experiment.gold_winner(pair) is not None]
    for name in [name for name in args.judges if "@" not in name]:
        labels = labels_by_seed[0][name]
        given = [pair for pair in decisive if labels[pair] is not None]
        right = sum(labels[pair] == experiment.gold_winner(pair) for pair in given)
        consistency = "-"
        if name == "smol":
            from apprentice.judges.verdict import combine_orders

            consistent = sum(combine_orders(*verdict).consistent for verdict in smol.values())
            consistency = rate_text(Rate.of(consistent, len(smol)))
        asked = len(smol) if name == "smol" else len(experiment.all_pairs)
        print(
            f"| {name} | {len(given)} of {len(decisive)} ({asked} asked) | {rate_text(Rate.of(right, len(given)))}"
            f" | {consistency} |"
        )
    print(f"(simulated people: {np.mean(people_right):.3f} of their labels agree with the gold)")

    print("\nGold accuracy on held-out pairs, mean over seeds (95% t-interval); judges' weight: mean (min-max)\n")
    header = "| people's labels | people only | " + " | ".join(f"+ {n} | {n} weight" for n in args.judges) + " |"
    print(header)
    print("| --- |" + " --- |" * (1 + 2 * len(args.judges)))
    for budget in budgets:
        cells = [interval(accuracy["people"][budget])]
        for name in args.judges:
            w = weights[name][budget]
            cells += [interval(accuracy[name][budget]), f"{np.mean(w):.2f} ({min(w):.2f}-{max(w):.2f})"]
        print(f"| {budget} | " + " | ".join(cells) + " |")

    print("\nWith the judge minus people only, paired by seed: mean (95% t-interval)\n")
    print("| people's labels | " + " | ".join(args.judges) + " |")
    print("| --- |" + " --- |" * len(args.judges))
    for budget in budgets:
        cells = [
            interval([j - p for j, p in zip(accuracy[name][budget], accuracy["people"][budget], strict=True)])
            for name in args.judges
        ]
        print(f"| {budget} | " + " | ".join(cells) + " |")

    print("\nFlags (seeds flagged, by budget):")
    for name in args.judges:
        counts = {b: {f: flagged[name][b].count(f) for f in sorted(set(flagged[name][b]))} for b in budgets}
        print(f"{name}: " + "; ".join(f"{b}: {counts[b] or 'none'}" for b in budgets))

    print(
        "\nPeople's labels needed to reach the people-only accuracy at B: people alone (on their own curve, at"
        " most B) / with the judge, and the share saved\n"
    )
    print("| judge | " + " | ".join(f"B={b}" for b in budgets) + " |")
    print("| --- |" + " --- |" * len(budgets))
    people_curve = [float(np.mean(accuracy["people"][b])) for b in budgets]
    for name in args.judges:
        curve = [float(np.mean(accuracy[name][b])) for b in budgets]
        print(f"| {name} | " + " | ".join(saving_cell(budgets, people_curve, curve, b) for b in budgets) + " |")
    output = args.folder / "ai-feedback.json"
    output.write_text(json.dumps({"accuracy": accuracy, "weights": weights}, indent=1), encoding="utf-8")
    print(f"\n{output}; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
