"""Comparing policies outside the loop: `apprentice eval POLICY [POLICY ...]` on the held-out prompts.

Every policy answers the project's held-out prompts with the same sampling settings and seed. The answers
are scored by a reward model (by default the project's newest reward run) and by the gold oracle when the
project simulates its annotators (`[loop] annotators` > 0, `oracle`), as the loop scores them. The first
policy named is the base: KL is measured from it, and every other policy's win rate against it (answer by
answer, ties half) comes with its count and a 95% bootstrap interval over prompts. Sampling, scoring and
win rates are the loop's own (`apprentice.evaluation`).

The results go to `runs/eval-N/eval.json`, each policy's answers beside it, and the store records the run
(kind `eval`), so that `apprentice report` shows them for a project trained by hand.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from apprentice.errors import ApprenticeError
from apprentice.evaluation import Scorer
from apprentice.files import write_text_atomically
from apprentice.project import Project
from apprentice.run_folders import RUNS_FOLDER, claim_numbered_folder
from apprentice.store import Store
from apprentice.store.tables import Policy

EVAL_FILE = "eval.json"
MIN_ITEMS_FOR_A_RATE = 20  # fewer than this and a rate is shown as too little data


@dataclass(frozen=True)
class EvalOptions:
    samples_per_prompt: int = 2
    max_new_tokens: int = 48  # as the loop's evaluation
    temperature: float = 0.7
    seed: int = 0
    batch_size: int = 8
    limit: int | None = None  # only the first N held-out prompts

    def check(self) -> None:
        if self.samples_per_prompt < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ApprenticeError("--samples, --max-new-tokens and --batch-size must be at least 1")
        if self.temperature <= 0:
            raise ApprenticeError(f"--temperature must be above 0 (KL is measured at it), got {self.temperature}")
        if self.limit is not None and self.limit < 1:
            raise ApprenticeError(f"--limit must be at least 1, got {self.limit}")


# -- policies -------------------------------------------------------------------------------------------


def trained_policies(store: Store) -> list[Policy]:
    """The policies training made, by hand (`apprentice policy train`) or by the loop, oldest first."""
    ids = [run.metrics.get("policy_id") for run in store.runs("policy") if run.status == "done"]
    ids += [state.new_policy_id for state in store.rounds()]
    return [store.policy_by_id(policy_id) for policy_id in sorted({i for i in ids if isinstance(i, int)})]


def policy_location(store: Store, name: str) -> str:
    """A stored policy's folder by its name (`dpo-run3`, `round-2-grpo`), else the name as a model: 'default',
    a folder or a cached hub id."""
    from apprentice.models import resolve_model

    for policy in trained_policies(store):
        if policy.name == name and policy.model_path:
            return resolve_model(policy.model_path)
    return resolve_model(name)


# -- scorers --------------------------------------------------------------------------------------------


def reward_scorer(project: Project, specs: Sequence[str] | None) -> tuple[Scorer | None, list[str]]:
    """The reward to score answers with and what it is: `specs` as `--reward` takes them ('latest' named by
    its folder), or by default the project's newest reward run (none when it has no reward run yet)."""
    from apprentice.rl.training import latest_reward_folder, reward_source

    if not specs:
        try:
            specs = [latest_reward_folder(project)]
        except ApprenticeError:
            return None, []
    named = []
    for spec in specs:
        weight, star, rest = spec.rpartition("*")
        named.append(f"{weight}{star}{latest_reward_folder(project) if rest == 'latest' else rest}")
    source = reward_source(project, named, batch_size=32)  # a run folder is read through its model/

    def score(prompts: Sequence[list[Any]], completions: Sequence[str]) -> list[float]:
        return [float(value) for value in source(prompts, completions).tolist()]

    return score, named


def gold_oracle(project: Project, oracle: str | None) -> str | None:
    """The oracle named with `--oracle` ('none' for none), else the project's when it simulates annotators."""
    if oracle is not None:
        return None if oracle == "none" else oracle
    loop = project.settings.loop
    return loop.oracle if loop.annotators > 0 else None


# -- the evaluation -------------------------------------------------------------------------------------


def evaluate_policies(
    project: Project,
    names: Sequence[str],
    *,
    reward_specs: Sequence[str] | None = None,
    oracle: str | None = None,
    options: EvalOptions | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> tuple[dict[str, Any], Path]:
    """Sample, score and compare the policies; returns the results and the folder they were written to."""
    from apprentice.evaluation import gold_scorer, sample_policy, save_samples, score_samples, summary, win_rate
    from apprentice.oracles import load_oracle

    options = options or EvalOptions()
    options.check()
    if not names:
        raise ApprenticeError("name at least one policy to evaluate")
    if len(set(names)) != len(names):
        raise ApprenticeError(f"a policy is named twice in {', '.join(names)}")
    paths = [policy_location(project.store, name) for name in names]
    prompts = [prompt.messages for prompt in project.store.prompts(held_out=True, limit=options.limit)]
    if not prompts:
        raise ApprenticeError(
            "the project has no held-out prompts to evaluate on; import some with "
            "`apprentice prompts import FILE --held-out` (the loop sets some aside on its first round)"
        )
    reward, reward_used = reward_scorer(project, reward_specs)
    oracle_name = gold_oracle(project, oracle)
    gold = gold_scorer(load_oracle(oracle_name)) if oracle_name else None
    config = {
        "policies": list(names),
        "paths": paths,
        "reward": reward_used,
        "oracle": oracle_name,
        "prompts": len(prompts),
        **asdict(options),
    }
    folder = _claim_eval_folder(project)
    run = project.store.start_run("eval", config, output_path=str(folder))
    try:
        scored = []
        answer_prompts: list[str] = []  # every policy's samples answer the same prompts in the same order
        for index, (name, path) in enumerate(zip(names, paths, strict=True), start=1):
            say(f"{name}: {len(prompts)} prompts x {options.samples_per_prompt} answers")
            samples = sample_policy(
                path,
                paths[0],
                prompts,
                completions_per_prompt=options.samples_per_prompt,
                max_new_tokens=options.max_new_tokens,
                temperature=options.temperature,
                seed=options.seed,
                batch_size=options.batch_size,
                mixed_precision=project.settings.model.mixed_precision,
            )
            answer_prompts = samples.answer_prompts()
            scores = score_samples(samples, reward=reward, gold=gold)
            save_samples(folder / f"answers-{index}.jsonl", samples, scores)
            scored.append(scores)
        rows = []
        answers = len(prompts) * options.samples_per_prompt
        for name, scores in zip(names, scored, strict=True):
            row: dict[str, Any] = {"name": name, **summary(scores), "answers": answers}
            for kind, values, base_values in (
                ("reward", scores.rewards, scored[0].rewards),
                ("gold", scores.golds, scored[0].golds),
            ):
                row[f"win_rate_vs_base_{kind}"] = (
                    asdict(win_rate(values, base_values, answer_prompts))
                    if values and scores is not scored[0]
                    else None
                )
            rows.append(row)
        results = {**config, "base": names[0], "answers_per_policy": answers, "results": rows}
        write_text_atomically(folder / EVAL_FILE, json.dumps(results, indent=2) + "\n")
    except BaseException:  # Ctrl-C too: no folder of half the answers is left behind
        project.store.finish_run(run.id, metrics={}, status="failed")
        shutil.rmtree(folder, ignore_errors=True)
        raise
    headline = {row["name"]: {k: row[k] for k in ("reward_mean", "gold_mean", "kl_from_base")} for row in rows}
    project.store.finish_run(run.id, metrics=headline)
    return results, folder


def _claim_eval_folder(project: Project) -> Path:
    """`runs/eval-N` for the next N: a new folder, never one an earlier evaluation wrote or recorded."""
    recorded = [run.output_path for run in project.store.runs("eval") if run.output_path]
    return claim_numbered_folder(project.root / RUNS_FOLDER, "eval", recorded)


def load_evaluations(store: Store) -> list[tuple[int, dict[str, Any]]]:
    """Every finished evaluation's results whose file is still there, with its run id, oldest first."""
    found = []
    for run in store.runs("eval"):
        path = Path(run.output_path or "") / EVAL_FILE
        if run.status == "done" and run.output_path and path.is_file():
            found.append((run.id, json.loads(path.read_text(encoding="utf-8"))))
    return found


# -- figures as text --------------------------------------------------------------------------------------


def rate_text(rate: dict[str, Any] | None) -> str:
    """A win rate with its interval and count; under 20 comparisons, no rate at all."""
    if not rate:
        return "-"
    count = int(rate["comparisons"])
    wins = f"{rate['wins']:g}/{count}"
    if count < MIN_ITEMS_FOR_A_RATE:
        return f"too little data ({wins})"
    low, high = max(0.0, rate["low"]), min(1.0, rate["high"])  # Wilson bounds in older files overshot by rounding
    return f"{rate['rate']:.2f} [{low:.2f}, {high:.2f}] ({wins})"


def mean_text(value: float | None, count: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f} (n={count})"


RESULT_COLUMNS = (
    "policy",
    "KL from base",
    "reward",
    "gold",
    "length (tokens)",
    "win rate vs base (reward)",
    "win rate vs base (gold)",
)


def result_cells(row: dict[str, Any]) -> tuple[str, ...]:
    """One policy's results as the table shows them, in RESULT_COLUMNS' order."""
    return (
        row["name"],
        f"{row['kl_from_base']:.3f}",
        mean_text(row["reward_mean"], row["answers"]),
        mean_text(row["gold_mean"], row["answers"]),
        f"{row['length_mean']:.1f}",
        rate_text(row["win_rate_vs_base_reward"]),
        rate_text(row["win_rate_vs_base_gold"]),
    )
