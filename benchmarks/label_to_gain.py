"""Gold gained per human label: the loop's ways of turning labels into a better policy, side by side.

Each run is the whole loop on the demo's settings (the default policy, the bundled prompts, a real studio
on SQLite, eight simulated annotators with 25% flips judging through its HTTP API, the reward ensemble on
MiniLM, `labels_per_round` labels a round) with one `[loop] algorithm`, one gold oracle for the simulated
people, and one seed (the held-out prompts and every round's candidates). After each round the script
reads the round's held-out evaluation: the policy's samples against the base policy's on the same
prompts (two samples a prompt), scored by the same oracle the simulated people follow.

The points of the curve are the rounds: after round r, r x labels_per_round labels were asked for (the
table prints the judgments the store holds, which can run a little over). For each point:

- win rate on gold against the base, with a 95% interval from a bootstrap over held-out prompts (the two
  samples of a prompt are not independent, so prompts, not samples, are resampled; seeds are pooled);
- mean gold gain over the base, per prompt, with the same bootstrap interval;
- the reward ensemble's accuracy against the gold on held-out pairs (the evaluation's own pairs);
- wall minutes since the run started (the round's generation, labels, reward, policy and evaluation).

Runs are kept in `--folder`, one project each, and a finished run's figures are read back instead of
being run again, so the grid can be filled a few runs at a time.

    python benchmarks/label_to_gain.py --algorithms grpo dpo reward-dpo best-of-n --oracles composite \\
        --seeds 0 1 --rounds 2

Run every algorithm against the composite oracle and against each of its parts (`--oracles composite
sentiment relevance concision`), so that no algorithm wins by suiting one oracle's quirks. Figures and the
commands that gave them are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# As the CLI does: no transformers bar for every model loaded or saved (set before transformers is imported).
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from rich.console import Console
from rich.table import Table

from apprentice.demo import bundled_prompts_path, demo_settings
from apprentice.importing import read_import_file
from apprentice.loop import LOOP_FOLDER, run_loop
from apprentice.project import init_project, open_project
from apprentice.report import round_figures

ALGORITHMS = ("grpo", "dpo", "reward-dpo", "best-of-n")
ORACLES = ("composite", "sentiment", "relevance", "concision")


@dataclass(frozen=True)
class RoundPoint:
    """One round of one run: what it cost and what the held-out evaluation found."""

    algorithm: str
    oracle: str
    seed: int
    round: int
    labels: int
    wall_seconds: float
    reward_gold_accuracy: float | None
    reward_gold_pairs: int | None
    prompt_wins: list[float]  # per held-out prompt: share of its samples that beat the base's on gold
    prompt_gains: list[float]  # per held-out prompt: mean gold of its samples minus the base's


def per_prompt(
    evaluation_rows: list[dict[str, object]], base_rows: list[dict[str, object]]
) -> tuple[list[float], list[float]]:
    """Win share and gold gain of each held-out prompt, pairing the i-th sample of each side.

    Both files hold the samples in the same order (prompt by prompt), as the loop's evaluation writes them.
    """
    if len(evaluation_rows) != len(base_rows):
        raise ValueError(f"paired samples needed: {len(evaluation_rows)} new against {len(base_rows)} base")
    wins: dict[str, list[float]] = {}
    gains: dict[str, list[float]] = {}
    for new, base in zip(evaluation_rows, base_rows, strict=True):
        if new["prompt"] != base["prompt"]:
            raise ValueError(f"samples out of order: {new['prompt']!r} against {base['prompt']!r}")
        prompt = str(new["prompt"])
        new_gold, base_gold = float(new["gold"]), float(base["gold"])  # type: ignore[arg-type]
        wins.setdefault(prompt, []).append(1.0 if new_gold > base_gold else 0.5 if new_gold == base_gold else 0.0)
        gains.setdefault(prompt, []).append(new_gold - base_gold)
    return [statistics.fmean(values) for values in wins.values()], [statistics.fmean(v) for v in gains.values()]


def bootstrap_mean(values: list[float], *, draws: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of per-prompt values with a 95% percentile bootstrap interval over prompts."""
    if not values:
        raise ValueError("no values to average")
    rng = random.Random(seed)
    count = len(values)
    means = sorted(statistics.fmean(rng.choices(values, k=count)) for _ in range(draws))
    return statistics.fmean(values), means[int(0.025 * draws)], means[int(0.975 * draws) - 1]


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_one(folder: Path, algorithm: str, oracle: str, seed: int, args: argparse.Namespace) -> list[RoundPoint]:
    """The loop for `args.rounds` rounds (resuming a stopped run), one point per round."""
    results = folder / "points.json"
    if results.exists():
        points = [RoundPoint(**point) for point in json.loads(results.read_text(encoding="utf-8"))]
        if len(points) >= args.rounds:
            return points[: args.rounds]
    settings = demo_settings(args.model)
    settings.loop.algorithm = algorithm
    settings.loop.oracle = oracle
    settings.loop.labels_per_round = args.labels_per_round
    settings.loop.prompts_per_round = args.prompts_per_round
    settings.loop.policy_steps = args.policy_steps
    settings.loop.eval_prompts = args.eval_prompts
    if args.policy_learning_rate is not None:
        settings.loop.policy_learning_rate = args.policy_learning_rate
    settings.loop.rounds = args.rounds
    settings.generation.seed = seed
    console = Console()
    if (folder / "apprentice.toml").exists():
        project = open_project(folder)
    else:
        project = init_project(folder, settings=settings)
        parsed = read_import_file(bundled_prompts_path())
        project.store.import_prompts(parsed.prompts, [], source="bundled")
    points: list[RoundPoint] = []
    elapsed = 0.0
    try:
        for number in range(1, args.rounds + 1):
            started = time.perf_counter()
            run_loop(project, rounds=number, console=console, show_progress=False)
            elapsed += time.perf_counter() - started
            row = round_figures(project.store.rounds())[number - 1]
            round_folder = folder / LOOP_FOLDER / f"round-{number}"
            wins, gains = per_prompt(
                read_jsonl(round_folder / "eval-new.jsonl"), read_jsonl(round_folder / "eval-base.jsonl")
            )
            accuracy = row["reward_gold_accuracy"] or {}
            points.append(
                RoundPoint(
                    algorithm=algorithm,
                    oracle=oracle,
                    seed=seed,
                    round=number,
                    labels=int(row["labels_so_far"] or 0),
                    wall_seconds=round(elapsed, 1),
                    reward_gold_accuracy=accuracy.get("rate"),
                    reward_gold_pairs=accuracy.get("n"),
                    prompt_wins=wins,
                    prompt_gains=gains,
                )
            )
            results.write_text(json.dumps([asdict(point) for point in points]) + "\n", encoding="utf-8")
    finally:
        project.close()
    return points


def table(points: list[RoundPoint]) -> Table:
    """One row per algorithm, oracle and round; seeds pooled (their prompts differ)."""
    grid = Table(title="Held-out gold against the base policy, by human labels spent")
    for column in (
        "oracle",
        "algorithm",
        "round",
        "labels",
        "win rate on gold (95% CI, prompts)",
        "gold gain (95% CI)",
        "reward acc. vs gold (pairs)",
        "wall min",
        "seeds",
    ):
        grid.add_column(column, overflow="fold")
    groups: dict[tuple[str, str, int], list[RoundPoint]] = {}
    for point in points:
        groups.setdefault((point.oracle, point.algorithm, point.round), []).append(point)
    for (oracle, algorithm, number), group in sorted(groups.items()):
        wins = [value for point in group for value in point.prompt_wins]
        gains = [value for point in group for value in point.prompt_gains]
        win, win_low, win_high = bootstrap_mean(wins)
        gain, gain_low, gain_high = bootstrap_mean(gains)
        accuracies = [(p.reward_gold_accuracy, p.reward_gold_pairs) for p in group if p.reward_gold_accuracy]
        pairs = sum(count or 0 for _, count in accuracies)
        accuracy = f"{sum(rate * (count or 0) for rate, count in accuracies) / pairs:.3f} ({pairs})" if pairs else "-"
        grid.add_row(
            oracle,
            algorithm,
            str(number),
            f"{statistics.fmean(point.labels for point in group):.0f}",
            f"{win:.3f} ({win_low:.2f}-{win_high:.2f}, n={len(wins)})",
            f"{gain:+.4f} ({gain_low:+.4f} to {gain_high:+.4f})",
            accuracy,
            f"{statistics.fmean(point.wall_seconds for point in group) / 60:.1f}",
            str(len(group)),
        )
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=Path("benchmarks/results/label-to-gain"))
    parser.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS))
    parser.add_argument("--oracles", nargs="+", choices=ORACLES, default=["composite"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--rounds", type=int, default=2, help="points of the curve: one per round")
    parser.add_argument("--labels-per-round", type=int, default=48)
    parser.add_argument("--prompts-per-round", type=int, default=24)
    parser.add_argument("--policy-steps", type=int, default=10)
    parser.add_argument("--policy-learning-rate", type=float, default=None, help="default: the loop's")
    parser.add_argument("--eval-prompts", type=int, default=48)
    parser.add_argument("--model", default="default")
    args = parser.parse_args()

    points: list[RoundPoint] = []
    for oracle in args.oracles:
        for seed in args.seeds:
            for algorithm in args.algorithms:
                folder = args.folder / f"{oracle}-{algorithm}-seed{seed}"
                points.extend(run_one(folder, algorithm, oracle, seed, args))
                Console().print(table(points))
    (args.folder / "points.json").write_text(json.dumps([asdict(p) for p in points]) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
