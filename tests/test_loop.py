"""The closed loop on tiny models: two rounds with simulated annotators, stopped and resumed between steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from apprentice.cli import app
from apprentice.loop import LoopStopped, run_loop
from apprentice.project import init_project, open_project
from apprentice.report import accuracy_cell, agreement_cell, labels_so_far, report_plots
from apprentice.rl.training import latest_reward_folder
from apprentice.settings import PROJECT_FILE, Settings, load_settings, render_settings
from apprentice.store.records import PromptRecord
from apprentice.store.rounds import RoundState
from apprentice.studio.security import CHEAP_HASHES_ENV

WORDS = [
    "sun",
    "moon",
    "cat",
    "dog",
    "tree",
    "water",
    "friend",
    "code",
    "python",
    "list",
    "number",
    "poem",
    "story",
    "love",
]


@pytest.fixture
def loop_project(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CHEAP_HASHES_ENV, "1")
    settings = Settings()
    settings.model.policy = str(tiny_model)
    settings.generation.max_new_tokens = 8
    settings.generation.candidates = 3  # three pairs per prompt: more comparisons than the quota
    settings.comparisons.overlap = 2  # two judgments a comparison, so that agreement can be measured
    loop = settings.loop
    loop.rounds, loop.prompts_per_round, loop.labels_per_round, loop.eval_prompts = 2, 6, 8, 4
    loop.annotators, loop.oracle, loop.reward_model, loop.reward_heads = 3, "concision", str(tiny_model), 3
    loop.policy_steps, loop.policy_learning_rate, loop.policy_prompts_per_step = 2, 3e-5, 2
    project = init_project(tmp_path / "project", settings=settings)
    prompts = [PromptRecord([{"role": "user", "content": f"write a poem about the {word}"}]) for word in WORDS]
    project.store.import_prompts(prompts, [], source="test")
    project.close()
    return tmp_path / "project"


def run_with_stops(loop_project: Path, stops: set[tuple[int, str]]) -> tuple[list[RoundState], int]:
    """Run the loop to the end, stopping once after each (round, step) in `stops` as a Ctrl-C between steps
    would, and resuming each time; the finished rounds and how many times it was stopped."""

    def stop_after(number: int, step: str) -> bool:
        if (number, step) in stops:
            stops.remove((number, step))
            return True
        return False

    attempts = 0
    while True:
        project = open_project(loop_project)
        try:
            return run_loop(project, show_progress=False, stop_after=stop_after), attempts
        except LoopStopped:
            attempts += 1
        finally:
            project.close()


def test_two_rounds_run_end_to_end_and_resume_after_a_stop(loop_project: Path) -> None:
    states, attempts = run_with_stops(loop_project, {(1, "reward"), (2, "collect")})
    assert attempts == 2
    assert [state.step for state in states] == ["done", "done"]
    first, second = states
    assert second.policy_id == first.new_policy_id  # round 2 generates with round 1's policy
    assert first.outputs["collect"]["judgments"] >= 8
    assert second.outputs["collect"]["judgments"] >= 8  # round 1's leftovers do not eat round 2's quota
    # Every judgment so far, answers to round 1's comparisons made during round 2 included.
    assert first.outputs["collect"]["judgments_in_store"] == first.outputs["collect"]["judgments"]
    assert second.outputs["collect"]["judgments_in_store"] >= (
        first.outputs["collect"]["judgments"] + second.outputs["collect"]["judgments"]
    )
    assert second.outputs["collect"]["selection"]["rule"] == "bald"  # round 1's ensemble ordered round 2
    assert 0.0 <= first.outputs["reward"]["accuracy"] <= 1.0
    evaluation = second.outputs["evaluate"]
    assert evaluation["base"]["kl_from_base"] == 0.0
    assert evaluation["new"]["kl_from_base"] != 0.0
    assert evaluation["new"]["gold_mean"] is not None
    assert 0.0 <= evaluation["win_rate_vs_base_gold"]["rate"] <= 1.0
    # two answers to each of the 4 held-out prompts; the interval and the gold gain are over the prompts
    assert (evaluation["win_rate_vs_base_gold"]["n"], evaluation["win_rate_vs_base_gold"]["prompts"]) == (8, 4)
    gain = evaluation["gold_gain_vs_base"]
    assert gain["prompts"] == 4 and gain["low"] <= gain["mean"] <= gain["high"]
    # The reward model against gold on held-out answers, with its count; the base's answers sampled once.
    assert evaluation["reward_gold_accuracy"]["n"] > 0
    assert (loop_project / "loop" / "eval-base-samples.json").is_file()
    assert evaluation["previous"]["kl_from_base"] == first.outputs["evaluate"]["new"]["kl_from_base"]
    project = open_project(loop_project)
    assert len(project.store.prompts(held_out=True)) == 4
    trained = [project.store.policy_by_id(s.new_policy_id) for s in states]
    assert {policy.kind for policy in trained} == {"trained"}
    # One lineage: round 2's policy descends from round 1's, which descends from the one base policy.
    assert trained[1].parent_id == trained[0].id
    base = project.store.policy_by_id(trained[0].parent_id)
    assert base.kind == "base" and base.id == first.policy_id
    assert project.store.policy_at(trained[0].model_path).id == trained[0].id
    assert [run.config["learning_rate"] for run in project.store.runs("policy")] == [3e-5, 3e-5]
    # Each round's reward run names the quality run whose weights it trained on, and those stay on record.
    for run in project.store.runs("reward"):
        assert run.config["quality_run"] in {quality.id for quality in project.store.runs("quality")}
        assert project.store.weights_of_run(run.config["quality_run"])
    # `policy train --reward latest` finds the loop's newest reward model.
    assert latest_reward_folder(project) == str((loop_project / "loop" / "round-2" / "reward").resolve())
    assert (loop_project / "loop" / "round-2" / "evaluation.json").is_file()
    project.close()
    result = CliRunner().invoke(app, ["report", "-p", str(loop_project)])
    assert result.exit_code == 0, result.output
    page = (loop_project / "loop" / "report.html").read_text()
    figures = json.loads((loop_project / "loop" / "report.json").read_text())
    # The agreement plot needs a comparison judged twice within a round, which the simulators' timing decides.
    measured = any(row["agreement"] is not None for row in figures)
    assert page.count("data:image/png;base64,") == 3 + measured and "Sample responses" in page
    assert ("Annotator agreement by round" in page) == measured and "<a href='quality/quality.html'>" in page
    assert (loop_project / "loop" / "quality" / "quality.html").is_file()
    assert [row["round"] for row in figures] == [1, 2]
    assert [row["labels_so_far"] for row in figures] == [s.outputs["collect"]["judgments_in_store"] for s in states]
    validation_pairs = [s.outputs["reward"]["validation_pairs"] for s in states]
    assert [row["reward_validation_pairs"] for row in figures] == validation_pairs and min(validation_pairs) > 0
    # every label trains the reward, and every strict one measures it by cross-validation over prompts
    for state in states:
        reward = state.outputs["reward"]
        assert 0 < reward["validation_pairs"] <= reward["train_pairs"]
        assert reward["validation"].startswith("cross-validation over prompts")
    # each rate with its count and its interval over prompts: a few prompts read "too little data (n=...)"
    assert accuracy_cell(figures[0]) in page and f"n={validation_pairs[0]} on " in accuracy_cell(figures[0])
    # Round 1's previous policy is the base; round 2's is round 1's, on the same held-out prompts.
    assert figures[0]["win_rate_vs_previous_gold"] == figures[0]["win_rate_vs_base_gold"] is not None
    assert figures[1]["win_rate_vs_previous_gold"]["n"] == figures[1]["win_rate_vs_base_gold"]["n"]
    assert "win rate vs previous" in page
    assert [row["agreement"] for row in figures] == [s.outputs["quality"]["agreement"] for s in states]
    assert [row["agreement_units"] for row in figures] == [s.outputs["quality"]["agreement_units"] for s in states]
    assert all(row["agreement"] is None or 0.0 <= row["agreement"] <= 1.0 for row in figures)
    status = CliRunner().invoke(app, ["status", "-p", str(loop_project)])
    assert "round 2: done" in status.output


def test_the_report_needs_an_evaluated_round(loop_project: Path) -> None:
    result = CliRunner().invoke(app, ["report", "-p", str(loop_project)])
    assert result.exit_code == 1 and "apprentice loop" in result.output


def test_labels_so_far_counts_the_store_and_falls_back_to_the_rounds_own_counts() -> None:
    recorded = [{"labels": 8, "labels_so_far": 8}, {"labels": 8, "labels_so_far": 19}]
    assert labels_so_far(recorded) == [8, 19]  # 3 answers to round 1's comparisons came during round 2
    older = [{"labels": 8, "labels_so_far": None}, {"labels": 9, "labels_so_far": None}]
    assert labels_so_far(older) == [8, 17]


def test_the_report_plots_agreement_when_a_round_measured_it() -> None:
    row = {
        "round": 1,
        "labels": 8,
        "labels_so_far": 8,
        "reward_accuracy": 0.6,
        "kl_from_base": 0.5,
        "proxy_reward": 0.2,
        "gold": 0.5,
        "base_gold": 0.4,
        "base_proxy_reward": 0.1,
        "agreement": None,
        "alpha": None,
    }
    assert [title for title, _ in report_plots([row])] == [
        "Reward and gold score by round",
        "Proxy and gold against KL",
        "Label efficiency",
    ]
    assert agreement_cell(row) == "-"
    measured = [row, {**row, "round": 2, "agreement": 0.75, "alpha": 0.5}]
    assert report_plots(measured)[-1][0] == "Annotator agreement by round"
    assert agreement_cell(measured[1]) == "0.75 (n not recorded)"  # a round recorded before the count was kept


def test_a_round_with_a_machine_judge_routes_its_share_and_weighs_it(loop_project: Path, tiny_model: Path) -> None:
    project = open_project(loop_project)
    project.store.add_judge("tiny-judge", backend="local", model=str(tiny_model))
    loop = project.settings.loop
    loop.rounds, loop.judges, loop.judge_share, loop.judge_confidence = 1, ["tiny-judge"], 0.5, 0.0
    try:
        (state,) = run_loop(project, show_progress=False)
        routing = state.outputs["collect"]["judges"]
        assert routing["offered"] > 0 and routing["settled"] + routing["to_people"] == routing["offered"]
        people = project.store.quality_judgments()
        machine = project.store.quality_judgments(annotator_kinds=["ai"])
        assert all(j.annotator_kind != "ai" for j in people)
        assert len(machine) == routing["judge_labels"]
        # The quota is people's: the judge's labels come on top of it.
        assert state.outputs["collect"]["judgments"] == len([j for j in people if j.round == 1])
        assert state.outputs["collect"]["judgments"] >= loop.labels_per_round
        calibrated = state.outputs["quality"]["judges"]["tiny-judge"]
        assert calibrated["labels"] == len(machine) and 0.0 <= calibrated["weight"] <= 1.0
        assert (loop_project / "loop" / "quality" / "judges.html").is_file()
    finally:
        project.close()


def set_loop_settings(project_root: Path, **values: object) -> None:
    path = project_root / PROJECT_FILE
    settings = load_settings(path)
    for key, value in values.items():
        setattr(settings.loop, key, value)
    path.write_text(render_settings(settings), encoding="utf-8")


@pytest.mark.parametrize("algorithm", ["dpo", "reward-dpo", "best-of-n"])
def test_preference_algorithms_run_resume_and_keep_the_lineage(
    loop_project: Path, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import apprentice.policy_data
    import apprentice.rl.training

    set_loop_settings(loop_project, algorithm=algorithm, policy_candidates=3)
    gathered: list[int] = []
    real_gather, real_train = apprentice.policy_data.gather, apprentice.rl.training.train_policy

    def counting_gather(*args: Any, **kwargs: Any) -> Any:
        gathered.append(args[1].round_number)
        return real_gather(*args, **kwargs)

    interrupted: list[int] = []

    def train_then_stop_once(*args: Any, **kwargs: Any) -> Any:
        """Round 2's first attempt: the policy trained (its last checkpoint written), then a Ctrl-C."""
        outcome = real_train(*args, **kwargs)
        if not interrupted and "round-2" in str(args[1].output_dir):
            interrupted.append(2)
            raise LoopStopped("stopped inside round 2's policy step")
        return outcome

    monkeypatch.setattr(apprentice.policy_data, "gather", counting_gather)
    monkeypatch.setattr(apprentice.rl.training, "train_policy", train_then_stop_once)
    states, attempts = run_with_stops(loop_project, {(1, "reward"), (1, "policy")})
    assert attempts == 3 and interrupted == [2]
    assert gathered == [1, 2]  # round 2's resumed step read its data back instead of sampling again
    first, second = states
    assert [state.step for state in states] == ["done", "done"]
    counts = [state.outputs["policy"]["data"] for state in states]
    if algorithm == "dpo":
        # The round's own judged pairs: never more than its judgments, none from round 1 in round 2.
        assert all(
            0 < c["judged_pairs"] <= s.outputs["collect"]["judgments"] for c, s in zip(counts, states, strict=True)
        )
    elif algorithm == "reward-dpo":
        assert all(c["reward_pairs"] > 0 and c["judged_pairs"] > 0 for c in counts)
    else:
        assert all(c["demonstrations"] > 0 for c in counts)
    data_file = loop_project / "loop" / "round-2" / "policy-data.jsonl"
    assert json.loads(data_file.read_text().splitlines()[0])["counts"] == counts[1]
    project = open_project(loop_project)
    trained = [project.store.policy_by_id(s.new_policy_id) for s in states]
    assert [policy.name for policy in trained] == [f"round-1-{algorithm}", f"round-2-{algorithm}"]
    assert second.policy_id == first.new_policy_id  # round 2 starts from round 1's policy
    assert trained[1].parent_id == trained[0].id
    base = project.store.policy_by_id(trained[0].parent_id)
    assert base.kind == "base" and base.id == first.policy_id
    runs = project.store.runs("policy")
    assert [run.config["algorithm"] for run in runs] == [algorithm] * 3  # round 2's policy step ran twice
    if algorithm != "best-of-n":
        assert {run.config["label_smoothing"] for run in runs} == {0.15}
        assert {run.config["beta"] for run in runs} == {0.1}
    project.close()
    assert second.outputs["evaluate"]["new"]["kl_from_base"] != 0.0


@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "ppo"])
def test_the_online_policy_run_takes_the_loops_steps_batch_and_learning_rate(algorithm: str, tmp_path: Path) -> None:
    from apprentice.loop import online_policy_config
    from apprentice.settings import LoopSection

    settings = LoopSection(
        algorithm=algorithm, policy_steps=7, policy_prompts_per_step=4, policy_learning_rate=5e-5, policy_lora_rank=8
    )
    config = online_policy_config(settings, tmp_path / "policy", round_number=3)
    assert (config.steps, config.prompts_per_step, config.learning_rate, config.seed) == (7, 4, 5e-5, 3)
    assert config.lora_rank == 8
    assert config.output_dir == tmp_path / "policy"


def test_a_lora_round_saves_a_plain_merged_policy_that_moved_from_its_start(loop_project: Path) -> None:
    from transformers import AutoModelForCausalLM

    set_loop_settings(loop_project, rounds=1, policy_lora_rank=4, policy_learning_rate=1e-3)
    states, _ = run_with_stops(loop_project, set())
    (state,) = states
    project = open_project(loop_project)
    trained = project.store.policy_by_id(state.new_policy_id)
    base = project.store.policy_by_id(state.policy_id)
    assert [run.config["lora_rank"] for run in project.store.runs("policy")] == [4]
    project.close()
    folder = Path(trained.model_path)
    assert not (folder / "adapter_config.json").exists()  # merged: transformers loads it as it loads the base
    merged = AutoModelForCausalLM.from_pretrained(folder)
    start = AutoModelForCausalLM.from_pretrained(base.model_path)
    assert set(merged.state_dict()) == set(start.state_dict())
    assert any(not torch.equal(merged.state_dict()[key], start.state_dict()[key]) for key in start.state_dict())
    assert state.outputs["evaluate"]["new"]["kl_from_base"] != 0.0
