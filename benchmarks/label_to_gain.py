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

With a machine judge beside the people (the policy-gain form of `ai_feedback.py`'s question): `--judge good`
or `--judge longer` serves `oracle_judge.py`'s simulated judge for the run as an OpenAI-compatible endpoint
over HTTP (on the run's gold oracle and seed; `good` follows the gold with 15% of its verdicts flipped,
`longer` prefers the longer answer), registers it in the project as `apprentice judges add oracle-good
--endpoint URL --model-name oracle-good` would (`Store.add_judge`), and sets `[loop] judges` and
`judge_share` (`--judge-share`, default 0.5). The loop then uses it as it would use vLLM: each round the judge
labels that share of the round's comparisons first (those the reward ensemble is surest about), asking in
both orders; its confident labels settle their comparisons, and they train with the weight that its
measured agreement with the people earns. Everything else is unchanged (people's `labels_per_round`, the
algorithm, the seeds); such runs are kept in folders ending `-judge-good` or `-judge-longer`. The table's
`labels` are people's labels only (the store's judgments less the judge's), `judge labels` the judge's.
People with the judge at 1x labels against people alone at 1x and at 2x (in a folder of its own, since the
run folders do not name the labels per round):

    python benchmarks/label_to_gain.py --algorithms grpo --rounds 2 --judge good
    python benchmarks/label_to_gain.py --algorithms grpo --rounds 2 --judge longer
    python benchmarks/label_to_gain.py --algorithms grpo --rounds 2 --judge none
    python benchmarks/label_to_gain.py --algorithms grpo --rounds 2 --judge none --labels-per-round 96 \\
        --folder benchmarks/results/label-to-gain-2x

Figures of this form, two seeds, are in benchmarks/README.md ("AI feedback, policy-gain form").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

# As the CLI does: no transformers bar for every model loaded or saved (set before transformers is imported).
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apprentice.demo import bundled_prompts_path, demo_settings
from apprentice.errors import ApprenticeError
from apprentice.evaluation import win_outcomes
from apprentice.importing import read_import_file
from apprentice.loop import LOOP_FOLDER, run_loop
from apprentice.project import Project, init_project, open_project
from apprentice.rates import cluster_bootstrap_mean, per_prompt_means
from apprentice.report import round_figures
from apprentice.store.judges import JudgeRecord
from apprentice.store.rounds import RoundState
from oracle_judge import FLIP_RATE, KINDS, OracleJudge, OracleJudgeServer

ALGORITHMS = ("grpo", "dpo", "reward-dpo", "best-of-n")
ORACLES = ("composite", "sentiment", "relevance", "concision")
JUDGES = ("none", *KINDS)


@dataclass(frozen=True)
class RoundPoint:
    """One round of one run: what it cost and what the held-out evaluation found."""

    algorithm: str
    oracle: str
    seed: int
    round: int
    labels: int  # people's (simulated annotators') labels in the store: never the judge's
    wall_seconds: float
    reward_gold_accuracy: float | None
    reward_gold_pairs: int | None
    prompt_wins: list[float]  # per held-out prompt: share of its samples that beat the base's on gold
    prompt_gains: list[float]  # per held-out prompt: mean gold of its samples minus the base's
    judge: str = "none"  # the simulated machine judge beside the people (oracle_judge.py), or none
    judge_labels: int = 0  # the judge's labels in the store


def judge_name(kind: str) -> str:
    """The simulated judge's annotator name in the project, and its model's name on its endpoint."""
    return f"oracle-{kind}"


def run_folder_name(oracle: str, algorithm: str, seed: int, judge: str) -> str:
    return f"{oracle}-{algorithm}-seed{seed}" + ("" if judge == "none" else f"-judge-{judge}")


def register_judge(project: Project, kind: str, url: str) -> JudgeRecord:
    """Add the simulated judge as `apprentice judges add NAME --endpoint URL --model-name NAME` does (the
    same `Store.add_judge` call); a project that has it already keeps its record."""
    name = judge_name(kind)
    try:
        return project.store.judge(name)
    except ApprenticeError:
        return project.store.add_judge(name, backend="endpoint", model=name, url=url)


def registered_port(project: Project, kind: str) -> int | None:
    """The port in the URL a resumed project stored for its judge (its server comes back there), or None."""
    try:
        url = project.store.judge(judge_name(kind)).url
    except ApprenticeError:
        return None
    return urlsplit(url).port if url else None


def labels_at(states: list[RoundState], number: int) -> tuple[int, int]:
    """People's labels and the judges' labels in the store when round `number`'s collection ended.

    The collect step records every judgment in the store then (`judgments_in_store`: people's, judges' and
    imported alike, which `round_figures`' `labels_so_far` reports) and the judges' labels of its own round
    (`judges.judge_labels`, from the routing); people's are the first less the judges' up to that round (this
    benchmark imports prompts only, no judgments).
    """
    collected = {state.number: state.outputs.get("collect") or {} for state in states}
    judges = sum(int((collected[n].get("judges") or {}).get("judge_labels") or 0) for n in collected if n <= number)
    return int(collected[number].get("judgments_in_store") or 0) - judges, judges


def per_prompt(
    evaluation_rows: list[dict[str, object]], base_rows: list[dict[str, object]]
) -> tuple[list[float], list[float]]:
    """Win share and gold gain of each held-out prompt, pairing the i-th sample of each side.

    Both files hold the samples in the same order (prompt by prompt), as the loop's evaluation writes them.
    """
    if len(evaluation_rows) != len(base_rows):
        raise ValueError(f"paired samples needed: {len(evaluation_rows)} new against {len(base_rows)} base")
    for new, base in zip(evaluation_rows, base_rows, strict=True):
        if new["prompt"] != base["prompt"]:
            raise ValueError(f"samples out of order: {new['prompt']!r} against {base['prompt']!r}")
    prompts = [str(row["prompt"]) for row in evaluation_rows]
    new_golds = [float(row["gold"]) for row in evaluation_rows]  # type: ignore[arg-type]
    base_golds = [float(row["gold"]) for row in base_rows]  # type: ignore[arg-type]
    gains = [new - base for new, base in zip(new_golds, base_golds, strict=True)]
    return per_prompt_means(win_outcomes(new_golds, base_golds), prompts), per_prompt_means(gains, prompts)


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def open_run(folder: Path, algorithm: str, oracle: str, seed: int, args: argparse.Namespace) -> Project:
    """The run's project: made on the demo's settings with the bundled prompts, or reopened to resume."""
    if (folder / "apprentice.toml").exists():
        return open_project(folder)
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
    if args.judge != "none":  # people's quota, algorithm and seeds stay as they are
        settings.loop.judges = [judge_name(args.judge)]
        settings.loop.judge_share = args.judge_share
    project = init_project(folder, settings=settings)
    parsed = read_import_file(bundled_prompts_path())
    project.store.import_prompts(parsed.prompts, [], source="bundled")
    reuse_base_samples(folder, seed)
    return project


def reuse_base_samples(folder: Path, seed: int) -> None:
    """Copy the base policy's held-out samples from a finished run with the same seed, if there is one.

    Same seed, same bundled prompts: the same held-out prompts and the same base samples, which the loop
    otherwise samples again in every run (about a minute and a half here). The loop checks the copy (the
    policy it came from and its size) and samples anew when it does not fit.
    """
    name = Path(LOOP_FOLDER) / "eval-base-samples.json"
    siblings = [*folder.parent.glob(f"*-seed{seed}"), *folder.parent.glob(f"*-seed{seed}-judge-*")]
    for sibling in sorted(siblings):
        if sibling != folder and (sibling / name).exists():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sibling / name, folder / name)
            return


def serve_judge(
    stack: contextlib.ExitStack, project: Project, kind: str, oracle: str, seed: int
) -> OracleJudgeServer | None:
    """Start the run's simulated judge (on the gold oracle the simulated people follow, with the run's seed)
    for as long as `stack` lasts, and register it in the project on its first run; None without a judge."""
    if kind == "none":
        return None
    judge = OracleJudge(kind, oracle=oracle, flip_rate=FLIP_RATE, seed=seed)
    server = OracleJudgeServer(judge, port=registered_port(project, kind))
    stack.enter_context(server)
    register_judge(project, kind, server.url)
    return server


def run_one(folder: Path, algorithm: str, oracle: str, seed: int, args: argparse.Namespace) -> list[RoundPoint]:
    """The loop for `args.rounds` rounds (resuming a stopped run), one point per round."""
    results = folder / "points.json"
    if results.exists():
        done = [RoundPoint(**point) for point in json.loads(results.read_text(encoding="utf-8"))]
        if len(done) >= args.rounds:
            return done[: args.rounds]
    console = Console()
    points: list[RoundPoint] = []
    elapsed = 0.0
    with contextlib.ExitStack() as stack:
        project = open_run(folder, algorithm, oracle, seed, args)
        stack.callback(project.close)
        serve_judge(stack, project, args.judge, oracle, seed)
        for number in range(1, args.rounds + 1):
            started = time.perf_counter()
            run_loop(project, rounds=number, console=console, show_progress=False)
            elapsed += time.perf_counter() - started
            states = project.store.rounds()
            row = round_figures(states)[number - 1]
            people_labels, judge_labels = labels_at(states, number)
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
                    labels=people_labels,
                    wall_seconds=round(elapsed, 1),
                    reward_gold_accuracy=accuracy.get("rate"),
                    reward_gold_pairs=accuracy.get("n"),
                    prompt_wins=wins,
                    prompt_gains=gains,
                    judge=args.judge,
                    judge_labels=judge_labels,
                )
            )
            results.write_text(json.dumps([asdict(point) for point in points]) + "\n", encoding="utf-8")
    return points


def table(points: list[RoundPoint]) -> Table:
    """One row per oracle, algorithm, judge and round; seeds pooled (their prompts differ)."""
    grid = Table(title="Held-out gold against the base policy, by human labels spent")
    for column in (
        "oracle",
        "algorithm",
        "judge",
        "round",
        "labels",
        "judge labels",
        "win rate on gold (95% CI, prompts)",
        "gold gain (95% CI)",
        "reward acc. vs gold (pairs)",
        "wall min",
        "seeds",
    ):
        grid.add_column(column, overflow="fold")
    groups: dict[tuple[str, str, str, int], list[RoundPoint]] = {}
    for point in points:
        groups.setdefault((point.oracle, point.algorithm, point.judge, point.round), []).append(point)
    for (oracle, algorithm, judge, number), group in sorted(groups.items()):
        wins = [value for point in group for value in point.prompt_wins]
        gains = [value for point in group for value in point.prompt_gains]
        win, win_low, win_high = cluster_bootstrap_mean(wins)
        gain, gain_low, gain_high = cluster_bootstrap_mean(gains)
        accuracies = [(p.reward_gold_accuracy, p.reward_gold_pairs) for p in group if p.reward_gold_accuracy]
        pairs = sum(count or 0 for _, count in accuracies)
        accuracy = f"{sum(rate * (count or 0) for rate, count in accuracies) / pairs:.3f} ({pairs})" if pairs else "-"
        grid.add_row(
            oracle,
            algorithm,
            judge,
            str(number),
            f"{statistics.fmean(point.labels for point in group):.0f}",
            f"{statistics.fmean(point.judge_labels for point in group):.0f}",
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
    parser.add_argument(
        "--judge",
        choices=JUDGES,
        default="none",
        help="a simulated machine judge beside the people, served over HTTP (oracle_judge.py)",
    )
    parser.add_argument(
        "--judge-share", type=float, default=0.5, help="[loop] judge_share: the round's share offered to the judge"
    )
    args = parser.parse_args()

    points: list[RoundPoint] = []
    for oracle in args.oracles:
        for seed in args.seeds:
            for algorithm in args.algorithms:
                folder = args.folder / run_folder_name(oracle, algorithm, seed, args.judge)
                points.extend(run_one(folder, algorithm, oracle, seed, args))
                Console().print(table(points))
    (args.folder / "points.json").write_text(json.dumps([asdict(p) for p in points]) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
