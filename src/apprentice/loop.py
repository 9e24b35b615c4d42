"""The loop: rounds of generate, collect judgments, check them, train the reward, optimize, evaluate.

Each round is a row in the store with the next step to run; a step records what it produced and
moves the round on in one transaction, so the loop can be stopped anywhere (Ctrl-C, a crash) and
`apprentice loop` resumes at the step it was in. Every step is safe to run again: generation notices
the comparisons it already committed, collection counts the judgments already made, policy training
resumes from its own checkpoints (on the data it started with, kept in the round's folder), and the rest
are recomputed.

Round r generates with the policy that round r-1 produced (round 1 with the project's policy). The
reward is an ensemble of heads on a shared frozen backbone, trained on every judgment so far with the
weights the quality checks give; its spread chooses which comparisons people see first next round,
and the policy is optimized against its mean minus a multiple of its spread (GRPO, RLOO, PPO), or
learns from preference pairs or the ensemble's best responses (apprentice.policy_data).
"""

from __future__ import annotations

import gc
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from apprentice.errors import ApprenticeError
from apprentice.oracles import release_encoder
from apprentice.process_memory import release_freed_memory
from apprentice.report import step_summary
from apprentice.store.rounds import RoundState

if TYPE_CHECKING:
    from apprentice.precision import MixedPrecision
    from apprentice.project import Project
    from apprentice.rl.config import GRPOConfig, PPOConfig, RLOOConfig
    from apprentice.settings import LoopSection
    from apprentice.store.tables import Policy, Prompt

LOOP_FOLDER = "loop"
# Folds of the reward step's cross-validation: each fold's heads learn from four fifths of the labels.
REWARD_FOLDS = 5


@dataclass
class LoopContext:
    project: Project
    console: Console
    show_progress: bool = True

    @property
    def settings(self) -> LoopSection:
        return self.project.settings.loop

    def round_dir(self, number: int) -> Path:
        folder = self.project.root / LOOP_FOLDER / f"round-{number}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


class LoopStopped(Exception):
    """Raised by `stop_after` in tests and by the user's Ctrl-C: the loop resumes where it stopped."""


# -- set-up ---------------------------------------------------------------------------------------


def base_policy(context: LoopContext) -> Policy:
    from apprentice.models import resolve_model

    name = context.project.settings.model.policy
    return context.project.store.ensure_policy(name, kind="base", model_path=resolve_model(name))


def held_out_prompts(context: LoopContext) -> list[Prompt]:
    """The evaluation prompts; on the first run a seeded sample of the project's prompts is set aside."""
    store = context.project.store
    held = store.prompts(held_out=True)
    if held:
        return held
    candidates = store.prompts(held_out=False)
    count = context.settings.eval_prompts
    if len(candidates) < count + context.settings.prompts_per_round // 2:
        raise ApprenticeError(
            f"the loop needs at least {count} evaluation prompts plus training prompts; the project has "
            f"{len(candidates)} (import more, or lower loop.eval_prompts)"
        )
    chosen = random.Random(context.project.settings.generation.seed).sample(candidates, count)
    store.hold_out_prompts([prompt.id for prompt in chosen])
    return store.prompts(held_out=True)


def training_prompt_ids(context: LoopContext, number: int, count: int | None = None) -> list[int]:
    """Round r takes the next `prompts_per_round` training prompts, cycling, so rounds see different prompts;
    `count` asks for more (or fewer) from the same start, each prompt at most once."""
    ids = [prompt.id for prompt in context.project.store.prompts(held_out=False)]
    per_round = min(context.settings.prompts_per_round, len(ids))
    start = ((number - 1) * per_round) % len(ids)
    wanted = per_round if count is None else min(count, len(ids))
    return [ids[(start + offset) % len(ids)] for offset in range(wanted)]


# -- the steps ------------------------------------------------------------------------------------


def step_generate(context: LoopContext, state: RoundState) -> dict[str, Any]:
    from apprentice.generation import generate_for_project

    store = context.project.store
    already = store.round_comparison_count(state.number)
    if already:  # a previous attempt committed its generation before it was stopped
        return {"comparisons": already, "resumed": True}
    summary = generate_for_project(
        context.project,
        model_name=state.policy_path,
        prompt_ids=training_prompt_ids(context, state.number),
        round_number=state.number,
        show_progress=context.show_progress,
    )
    return {
        "prompts": summary.prompts,
        "responses": summary.responses_stored,
        "comparisons": summary.comparisons,
        "tokens_per_second": round(summary.tokens_per_second, 2),
    }


def _previous_reward_folder(context: LoopContext, number: int) -> Path | None:
    for state in reversed(context.project.store.rounds()):
        if state.number < number and "reward" in state.outputs:
            return Path(state.outputs["reward"]["folder"])
    return None


def set_priorities(context: LoopContext, number: int) -> dict[str, Any]:
    """Order this round's open comparisons by the selection rule on the previous round's ensemble."""
    import numpy as np

    from apprentice.selection import RULES, random_scores

    store = context.project.store
    comparison_ids = store.open_comparison_ids(number)
    if not comparison_ids:
        return {"rule": "none", "scored": 0}
    rule = context.settings.selection
    folder = _previous_reward_folder(context, number)
    if rule == "random" or folder is None:
        scores = random_scores(np.zeros((1, len(comparison_ids))), seed=number)
        used = "random"
    else:
        from apprentice.reward.ensemble import load_ensemble

        ensemble = load_ensemble(folder)
        contents = store.comparison_contents(comparison_ids)
        prompts: list[Any] = []
        responses: list[str] = []
        rows: list[tuple[int, int]] = []
        for comparison_id in comparison_ids:
            messages, texts = contents[comparison_id]
            rows.append((len(responses), len(texts)))
            prompts += [messages] * len(texts)
            responses += texts
        members = np.asarray(ensemble.score(prompts, responses).members)  # (K, responses)
        # A comparison's margin: first response against the best of the others (pairs: plainly a - b).
        margins = np.stack(
            [
                members[:, start] - members[:, start + 1 : start + size].max(axis=1) if size > 1 else members[:, start]
                for start, size in rows
            ],
            axis=1,
        )
        scores = RULES[rule](margins)
        used = rule
    store.set_priorities({cid: float(score) for cid, score in zip(comparison_ids, scores, strict=True)})
    return {"rule": used, "scored": len(comparison_ids)}


def step_collect(context: LoopContext, state: RoundState) -> dict[str, Any]:
    """Wait until the round's quota of judgments is met: by simulated annotators, or by people."""
    store = context.project.store
    quota = context.settings.labels_per_round
    selection = state.outputs.get("collect_selection") or set_priorities(context, state.number)
    routing = route_to_judges(context, state)
    done = store.round_judgment_count(state.number)
    available = len(store.open_comparison_ids(state.number))
    if done < quota and context.settings.annotators > 0 and available:
        from apprentice.simulate import simulate_project

        # The simulators also answer comparisons left open by earlier rounds (those count as labels, not
        # towards this round's quota), so one pass can fall short: go again until the quota is met.
        attempt = 0
        while done < quota and available:
            report = simulate_project(
                context.project,
                annotators=context.settings.annotators,
                oracle=context.settings.oracle,
                flip_rate=context.settings.flip_rate,
                seed=state.number + 1000 * attempt,
                max_judgments=quota - done,
            )
            context.console.print(
                f"   {report.judgments} simulated judgments (temperature {report.temperature:.3g}; "
                f"{report.describe_agreement()})"
            )
            if report.judgments == 0:
                break
            attempt += 1
            done = store.round_judgment_count(state.number)
            available = len(store.open_comparison_ids(state.number))
    elif done < quota and available:
        context.console.print(
            f"   waiting for {quota - done} judgments from people: run `apprentice studio -p {context.project.root}` "
            f"and hand out sign-in links with `apprentice annotators add NAME -p {context.project.root}`"
        )
        while store.round_judgment_count(state.number) < quota and store.open_comparison_ids(state.number):
            time.sleep(context.settings.poll_seconds)
    # All judgments so far, the next reward model's data: more than the rounds' own counts added up, since
    # comparisons that earlier rounds left open can still be judged (by people or simulators).
    return {
        "judgments": store.round_judgment_count(state.number),
        "judgments_in_store": store.summary().judgments,
        "quota": quota,
        "selection": selection,
        "judges": routing,
    }


def route_to_judges(context: LoopContext, state: RoundState) -> dict[str, int] | None:
    """Let the machine judges label their share of the round first (`[loop] judges`, `judge_share`)."""
    settings = context.settings
    if not settings.judges or settings.judge_share <= 0:
        return None
    from apprentice.judges.routing import RoutingSettings, route_round

    outcome = route_round(
        context.project,
        state.number,
        RoutingSettings(settings.judges, settings.judge_share, settings.judge_confidence, settings.judge_audit_share),
        seed=state.number,
    )
    context.console.print(
        f"   judges labelled {outcome.judge_labels} of {outcome.offered} comparisons offered; "
        f"{outcome.settled} settled, {outcome.to_people} go to people"
    )
    return outcome.as_dict()


def step_quality(context: LoopContext, state: RoundState) -> dict[str, Any]:
    from apprentice.quality.agreement import krippendorff_alpha, raw_agreement
    from apprentice.quality.correction import correct
    from apprentice.quality.flags import check_annotators
    from apprentice.quality.pairs import pair_units

    store = context.project.store
    judgments = store.quality_judgments()
    if not judgments:
        return {"judgments": 0, "flagged": []}
    checks = check_annotators(judgments)
    correction = correct(judgments, checks)
    with store.recording_run("quality", {"source": "loop", "loop_round": state.number}) as run:
        store.set_judgment_weights(correction.weights, run_id=run.id)
        judges = weigh_judges(context, run.id) if store.judges() else None
        run.metrics = {"judgments": len(correction.weights)}
    # Agreement on this round's comparisons, for the report: do the annotators agree as often as people do?
    units = pair_units([judgment for judgment in judgments if judgment.round == state.number])
    return {
        "judges": judges,
        "judgments": len(judgments),
        "flagged": sorted(checks.flagged),
        "mean_weight": sum(correction.weights.values()) / max(len(correction.weights), 1),
        "agreement": _finite_or_none(raw_agreement(units)),
        "agreement_units": sum(1 for unit in units if len(unit) >= 2),  # comparisons the agreement rests on
        "alpha": _finite_or_none(krippendorff_alpha(units)),
    }


def weigh_judges(context: LoopContext, quality_run_id: int) -> dict[str, dict[str, Any]]:
    """Calibrate every machine judge against people so far, weight its labels, and write its report."""
    from apprentice.judges.jobs import calibrate_and_report, weight_judges

    calibrations, _, _ = calibrate_and_report(context.project, context.project.root / LOOP_FOLDER / "quality")
    weight_judges(context.project, calibrations, run_id=quality_run_id)
    return {
        c.name: {
            "labels": c.labels,
            "shared_with_people": c.agreement.trials,
            "agreement": c.agreement.value,
            "kappa": _finite_or_none(c.kappa),
            "weight": c.weight,
            "flags": c.flags,
        }
        for c in calibrations
    }


def _finite_or_none(value: float) -> float | None:
    """NaN (no two judgments of one comparison) as None, which JSON can hold."""
    return value if math.isfinite(value) else None


def step_reward(context: LoopContext, state: RoundState) -> dict[str, Any]:
    """The reward ensemble on every label so far; its accuracy on people's labels by cross-validation over
    prompts (REWARD_FOLDS folds), so that no label is held back from training to measure it."""
    from apprentice.reward.data import DerivationOptions, derive_preferences
    from apprentice.reward.ensemble import train_shared_backbone_ensemble

    store = context.project.store
    data = derive_preferences(store.judged_comparisons(), DerivationOptions())
    folder = context.round_dir(state.number) / "reward"
    config = {
        "loop_round": state.number,
        "model": context.settings.reward_model,
        "heads": context.settings.reward_heads,
        "features": context.settings.reward_features,
        "l2": context.settings.reward_l2,
        "quality_run": store.current_weights_run(),
        "cross_validation_folds": REWARD_FOLDS,
    }
    with store.recording_run("reward", config, output_path=str(folder.resolve())) as run:
        _, evaluation = train_shared_backbone_ensemble(
            data,
            folder,
            model=context.settings.reward_model,
            heads=context.settings.reward_heads,
            max_length=256,
            seed=state.number,
            features=context.settings.reward_features,
            l2=context.settings.reward_l2,
            cross_validation_folds=REWARD_FOLDS,
        )
        # every strict pair, each scored by heads that did not see its prompt; the mean over prompts of each
        # prompt's share, with an interval over prompts (a prompt's pairs share its responses)
        accuracy = evaluation.get("accuracy_over_prompts", {})
        # "pairs": the pairs the accuracy is measured on, as `apprentice reward train` records it
        run.metrics = {"accuracy": accuracy.get("rate"), "pairs": accuracy.get("n", 0), "train_pairs": len(data)}
    return {
        "folder": str(folder),
        "train_pairs": len(data),
        "validation": evaluation.get("method", "none: too few prompts"),
        "validation_pairs": accuracy.get("n", 0),
        "validation_prompts": accuracy.get("prompts", 0),
        "accuracy": accuracy.get("rate"),
        "accuracy_low": accuracy.get("low"),
        "accuracy_high": accuracy.get("high"),
    }


def step_policy(context: LoopContext, state: RoundState) -> tuple[dict[str, Any], int | None]:
    from apprentice.policy_data import PREFERENCE_ALGORITHMS
    from apprentice.rl.training import train_policy

    settings = context.settings
    if settings.algorithm in PREFERENCE_ALGORITHMS:
        return step_policy_from_preferences(context, state)
    reward_folder = state.outputs["reward"]["folder"]
    output_dir = context.round_dir(state.number) / "policy"
    config = online_policy_config(
        settings, output_dir, state.number, mixed_precision=context.project.settings.model.mixed_precision
    )
    resume = any(output_dir.glob("checkpoint*"))
    outcome = train_policy(
        settings.algorithm,
        config,
        str(state.policy_path),
        project=context.project,
        reward_specs=[f"ensemble:{settings.spread_penalty}:{reward_folder}"],
        new_name=f"round-{state.number}-{settings.algorithm}",
        resume=resume,
        show_progress=context.show_progress,
    )
    metrics = {key: value for key, value in outcome.metrics.items() if "/" not in key}
    return {"policy": outcome.policy_name, "path": str(outcome.policy_path), "metrics": metrics}, outcome.policy_id


def online_policy_config(
    settings: LoopSection, output_dir: Path, round_number: int, *, mixed_precision: MixedPrecision = "auto"
) -> GRPOConfig | PPOConfig | RLOOConfig:
    """The round's grpo, rloo or ppo run as the [loop] settings shape it (the algorithms' defaults otherwise)."""
    from apprentice.rl.config import GRPOConfig, PPOConfig, RLOOConfig, build_config

    options = {
        "output_dir": output_dir,
        "steps": settings.policy_steps,
        "prompts_per_step": settings.policy_prompts_per_step,
        "learning_rate": settings.policy_learning_rate,
        "lora_rank": settings.policy_lora_rank,
        "mixed_precision": mixed_precision,
        "seed": round_number,
    }
    config = build_config(settings.algorithm, options)
    assert isinstance(config, GRPOConfig | PPOConfig | RLOOConfig)  # dpo and the others: from preferences
    return config


def step_policy_from_preferences(context: LoopContext, state: RoundState) -> tuple[dict[str, Any], int | None]:
    """DPO on the round's judged pairs or on reward-labelled ones, or fine-tuning on the reward's best of N
    (see apprentice.policy_data); the reference and the starting point are the round's starting policy."""
    from apprentice import policy_data
    from apprentice.rl.config import SFTConfig, build_config
    from apprentice.rl.training import train_policy

    settings = context.settings
    store = context.project.store
    folder = context.round_dir(state.number)
    wanted = training_prompt_ids(context, state.number, count=settings.policy_steps * policy_data.PAIRS_PER_STEP)
    messages = {prompt.id: prompt.messages for prompt in store.prompts(held_out=False)}
    inputs = policy_data.RoundInputs(
        store=store,
        settings=settings,
        generation=context.project.settings.generation,
        mixed_precision=context.project.settings.model.mixed_precision,
        round_number=state.number,
        policy_path=str(state.policy_path),
        prompts=[messages[prompt_id] for prompt_id in wanted],
        reward_folder=Path(state.outputs["reward"]["folder"]),
        show_progress=context.show_progress,
    )
    data, counts = policy_data.round_training_data(folder, settings.algorithm, inputs)
    output_dir = folder / "policy"
    options = {
        "output_dir": output_dir,
        "steps": settings.policy_steps,
        "batch_size": policy_data.PAIRS_PER_STEP,
        "learning_rate": settings.policy_learning_rate,
        "lora_rank": settings.policy_lora_rank,
        "mixed_precision": context.project.settings.model.mixed_precision,
        "seed": state.number,
    }
    if settings.algorithm == "best-of-n":
        config: Any = SFTConfig(**options)
    else:
        config = build_config(
            "dpo",
            options
            | {"beta": settings.dpo_beta, "loss": settings.dpo_loss, "label_smoothing": settings.dpo_label_smoothing},
        )
    outcome = train_policy(
        settings.algorithm,
        config,
        str(state.policy_path),
        project=context.project,
        data=data,
        new_name=f"round-{state.number}-{settings.algorithm}",
        resume=any(output_dir.glob("checkpoint*")),
        show_progress=context.show_progress,
    )
    metrics = {key: value for key, value in outcome.metrics.items() if "/" not in key}
    output = {"policy": outcome.policy_name, "path": str(outcome.policy_path), "metrics": metrics, "data": counts}
    return output, outcome.policy_id


EVAL_COMPLETIONS_PER_PROMPT = 2


def _held_out_samples(
    context: LoopContext, state: RoundState, label: str, path: str, base_path: str, prompts: list[Any]
) -> Any:
    """A policy's answers to the held-out prompts, sampled once: the base policy's are the same every round
    (same prompts, same seed) and the previous round's policy was the last round's new one, so both are read
    back from where they were saved instead of sampled again. Scores are not kept: each round's reward
    model scores them anew."""
    from apprentice.evaluation import load_policy_samples, sample_policy, save_policy_samples

    saved = {
        "base": context.project.root / LOOP_FOLDER / "eval-base-samples.json",
        "previous": context.round_dir(state.number - 1) / "eval-new-samples.json" if state.number > 1 else None,
        "new": context.round_dir(state.number) / "eval-new-samples.json",
    }[label]
    samples = load_policy_samples(saved) if saved is not None else None
    # the same prompts in the same order, or the win rates would pair answers to different prompts
    answered = [list(prompt) for prompt in prompts for _ in range(EVAL_COMPLETIONS_PER_PROMPT)]
    if samples is not None and samples.policy == path and samples.prompts == answered:
        return samples
    samples = sample_policy(
        path,
        base_path,
        prompts,
        completions_per_prompt=EVAL_COMPLETIONS_PER_PROMPT,
        seed=0,
        mixed_precision=context.project.settings.model.mixed_precision,
    )
    if saved is not None:
        save_policy_samples(saved, samples)
    return samples


def step_evaluate(context: LoopContext, state: RoundState) -> dict[str, Any]:
    from apprentice.evaluation import (
        gold_scorer,
        mean_gain,
        reward_gold_accuracy,
        save_samples,
        score_samples,
        summary,
        win_rate,
    )
    from apprentice.oracles import load_oracle
    from apprentice.reward.ensemble import load_ensemble

    store = context.project.store
    prompts = [prompt.messages for prompt in held_out_prompts(context)]
    base_path = str(base_policy(context).model_path)
    new_path = str(store.policy_by_id(state.new_policy_id).model_path) if state.new_policy_id else base_path
    ensemble = load_ensemble(Path(state.outputs["reward"]["folder"]))

    def reward(prompts_: Any, completions: Any) -> list[float]:
        return list(ensemble.score(prompts_, completions).mean)

    gold = gold_scorer(load_oracle(context.settings.oracle)) if context.settings.annotators > 0 else None
    folder = context.round_dir(state.number)
    results: dict[str, Any] = {}
    scored: dict[str, Any] = {}
    for label, path in (("base", base_path), ("previous", str(state.policy_path)), ("new", new_path)):
        if label == "previous" and path == base_path:
            scored[label] = scored["base"]
            continue
        samples = _held_out_samples(context, state, label, path, base_path, prompts)
        if label == "new":  # every policy's samples answer the held-out prompts in the same order
            answer_prompts = samples.answer_prompts()
        scores = score_samples(samples, reward=reward, gold=gold)
        save_samples(folder / f"eval-{label}.jsonl", samples, scores)
        scored[label] = scores
        results[label] = summary(scores)
    accuracy = reward_gold_accuracy([scored["base"], scored["new"]], EVAL_COMPLETIONS_PER_PROMPT)
    if accuracy is not None:
        results["reward_gold_accuracy"] = {
            "rate": accuracy.rate,
            "low": accuracy.low,
            "high": accuracy.high,
            "n": accuracy.comparisons,
        }
    results.setdefault("previous", results["base"])
    for label in ("base", "previous"):
        for kind, attribute in (("reward", "rewards"), ("gold", "golds")):
            new_values, old_values = getattr(scored["new"], attribute), getattr(scored[label], attribute)
            if new_values:
                rate = win_rate(new_values, old_values, answer_prompts)
                results[f"win_rate_vs_{label}_{kind}"] = {
                    "rate": rate.rate,
                    "low": rate.low,  # bootstrap over prompts: a prompt's answers are not independent
                    "high": rate.high,
                    "n": rate.comparisons,
                    "prompts": rate.prompts,
                }
    if scored["new"].golds:
        gain = mean_gain(scored["new"].golds, scored["base"].golds, answer_prompts)
        results["gold_gain_vs_base"] = {"mean": gain.mean, "low": gain.low, "high": gain.high, "prompts": gain.prompts}
    (folder / "evaluation.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


# -- driving the rounds ---------------------------------------------------------------------------


def run_loop(
    project: Project,
    *,
    rounds: int | None = None,
    console: Console | None = None,
    show_progress: bool = True,
    stop_after: Callable[[int, str], bool] | None = None,
) -> list[RoundState]:
    """Run (or resume) the loop until `rounds` rounds are done; returns every round's final state."""
    context = LoopContext(project, console or Console(markup=False), show_progress)
    total = rounds or context.settings.rounds
    held_out_prompts(context)
    store = project.store
    current = base_policy(context)
    for number in range(1, total + 1):
        existing = {state.number: state for state in store.rounds()}
        finished = existing.get(number)
        if finished is not None and finished.step == "done":
            if finished.new_policy_id is not None:
                current = store.policy_by_id(finished.new_policy_id)
            continue
        state = store.start_round(number, current.id)
        context.console.rule(f"Round {number} of {total} (policy {state.policy_name})")
        while state.step != "done":
            step = state.step
            context.console.print(f"{number}.{step}", style="bold", markup=False)
            new_policy_id = None
            started = time.perf_counter()
            if step == "generate":
                output = step_generate(context, state)
            elif step == "collect":
                output = step_collect(context, state)
            elif step == "quality":
                output = step_quality(context, state)
            elif step == "reward":
                output = step_reward(context, state)
            elif step == "policy":
                output, new_policy_id = step_policy(context, state)
            else:
                output = step_evaluate(context, state)
            # The gold oracles' encoder serves the simulated annotators and the evaluation; between those
            # steps it would only add its weights to the policy step's peak. What the step left in reference
            # cycles (a training run and its models) and in the C heap goes back before the next step starts.
            release_encoder()
            gc.collect()
            release_freed_memory()
            output["seconds"] = round(time.perf_counter() - started, 2)
            summary = step_summary(step, output)
            if summary:
                context.console.print(f"   {summary}", highlight=False)
            state = store.finish_step(number, step, output, new_policy_id=new_policy_id)
            if stop_after is not None and stop_after(number, step):
                raise LoopStopped(f"stopped after round {number} step {step}")
        if state.new_policy_id is not None:
            current = store.policy_by_id(state.new_policy_id)
    return store.rounds()
